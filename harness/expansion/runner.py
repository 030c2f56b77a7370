"""X3D's expansion as a tool: grow a base network one axis at a time up to a target cost.

    base --step: every axis grown by the factor that multiplies the cost by ~ratio-->
         candidates --train and evaluate (the search machinery)--> keep the best
         ... until cost >= target --backward contraction: the last axis solved for
         cost = target from the last step's parent--> final network

Each step solves, for every axis, the factor that multiplies the step cost (``gflops`` by
default; ``params``, ``train_memory_mb`` or ``latency_ms`` on request, see
:mod:`harness.expansion.costs`) by ``step_ratio`` (about 2, as in Feichtenhofer, "X3D:
Expanding Architectures for Efficient Video Recognition", CVPR 2020), then keeps the
candidate with the best accuracy (``accuracy``: they all cost about the same) or the best
accuracy gain per unit of cost (``gain_per_cost``). The target may be in another cost than
the steps (steps of 2x latency up to a GFLOPs target): the run stops, and the last step is
contracted, in the target's cost.

An axis that cannot grow the step cost by at least ``sqrt(step_ratio)`` (the cost does not
depend on it, as params on frames; its factor limit; the clip's span, frames x stride,
reaching the video length ``max_span``; a stride already 1) is dropped from later steps,
with why, in the ``dropped`` of the step at which it stopped. When no axis is left before
the target, the run stops with an error naming each axis and its limit. Candidates run
through :func:`harness.search.evaluate_candidates`, so an expansion shares the storage,
results table, resume, workers and duplicate reuse of ``harness search``; each row carries
``step``, ``axis``, ``parent`` (spec hash) and ``kept``.

A dry run (``order``, no ``evaluator``) trains nothing: step ``k`` takes ``order[k-1]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from harness.errors import HarnessError, SpecError
from harness.expansion.axes import Axis, create_axis
from harness.expansion.costs import COSTS, EXACT, SOLVER_BUDGETS, LatencyTiming, get_cost
from harness.expansion.solve import Candidate, CostModel, State, solve_factor

__all__ = [
    "DEFAULT_AXES",
    "X3D_ORDER",
    "X3D_TARGETS",
    "Evaluator",
    "Expansion",
    "ExpansionConfig",
    "Step",
    "expand_to_target",
]

DEFAULT_AXES = ("frames", "frame_rate", "size", "width", "bottleneck", "depth")

# NOTE: derived, not quoted. An axis order that, at step ratio 2 from the zoo's X2D with
# backward contraction onto the targets of X3D_TARGETS, reproduces the X3D family of the
# paper (Feichtenhofer, CVPR 2020, Table 1 and PySlowFast's configs): X3D-XS adds frames,
# resolution, bottleneck and depth (frames twice: 1 -> 4 frames is two ~2x steps); X3D-S
# then adds frames (the second step contracted to 13); X3D-M frames and resolution (224);
# X3D-L depth (x5.0) and resolution (~312). It follows the order in which the published
# models differ; it is not the sequence of Fig. 2 of the paper step for step.
X3D_ORDER = (
    "frames", "frames", "size", "bottleneck", "depth",  # -> X3D-XS
    "frames", "frames",  # -> X3D-S (contracted)
    "size",  # -> X3D-M
    "depth", "size",  # -> X3D-L
)  # fmt: skip
# The zoo model each target reproduces, with its target in GFLOPs (the zoo's gflops).
X3D_TARGETS = {"x3d_xs": 0.605, "x3d_s": 1.96, "x3d_m": 4.73, "x3d_l": 18.37}

Criterion = Literal["accuracy", "gain_per_cost"]


@dataclass(frozen=True)
class ExpansionConfig:
    """How to expand (see the module docstring)."""

    target: float  # cost to reach, in the unit of ``cost``
    cost: str = "gflops"  # the target's cost: a name in harness.expansion.costs.COSTS
    step_cost: str | None = None  # the cost each step multiplies by step_ratio (default: cost)
    axes: tuple[str, ...] = DEFAULT_AXES  # axes tried at every step
    step_ratio: float = 2.0  # each step multiplies the step cost by about this
    order: tuple[str, ...] | None = None  # axis of every step (forced path)
    criterion: Criterion = "accuracy"
    max_span: int | None = None  # longest clip span, frames x stride (the video length)
    span_source: str = "--max-frames"  # where max_span comes from, for messages
    max_steps: int = 24
    tolerance: float = 0.02  # a path within this fraction of the target is done
    classes: int | None = None  # classes the cost model builds the head for
    batch: int = 16  # clips per training step: the batch of train_memory_mb
    timing: LatencyTiming = field(default_factory=LatencyTiming)  # how latency_ms is timed

    @property
    def solved_cost(self) -> str:
        """The cost each step multiplies by ``step_ratio``."""
        return self.step_cost or self.cost


@dataclass
class Step:
    """One step of the path (or a candidate of a step)."""

    step: int
    axis: str  # "base" for step 0
    factor: float  # this step's factor on ``axis``
    factors: dict[str, float]  # cumulative factor per axis over the base
    params: dict[str, Any]  # overrides of the base spec
    cost: float  # in the target's cost
    ratio: float | None  # step cost / parent's step cost
    spec_hash: str
    parent: str | None = None  # parent's spec hash
    contracted: bool = False  # the backward contraction of the last step
    top1: float | None = None
    trial: int | None = None
    frames: int = 0  # realised clip, for reading the path
    stride: int = 0
    size: int = 0
    costs: dict[str, float] = field(default_factory=dict)  # the target's and the step's cost
    dropped: dict[str, str] = field(default_factory=dict)  # axes dropped here -> why

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["factors"] = {k: round(v, 4) for k, v in self.factors.items()}
        return out


@dataclass
class Expansion:
    """What an expansion leaves behind."""

    base: str
    cost: str  # the target's
    step_cost: str  # the one each step multiplies by the step ratio
    target: float
    path: list[Step]
    skipped: list[dict[str, Any]] = field(default_factory=list)  # axes that could not grow
    study: str | None = None
    results: str | None = None

    @property
    def final(self) -> Step:
        return self.path[-1]

    def to_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "cost": self.cost,
            "step_cost": self.step_cost,
            "target": self.target,
            "study": self.study,
            "results": self.results,
            "path": [s.to_json() for s in self.path],
            "skipped": self.skipped,
        }


class Evaluator(Protocol):
    """Trains and evaluates candidates; what a real (not dry) expansion needs."""

    def evaluate(self, steps: Sequence[Step]) -> list[tuple[float | None, int | None]]:
        """(top1, trial number) of every step; top1 None when it failed."""
        ...

    def keep(self, path: Sequence[Step]) -> None:
        """Record the current path (its rows are ``kept``)."""
        ...


def _cli_error(message: str, option: str) -> SpecError:
    return SpecError(message, path=(option,), file="<command line>")


def _make_step(
    model: CostModel,
    config: ExpansionConfig,
    step: int,
    axis: str,
    factor: float,
    state: State,
    parent: Step | None,
    contracted: bool = False,
) -> Step:
    cand: Candidate = model.candidate(state)
    costs = {name: model.cost(state, name) for name in (config.cost, config.solved_cost)}
    ratio = None
    if parent is not None:
        ratio = costs[config.solved_cost] / parent.costs[config.solved_cost]
    clip = cand.realised.clip
    return Step(
        step=step, axis=axis, factor=factor, factors=dict(state), params=cand.params,
        cost=costs[config.cost], ratio=ratio, spec_hash=cand.spec_hash,
        parent=None if parent is None else parent.spec_hash, contracted=contracted,
        frames=clip.frames, stride=clip.stride, size=clip.size, costs=costs,
    )  # fmt: skip


def _grow(
    model: CostModel, parent: Step, axis: Axis, target: float, high: float, cost: str, *,
    grow: bool,
) -> tuple[float, float]:  # fmt: skip
    """Solve ``axis``'s factor from ``parent`` for ``target`` in ``cost``: (factor, cost)."""
    start = parent.factors.get(axis.name, 1.0)

    def value(f: float) -> float:
        return model.cost({**parent.factors, axis.name: start * f}, cost)

    budget = SOLVER_BUDGETS.get(cost, EXACT)
    return solve_factor(value, target, high=high, grow=grow, refine=budget.refine, rtol=budget.rtol)


