"""Expansion candidates through the search machinery (``harness.search``).

Every candidate of the run so far is passed to :func:`evaluate_candidates` on each call,
in the order it was proposed: Optuna enqueues each (index, params) once, so a re-run after
a crash finds the finished trials, enqueues only what is missing and retrains nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.expansion.runner import Step
from harness.expansion.solve import DIGITS, CostModel
from harness.search import SearchSpace, evaluate_candidates
from harness.search.run import set_kept
from harness.search.space import FidelitySpec, FloatParam, IntParam

__all__ = ["SearchEvaluator", "create_space"]


def create_space(
    model: CostModel,
    base: str,
    *,
    name: str,
    data: str,
    epochs: int,
    subset: float = 1.0,
    train: dict[str, Any] | None = None,
    seed: int = 0,
) -> SearchSpace:
    """The search space an expansion's candidates are trials of: one parameter per key the
    axes multiply (declared wide: the runner, not a sampler, chooses the values)."""
    params: dict[str, Any] = {}
    for key in model.keys:
        spelled = model.spelled[key]
        if isinstance(model.base_values[key], int):
            params[spelled] = IntParam(low=1, high=10**6)
        else:
            high = 100.0 if key.startswith("expansion.") else 1e6
            params[spelled] = FloatParam(low=10.0**-DIGITS, high=high, digits=DIGITS + 2)
    path = Path(base)
    if base.endswith((".yaml", ".yml")) or "/" in base:
        base = str(path.resolve())
    return SearchSpace(
        name=name, base=base, data=data,
        objectives={"top1": "maximize", model.cost_name: "minimize"},
        fidelity=FidelitySpec(epochs=epochs, subset=subset), pruner="none",
        train=dict(train or {}), sampler="random", seed=seed, params=params,
    )  # fmt: skip


@dataclass
class SearchEvaluator:
    """Trains candidates as fixed trials of ``study`` (see :func:`evaluate_candidates`)."""

    space: SearchSpace
    study: str
    storage: str | None = None
    results_dir: Path = Path("results")
    workers: int = 1
    _proposed: list[Step] = field(default_factory=list)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)

    def evaluate(self, steps: Sequence[Step]) -> list[tuple[float | None, int | None]]:
        self._proposed += steps
        attrs = [{"step": s.step, "axis": s.axis, "parent": s.parent} for s in self._proposed]
        result = evaluate_candidates(
            self.space, [s.params for s in self._proposed], study=self.study,
            storage=self.storage, results_dir=self.results_dir, workers=self.workers,
            attrs=attrs,
        )  # fmt: skip
        self.table = result.table
        return [self._outcome(s) for s in steps]

    def _outcome(self, step: Step) -> tuple[float | None, int | None]:
        t = self.table
        if t.empty or "step" not in t:
            return None, None
        rows = t[(t["step"] == step.step) & (t["axis"] == step.axis)]
        if "spec_hash" in rows:
            rows = rows[rows["spec_hash"] == step.spec_hash]
        done = rows[rows["state"] == "complete"]
        if not done.empty:
            row = done.iloc[-1]
            return float(row["top1"]), int(row["trial"])
        return None, (int(rows.iloc[-1]["trial"]) if not rows.empty else None)

    def keep(self, path: Sequence[Step]) -> None:
        kept = [s.trial for s in path if s.trial is not None]
        set_kept(self.study, kept, storage=self.storage, results_dir=self.results_dir)
