"""What a trial's candidate costs, measured as the trial will run it, and the verdict.

The costs come from the cost room (:mod:`harness.costs`) under one request built from the
trial's own training settings (batch, gradient accumulation, optimizer, precision, device)
and the data's classes, at two inputs:

- *deployed*: the spec's clip, the network a search is for. Bare cost names (``gflops``)
  and budgets on them mean this one, as the X3D and NAS papers budget the final network;
- *trained*: the fidelity's clip, the network each trial trains (``trained.gflops``).

A verdict is always taken against the budgets in force now: a result reused from an
earlier trial (or an earlier run of the study) keeps its measurements, not its verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from harness.costs import CostRequest, CostRow, is_cost, measure_costs, parse_cost
from harness.costs._measure import default_cache
from harness.report import describe_model
from harness.search.space import SearchSpace
from harness.spec import ModelSpec
from harness.spec.localization import LocalizationSpec

__all__ = [
    "Candidate",
    "TrialCosts",
    "Verdict",
    "cost_candidate",
    "describe_costs",
    "judge",
    "measure_trial_costs",
    "wanted_costs",
]


@dataclass(frozen=True)
class TrialCosts:
    """A candidate's costs as deployed (the spec's clip) and as trained (the fidelity's)."""

    deployed: CostRow
    trained: CostRow

    def get(self, name: str) -> float | None:
        """The value of cost ``name``: ``trained.*`` from the trained row, else deployed."""
        row = self.trained if parse_cost(name).trained else self.deployed
        return row.get(name)

    def columns(self) -> dict[str, Any]:
        """Results-table columns of both rows (the trained ones prefixed ``trained.``)."""
        return {**self.deployed.columns(trained=False), **self.trained.columns(trained=True)}


@dataclass(frozen=True)
class Verdict:
    """A candidate judged against budgets."""

    constraints: dict[str, float]  # cost -> value / limit - 1 (<= 0 is within budget)
    violations: list[str]  # "gflops<=0.05" for each budget exceeded

    @property
    def feasible(self) -> bool:
        return not self.violations

    def only_memory_over(self) -> bool:
        """Whether the budgets exceeded are all training-memory ones (either input)."""
        over = [cost for cost, excess in self.constraints.items() if excess > 0]
        return bool(over) and all(parse_cost(c).cost.name == "train_memory_mb" for c in over)


def wanted_costs(space: SearchSpace) -> list[str]:
    """The costs a trial of ``space`` must measure: its budgets and cost objectives."""
    return list(dict.fromkeys(n for n in (*space.budgets, *space.objectives) if is_cost(n)))


def measure_trial_costs(
    spec: ModelSpec | LocalizationSpec,
    space: SearchSpace,
    request: CostRequest,
    names: Iterable[str] | None = None,
) -> TrialCosts:
    """The costs ``names`` (default: :func:`wanted_costs`) of ``spec`` at both inputs.

    ``request`` is the trial's (see ``CostRequest.for_training``) at the spec's clip.

    Raises:
        SpecError: the compiler rejects the spec at either clip.
    """
    names = list(wanted_costs(space) if names is None else names)
    f = space.fidelity
    at_fidelity = request.at(frames=f.frames, size=f.size)
    if at_fidelity == request:  # the fidelity trains the spec's own clip: one row for both
        row = measure_costs(spec, request, names, cache=default_cache())
        return TrialCosts(row, row)
    deployed = [n for n in names if not parse_cost(n).trained]
    trained = [n for n in names if parse_cost(n).trained]
    return TrialCosts(
        measure_costs(spec, request, deployed, cache=default_cache()),
        measure_costs(spec, at_fidelity, trained, cache=default_cache()),
    )


def judge(budgets: Mapping[str, float], costs: TrialCosts) -> Verdict:
    """``costs`` against ``budgets`` (cost -> upper limit)."""
    constraints, violations = {}, []
    for cost, limit in budgets.items():
        value = costs.get(cost)
        if value is None:
            raise ValueError(f"cost '{cost}' was not measured")
        constraints[cost] = value / limit - 1.0
        if value > limit:
            violations.append(f"{cost}<={limit:g}")
    return Verdict(constraints, violations)


@dataclass(frozen=True)
class Candidate:
    """A candidate as it will be evaluated: its spec, its costs and their verdict."""

    spec: ModelSpec | LocalizationSpec  # checkpointed where the retry made it fit
    costs: TrialCosts
    verdict: Verdict
    retried: bool  # costed again with activation checkpointing (over a memory budget)


def cost_candidate(
    spec: ModelSpec | LocalizationSpec,
    space: SearchSpace,
    request: CostRequest,
    names: Iterable[str] | None = None,
) -> Candidate:
    """``spec``'s costs (see :func:`measure_trial_costs`) judged against the budgets of
    ``space``. Where only a training-memory budget rejects it and the space has
    ``retry_with_checkpointing``, it is costed again with activation checkpointing in every
    stage, and is that candidate if it then fits.
    """
    costs = measure_trial_costs(spec, space, request, names)
    verdict = judge(space.budgets, costs)
    if isinstance(spec, LocalizationSpec):  # nothing to checkpoint (space checks refuse it)
        return Candidate(spec, costs, verdict, retried=False)
    everywhere = spec.model_copy(update={"activation_checkpoint": True})
    retry = space.retry_with_checkpointing and verdict.only_memory_over()
    if not retry or spec.checkpointed_stages() == everywhere.checkpointed_stages():
        return Candidate(spec, costs, verdict, retried=False)
    again = measure_trial_costs(everywhere, space, request, names)
    verdict_again = judge(space.budgets, again)
    if verdict_again.feasible:
        return Candidate(everywhere, again, verdict_again, retried=True)
    return Candidate(spec, costs, verdict, retried=True)


def describe_costs(spec: ModelSpec | LocalizationSpec, request: CostRequest) -> dict[str, Any]:
    """fvcore's per-stage table and totals at the spec's clip (for candidates that train):
    ``gflops_all``, ``stages`` and ``unsupported_ops`` (cached by spec hash). A localizer
    has no stages: its window's fvcore total (``gflops_all``) only."""
    if isinstance(spec, LocalizationSpec):
        row = measure_costs(spec, request, ["gflops_all"], cache=default_cache())
        return {"gflops_all": row.get("gflops_all")}
    report = describe_model(spec, classes=request.classes, cache=default_cache())
    return {
        "gflops_all": report.gflops_all,
        "stages": [asdict(row) for row in report.stages],
        "unsupported_ops": report.unsupported_ops,
    }