class _Stuck(Exception):
    """An axis that cannot grow by the step ratio."""


def _solve_step(model: CostModel, parent: Step, axis: Axis, config: ExpansionConfig) -> float:
    """The factor by which ``axis`` multiplies the step cost by ~step_ratio from ``parent``.

    Raises:
        _Stuck: saying why, when the axis cannot grow it by at least sqrt(step_ratio).
    """
    name = config.solved_cost
    high, reason = model.limit(parent.factors, axis, config.max_span, config.span_source)
    if high <= 1.0:
        raise _Stuck(reason)
    now = parent.costs[name]
    want = config.step_ratio * now
    factor, cost = _grow(model, parent, axis, want, high, name, grow=True)
    if cost <= now:
        at = f"up to x{factor:.4g}" + (f", where {reason}" if reason else "")
        raise _Stuck(f"{name} does not grow with it ({at})")
    if cost < want / math.sqrt(config.step_ratio):
        raise _Stuck(f"{name} grows x{cost / now:.2f} at most" + (f" ({reason})" if reason else ""))
    return factor


def _propose(
    model: CostModel, parent: Step, names: Sequence[str], config: ExpansionConfig, step: int
) -> tuple[list[Step], dict[str, str]]:
    """Every axis of ``names`` grown by ~step_ratio from ``parent``; and those stuck, why."""
    out, stuck = [], {}
    for name in names:
        try:
            factor = _solve_step(model, parent, model.axes[name], config)
        except (_Stuck, SpecError) as exc:
            stuck[name] = exc.message if isinstance(exc, SpecError) else str(exc)
            continue
        state = {**parent.factors, name: parent.factors.get(name, 1.0) * factor}
        out.append(_make_step(model, config, step, name, factor, state, parent))
    return out, stuck


