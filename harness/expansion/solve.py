"""The cost model of an expansion and the solver for one axis's factor.

A path state is a cumulative factor per axis over the base. :class:`CostModel` turns a
state into the candidate spec (the base with its keys multiplied) and gives its costs
(:mod:`harness.expansion.costs`: pre-check figures, or a cached timing), each distinct
network once, since many factors round to the same network. :func:`solve_factor` finds
the factor that multiplies the cost by a given ratio: the cost is a step function of the
factor (frames, widths and depths round) and, for a timing, noisy, so it brackets the
target (extrapolating the log-log slope), narrows the bracket by log-log secant and
bisection steps within an evaluation budget, and keeps whichever side lands closer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.expansion.axes import FACTOR_LIMIT, Axis, key_value
from harness.expansion.costs import LatencyTiming, expansion_request, get_cost, measure
from harness.measure import CostCache
from harness.spec import Document, ModelSpec, realise, spec_hash
from harness.spec.load import load_document, spec_from_document

__all__ = ["Candidate", "CostModel", "State", "solve_factor"]

State = Mapping[str, float]  # axis name -> cumulative factor over the base
DIGITS = 4  # factors are rounded to this many decimals before anything is built


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
    """Candidates and their costs for the axes of one expansion of ``base``.

    Args:
        base: a zoo name or spec file (what the search machinery loads again).
        axes: every axis the expansion may take.
        cost: the cost a step multiplies by its ratio (a name in
            :data:`harness.expansion.costs.COSTS`); :meth:`cost` gives any other on request.
        classes: classes the head is built for (default: the spec's).
        batch: clips per training step, for ``train_memory_mb`` (the step of the default
            training recipe, as the candidates train: see ``expansion_request``).
        timing: how ``latency_ms`` is timed.
        cache: where timings are stored (default: ``CostCache()``).
    """

    def __init__(
        self,
        base: str,
        axes: Sequence[Axis],
        *,
        cost: str = "gflops",
        classes: int | None = None,
        batch: int = 1,
        timing: LatencyTiming | None = None,
        cache: CostCache | None = None,
    ) -> None:
        self.cost_name = get_cost(cost)
        self.doc = load_document(base)
        self.spec = spec_from_document(self.doc)
        self.axes = {axis.name: axis for axis in axes}
        self.request = expansion_request(batch=batch, classes=classes, timing=timing)
        self.cache = cache
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

    def cost(self, state: State, name: str | None = None) -> float:
        """The cost ``name`` (default: the model's) of the candidate at ``state``."""
        cand = self.candidate(state)
        return measure(name or self.cost_name, cand.spec, self.request, cache=self.cache)

    def span(self, state: State) -> int:
        """Source frames the candidate's clip covers: frames x sampling stride."""
        clip = self.candidate(state).realised.clip
        return clip.frames * clip.stride

    def limit(
        self, state: State, axis: Axis, max_span: int | None, source: str = "--max-frames"
    ) -> tuple[float, str]:
        """The largest factor ``axis`` may still take at ``state``, and what stops it.

        ``max_span`` (named by ``source`` in the reason) bounds the clip's span, frames x
        stride, unless the span is longer already: then the axis may not lengthen it.
        """
        room, reason = axis.headroom(self.candidate(state).realised)
        params = self.params(state)
        for key in axis.keys:
            if key.startswith("expansion."):
                cap = FACTOR_LIMIT / params[self.spelled[key]]
                if cap < room:
                    room, reason = cap, f"'{key}' would pass {FACTOR_LIMIT:g}"
        if max_span is not None:
            room, reason = self._span_room(state, axis, max_span, source, room, reason)
        return room, reason

    def _span_room(
        self, state: State, axis: Axis, max_span: int, source: str, room: float, reason: str
    ) -> tuple[float, str]:
        """``room`` cut to the largest factor whose clip span stays within ``max_span``."""
        span = self.span(state)
        bound = max(max_span, span)
        start = state.get(axis.name, 1.0)

        def fits(f: float) -> bool:
            return self.span({**state, axis.name: start * f}) <= bound

        high = min(room, FACTOR_LIMIT)
        if fits(high):
            return room, reason
        low = 1.0  # the span grows with the factor (frames round up, strides down)
        while high - low > 10.0**-DIGITS:
            mid = _round((low + high) / 2)
            if not low < mid < high:
                break
            low, high = (mid, high) if fits(mid) else (low, mid)
        here = self.candidate(state)
        if self.candidate({**state, axis.name: start * low}).spec_hash == here.spec_hash:
            low = 1.0  # the factors that fit all round to the network it is already
        clip = here.realised.clip
        why = (
            f"the clip span (frames x stride, now {clip.frames} x {clip.stride} = {span}) "
            f"would pass {max_span} frames ({source})"
        )
        return low, why


def _round(f: float) -> float:
    return round(f, DIGITS)


def _closer(target: float, a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """Of two (factor, cost) points, the one whose cost is closer to ``target`` in log."""
    return a if abs(math.log(a[1] / target)) <= abs(math.log(b[1] / target)) else b


def _next_bracket(
    start: tuple[float, float], last: tuple[float, float], target: float, high: float
) -> float:
    """The next factor to try while the cost stays below ``target``: extrapolate the
    log-log slope from ``start`` through ``last`` (overshooting a little, to bracket),
    growing the factor by 1.5x to 4x, never past ``high``."""
    step = 4.0
    if last[1] > start[1] and last[0] > start[0]:
        slope = math.log(last[1] / start[1]) / math.log(last[0] / start[0])
        step = min(4.0, max(1.5, 1.1 * (target / last[1]) ** (1.0 / slope)))
    return _round(min(high, last[0] * step))


def solve_factor(
    cost: Callable[[float], float],
    target: float,
    *,
    high: float,
    low: float = 1.0,
    grow: bool = False,
    refine: int = 30,
    rtol: float = 0.0,
) -> tuple[float, float]:
    """The factor in [low, high] whose cost is closest to ``target``, as (factor, cost).

    ``cost`` should not decrease with the factor; it may jump (rounding) or be noisy (a
    timing). When even ``high`` stays below ``target``, ``(high, cost(high))`` comes back
    and the caller decides. With ``grow``, a factor that leaves the cost of ``low``
    unchanged is never the answer.

    Args:
        refine: most secant/bisection steps once ``target`` is bracketed (the bracket
            grows the factor by 1.5x-4x a call, so it takes a few calls up to ``high``).
        rtol: return the first factor whose cost is within this fraction of ``target``.
    """
    lo = start = (_round(low), cost(_round(low)))
    if start[1] >= target:
        return lo

    def done(point: tuple[float, float]) -> bool:
        near = abs(point[1] / target - 1.0) <= rtol
        return near and not (grow and point[1] <= start[1])

    f = _round(min(high, max(2.0 * low, low + 10.0**-DIGITS)))
    hi = (f, cost(f))
    while hi[1] < target and hi[0] < high and not done(hi):
        lo = hi  # grow the bracket
        f = _next_bracket(start, hi, target, high)
        hi = (f, cost(f))
    if done(hi):
        return hi
    if hi[1] < target:
        return hi
    for i in range(refine):
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
        if done(point):
            return point
        if point[1] >= target:
            hi = point
        else:
            lo = point
    if grow and lo[1] <= start[1]:
        return hi
    return _closer(target, lo, hi)
