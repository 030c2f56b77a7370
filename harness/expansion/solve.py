"""The cost model of an expansion and the solver for one axis's factor.

A path state is a cumulative factor per axis over the base. :class:`CostModel` turns a
state into the candidate spec (the base with its keys multiplied) and measures its cost
with the pre-check (:func:`harness.measure.precheck`, meta device), cached by the hash of
the realised spec, since many factors round to the same network. :func:`solve_factor` finds
the factor that multiplies the cost by a given ratio: the cost is a step function of the
factor (frames, widths and depths round), so it brackets the target, narrows the bracket
by log-log secant and bisection steps, and keeps whichever side lands closer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.errors import SpecError
from harness.expansion.axes import FACTOR_LIMIT, Axis, key_value
from harness.measure import Precheck, precheck
from harness.spec import ModelSpec, realise, spec_hash
from harness.spec._yaml import Document
from harness.spec.load import load_document, spec_from_document

__all__ = ["COSTS", "Candidate", "CostModel", "State", "solve_factor"]

State = Mapping[str, float]  # axis name -> cumulative factor over the base
DIGITS = 4  # factors are rounded to this many decimals before anything is built

# What an expansion can hold to a target: name -> (value of a pre-check, unit).
COSTS: dict[str, tuple[Callable[[Precheck], float], str]] = {
    "gflops": (lambda p: p.gflops, "GFLOPs (multiply-adds, conv/linear/matmul)"),
    "params": (lambda p: float(p.params), "parameters"),
    "train_memory_mb": (
        lambda p: float("inf") if p.train_memory.peak_mb is None else p.train_memory.peak_mb,
        "MB peak training memory at batch 1",
    ),
}


# Pre-checks by (spec hash, classes), shared by every CostModel of the process.
_PRECHECKS: dict[tuple[str, int | None], Precheck] = {}
_PRECHECK_CACHE_SIZE = 4096


@dataclass(frozen=True)
class Candidate:
    """One point of an expansion: the overrides of the base and the spec they give."""

    params: dict[str, Any]  # key path (as the base file spells it) -> value
    spec: ModelSpec  # the base with ``params`` applied (factors not yet realised)
    realised: ModelSpec
    spec_hash: str


def _spelling(doc: Document, key: str) -> str:
    """``expansion.frames`` as the base file writes it (``expansion.gamma_t`` there)."""
    head, _, field = key.partition(".")
    if head != "expansion":
        return key
    from harness.spec.schema import ExpansionSpec

    alias = ExpansionSpec.model_fields[field].validation_alias
    names = getattr(alias, "choices", [field])
    written = doc.data.get("expansion") or {}
    return next((f"expansion.{n}" for n in names if n in written), key)


class CostModel:
    """Candidates and their cost for the axes of one expansion of ``base``.

    Args:
        base: a zoo name or spec file (what the search machinery loads again).
        axes: every axis the expansion may take.
        cost: a name in :data:`COSTS`.
        classes: classes the head is built for (default: the spec's).
    """

    def __init__(
        self, base: str, axes: Sequence[Axis], *, cost: str = "gflops", classes: int | None = None
    ) -> None:
        if cost not in COSTS:
            raise SpecError(f"unknown cost '{cost}'; known: {', '.join(COSTS)}", path=("cost",))
        self.doc = load_document(base)
        self.spec = spec_from_document(self.doc)
        self.axes = {axis.name: axis for axis in axes}
        self.cost_name = cost
        self.classes = classes
        dumped = self.spec.model_dump(mode="json")
        self.keys = list(dict.fromkeys(k for axis in axes for k in axis.keys))
        self.base_values = {k: key_value(dumped, k) for k in self.keys}
        self.spelled = {k: _spelling(self.doc, k) for k in self.keys}
        self._candidates: dict[tuple[tuple[str, float], ...], Candidate] = {}

    def params(self, state: State) -> dict[str, Any]:
        """Every key of every axis, at its value in ``state`` (spelled as in the base file)."""
        factor = dict.fromkeys(self.keys, 1.0)
        for name, value in state.items():
            for key in self.axes[name].keys:
                factor[key] *= value
        out: dict[str, Any] = {}
        for key in self.keys:
            value = self.base_values[key] * factor[key]
            if isinstance(self.base_values[key], int):
                out[self.spelled[key]] = max(1, round(value))
            else:
                out[self.spelled[key]] = round(value, DIGITS)
        return out

    def candidate(self, state: State) -> Candidate:
        """The candidate at ``state`` (raises SpecError when the spec rejects it)."""
        cache_key = tuple(sorted((k, round(v, DIGITS)) for k, v in state.items()))
        found = self._candidates.get(cache_key)
        if found is None:
            params = self.params(state)
            spec = spec_from_document(self.doc, params)
            found = Candidate(params, spec, realise(spec), spec_hash(spec))
            self._candidates[cache_key] = found
        return found

    def cost(self, state: State) -> float:
        """The cost of the candidate at ``state`` (one pre-check per distinct network)."""
        cand = self.candidate(state)
        key = (cand.spec_hash, self.classes)
        found = _PRECHECKS.get(key)
        if found is None:
            found = _PRECHECKS[key] = precheck(cand.spec, classes=self.classes)
            while len(_PRECHECKS) > _PRECHECK_CACHE_SIZE:
                _PRECHECKS.pop(next(iter(_PRECHECKS)))
        measure, _ = COSTS[self.cost_name]
        return measure(found)

    def limit(self, state: State, axis: Axis, max_frames: int | None) -> tuple[float, str]:
        """The largest factor ``axis`` may still take at ``state``, and what stops it."""
        current = self.candidate(state).realised
        room, reason = axis.headroom(current, max_frames=max_frames)
        params = self.params(state)
        for key in axis.keys:
            if key.startswith("expansion."):
                cap = FACTOR_LIMIT / params[self.spelled[key]]
                if cap < room:
                    room, reason = cap, f"'{key}' would pass {FACTOR_LIMIT:g}"
        return room, reason


def _round(f: float) -> float:
    return round(f, DIGITS)


def _closer(target: float, a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """Of two (factor, cost) points, the one whose cost is closer to ``target`` in log."""
    return a if abs(math.log(a[1] / target)) <= abs(math.log(b[1] / target)) else b


def solve_factor(
    cost: Callable[[float], float],
    target: float,
    *,
    high: float,
    low: float = 1.0,
    grow: bool = False,
    max_evals: int = 24,
) -> tuple[float, float]:
    """The factor in [low, high] whose cost is closest to ``target``, as (factor, cost).

    ``cost`` must not decrease with the factor; it may jump (rounding). When even ``high``
    stays below ``target``, ``(high, cost(high))`` comes back and the caller decides.
    With ``grow``, a factor that leaves the cost of ``low`` unchanged is never the answer.
    """
    lo = (_round(low), cost(_round(low)))
    start = lo[1]
    if start >= target:
        return lo
    f = _round(min(high, max(2.0 * low, low + 10.0**-DIGITS)))
    hi = (f, cost(f))
    while hi[1] < target and hi[0] < high:  # grow the bracket
        lo = hi
        f = _round(min(high, hi[0] * 2.0))
        hi = (f, cost(f))
    if hi[1] < target:
        return hi
    for i in range(max_evals):
        if hi[0] - lo[0] <= 10.0**-DIGITS:
            break
        if i % 2 == 0 and hi[1] > lo[1]:  # secant in log-log space
            w = math.log(target / lo[1]) / math.log(hi[1] / lo[1])
            f = math.exp(math.log(lo[0]) + w * math.log(hi[0] / lo[0]))
        else:  # bisection, so that a plateau cannot stall the bracket
            f = math.sqrt(lo[0] * hi[0])
        f = _round(min(max(f, lo[0] + 10.0**-DIGITS), hi[0] - 10.0**-DIGITS))
        if not lo[0] < f < hi[0]:
            break
        point = (f, cost(f))
        if point[1] >= target:
            hi = point
        else:
            lo = point
    if grow and lo[1] <= start:
        return hi
    return _closer(target, lo, hi)