def _score(step: Step, parent: Step, criterion: Criterion) -> float:
    assert step.top1 is not None
    if criterion == "accuracy":
        return step.top1
    gained = step.top1 - (parent.top1 or 0.0)
    return gained / max(step.cost - parent.cost, 1e-12)


def _choose(candidates: list[Step], parent: Step, criterion: Criterion) -> Step:
    done = [c for c in candidates if c.top1 is not None]
    if not done:
        raise HarnessError(f"step {candidates[0].step}: every candidate failed to train")
    return max(done, key=lambda c: (_score(c, parent, criterion), -c.cost))


def _check(config: ExpansionConfig, base: Step, model: CostModel) -> None:
    get_cost(config.cost)
    get_cost(config.solved_cost)
    option = f"--target-{config.cost.replace('_', '-')}"
    if not 1.0 < config.step_ratio < math.inf:
        raise _cli_error(f"step ratio must be above 1, got {config.step_ratio:g}", "--step-ratio")
    if not math.isfinite(config.target):
        raise _cli_error(f"must be a finite number, got {config.target:g}", option)
    if config.target <= base.cost:
        raise _cli_error(
            f"target {config.target:g} is not above the cost of the base spec "
            f"'{model.spec.name}' ({base.cost:.6g} {COSTS[config.cost].unit})",
            option,
        )
    if config.max_span is not None and config.max_span < 1:
        raise _cli_error(f"must be at least 1, got {config.max_span}", "--max-frames")


def _evaluate(evaluator: Evaluator | None, steps: list[Step]) -> None:
    if evaluator is None:
        return
    for step, (top1, trial) in zip(steps, evaluator.evaluate(steps), strict=True):
        step.top1, step.trial = top1, trial


def _contract(
    model: CostModel, path: list[Step], config: ExpansionConfig, evaluator: Evaluator | None
) -> None:
    """Backward contraction: re-solve the last step's axis from its parent for the target."""
    last, parent = path[-1], path[-2]
    axis = model.axes[last.axis]
    factor, _ = _grow(model, parent, axis, config.target, last.factor, config.cost, grow=False)
    if factor >= last.factor:
        return
    path.pop()
    if factor <= 1.0:
        return  # the parent itself is the closest to the target
    state = {**parent.factors, axis.name: parent.factors.get(axis.name, 1.0) * factor}
    step = _make_step(model, config, last.step, axis.name, factor, state, parent, True)
    step.dropped = last.dropped
    if step.spec_hash == parent.spec_hash:  # rounds to the parent: it is the closest
        return
    if step.spec_hash == last.spec_hash:  # rounds to the same network: nothing to contract
        path.append(last)
        return
    _evaluate(evaluator, [step])
    if evaluator is not None and step.top1 is None:
        path.append(last)  # the contraction failed to train: keep the uncontracted step
        return
    path.append(step)


def _blocked(config: ExpansionConfig, current: Step, n: int, stuck: dict[str, str]) -> SpecError:
    reasons = "; ".join(f"{axis}: {why}" for axis, why in stuck.items())
    return _cli_error(
        f"step {n}: no axis can grow {config.solved_cost} x{config.step_ratio:g} before the "
        f"target {config.target:g} {config.cost} (now {current.cost:.6g}): {reasons}",
        "--axes",
    )


def _model(base: str, config: ExpansionConfig) -> tuple[CostModel, dict[str, str]]:
    """The cost model over every axis the run names, and each name's axis (aliases)."""
    from harness.spec import load_spec

    order = config.order or ()
    names = list(dict.fromkeys([*config.axes, *order]))
    spec = load_spec(base)
    option = {n: "--order" if n in order and n not in config.axes else "--axes" for n in names}
    axes = [create_axis(n, spec, option=option[n]) for n in names]
    model = CostModel(
        base, axes, cost=get_cost(config.solved_cost), classes=config.classes,
        batch=config.batch, timing=config.timing,
    )  # fmt: skip
    # NOTE: aliases (gamma_t) resolve to their axis; steps are named by the resolved axis.
    return model, {n: a.name for n, a in zip(names, axes, strict=True)}


def expand_to_target(
    base: str,
    config: ExpansionConfig,
    *,
    evaluator: Evaluator | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> Expansion:
    """Expand ``base`` (a zoo name or spec file) up to ``config.target``.

    Without ``evaluator`` it is a dry run: nothing trains, and ``config.order`` (required)
    names the axis of every step.

    Raises:
        SpecError: an axis that is not an axis or spec key, an unknown cost, a target not
            above the base cost, a step ratio <= 1, an ``order`` whose axis cannot grow at
            its step, or no axis left that can grow before the target.
    """
    order = config.order
    if evaluator is None and not order:
        raise _cli_error("a dry run needs the axis of every step", "--order")
    model, resolved = _model(base, config)
    current = _make_step(model, config, 0, "base", 1.0, {}, None)
    _check(config, current, model)
    _evaluate(evaluator, [current])
    result = Expansion(
        base=base, cost=config.cost, step_cost=config.solved_cost, target=config.target,
        path=[current],
    )  # fmt: skip
    active = list(dict.fromkeys(resolved[a] for a in config.axes))
    blocked: dict[str, str] = {}  # every axis dropped so far -> why
    # NOTE: a timed target is met within the timing's own tolerance (see SOLVER_BUDGETS).
    tolerance = max(config.tolerance, SOLVER_BUDGETS.get(config.cost, EXACT).rtol)
    while current.cost < config.target * (1.0 - tolerance):
        n = len(result.path)
        if n > config.max_steps or (order and n > len(order)):
            raise _cli_error(
                f"after {n - 1} steps the cost is {current.cost:.6g}, still below the target "
                f"{config.target:g}; list more axes",
                "--order" if order else "--max-steps",
            )
        axes_now = [resolved[order[n - 1]]] if order else active
        proposals, stuck = _propose(model, current, axes_now, config, n)
        result.skipped += [{"step": n, "axis": a, "reason": why} for a, why in stuck.items()]
        if order and stuck:
            why = next(iter(stuck.values()))
            raise _cli_error(f"step {n}: axis '{order[n - 1]}' cannot grow: {why}", "--order")
        blocked.update(stuck)
        if not proposals:
            raise _blocked(config, current, n, blocked)
        active = [a for a in active if a not in stuck]
        _evaluate(evaluator, proposals)
        current = (
            proposals[0] if evaluator is None else _choose(proposals, current, config.criterion)
        )
        current.dropped = stuck
        result.path.append(current)
        overshot = current.cost > config.target * (1.0 + tolerance)
        if overshot:
            _contract(model, result.path, config, evaluator)
            current = result.path[-1]
        if evaluator is not None:
            evaluator.keep(result.path)
        if on_step is not None:
            on_step(current)
        if overshot:
            break
    return result
