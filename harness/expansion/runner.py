"""X3D's expansion as a tool: grow a base network one axis at a time up to a target cost.

    base --step: every axis grown by the factor that multiplies the cost by ~ratio-->
         candidates --train and evaluate (the search machinery)--> keep the best
         ... until cost >= target --backward contraction: the last axis solved for
         cost = target from the last step's parent--> final network

Each step solves, for every axis, the factor that multiplies the cost (``gflops`` by
default; see :data:`harness.expansion.solve.COSTS`) by ``step_ratio`` (about 2, as in
Feichtenhofer, "X3D: Expanding Architectures for Efficient Video Recognition", CVPR 2020),
then keeps the candidate with the best accuracy (``accuracy``: they all cost about the
same) or the best accuracy gain per unit of cost (``gain_per_cost``). Candidates run
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
from harness.expansion.solve import COSTS, Candidate, CostModel, State, solve_factor

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
    cost: str = "gflops"  # a name in harness.expansion.solve.COSTS
    axes: tuple[str, ...] = DEFAULT_AXES  # axes tried at every step
    step_ratio: float = 2.0  # each step multiplies the cost by about this
    order: tuple[str, ...] | None = None  # axis of every step (forced path)
    criterion: Criterion = "accuracy"
    max_frames: int | None = None  # no clip longer than this (the video length)
    max_steps: int = 24
    tolerance: float = 0.02  # a path within this fraction of the target is done
    classes: int | None = None  # classes the cost model builds the head for


@dataclass
class Step:
    """One step of the path (or a candidate of a step)."""

    step: int
    axis: str  # "base" for step 0
    factor: float  # this step's factor on ``axis``
    factors: dict[str, float]  # cumulative factor per axis over the base
    params: dict[str, Any]  # overrides of the base spec
    cost: float
    ratio: float | None  # cost / parent cost
    spec_hash: str
    parent: str | None = None  # parent's spec hash
    contracted: bool = False  # the backward contraction of the last step
    top1: float | None = None
    trial: int | None = None
    frames: int = 0  # realised clip, for reading the path
    size: int = 0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["factors"] = {k: round(v, 4) for k, v in self.factors.items()}
        return out


@dataclass
class Expansion:
    """What an expansion leaves behind."""

    base: str
    cost: str
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
    step: int,
    axis: str,
    factor: float,
    state: State,
    parent: Step | None,
    contracted: bool = False,
) -> Step:
    cand: Candidate = model.candidate(state)
    cost = model.cost(state)
    return Step(
        step=step, axis=axis, factor=factor, factors=dict(state), params=cand.params,
        cost=cost, ratio=None if parent is None else cost / parent.cost,
        spec_hash=cand.spec_hash, parent=None if parent is None else parent.spec_hash,
        contracted=contracted, frames=cand.realised.clip.frames, size=cand.realised.clip.size,
    )  # fmt: skip


def _grow(
    model: CostModel, parent: Step, axis: Axis, target: float, high: float, *, grow: bool
) -> tuple[float, float]:
    """Solve ``axis``'s factor from ``parent`` for ``target`` cost: (factor, cost)."""
    start = parent.factors.get(axis.name, 1.0)

    def cost(f: float) -> float:
        return model.cost({**parent.factors, axis.name: start * f})

    return solve_factor(cost, target, high=high, grow=grow)


def _propose(
    model: CostModel, parent: Step, names: Sequence[str], config: ExpansionConfig, step: int
) -> tuple[list[Step], list[dict[str, Any]]]:
    """Every axis of ``names`` grown by ~step_ratio from ``parent``; and those skipped."""
    out, skipped = [], []
    want = config.step_ratio * parent.cost
    for name in names:
        axis = model.axes[name]
        try:
            high, reason = model.limit(parent.factors, axis, config.max_frames)
            if high <= 1.0:
                raise _Stuck(reason)
            factor, cost = _grow(model, parent, axis, want, high, grow=True)
            if cost <= parent.cost or cost < want / math.sqrt(config.step_ratio):
                grown = f"x{cost / parent.cost:.2f} at most"
                raise _Stuck(f"cost grows {grown}" + (f" ({reason})" if reason else ""))
        except (_Stuck, SpecError) as exc:
            text = exc.message if isinstance(exc, SpecError) else str(exc)
            skipped.append({"step": step, "axis": name, "reason": text})
            continue
        state = {**parent.factors, name: parent.factors.get(name, 1.0) * factor}
        out.append(_make_step(model, step, name, factor, state, parent))
    return out, skipped


class _Stuck(Exception):
    """An axis that cannot grow by the step ratio."""


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
    option = f"--target-{config.cost.replace('_', '-')}"
    if not config.step_ratio > 1.0:
        raise _cli_error(f"step ratio must be above 1, got {config.step_ratio:g}", "--step-ratio")
    if config.target <= base.cost:
        unit = COSTS[config.cost][1]
        raise _cli_error(
            f"target {config.target:g} is not above the cost of the base spec "
            f"'{model.spec.name}' ({base.cost:.6g} {unit})",
            option,
        )


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
    factor, _ = _grow(model, parent, axis, config.target, last.factor, grow=False)
    if factor >= last.factor:
        return
    path.pop()
    if factor <= 1.0:
        return  # the parent itself is the closest to the target
    state = {**parent.factors, axis.name: parent.factors.get(axis.name, 1.0) * factor}
    step = _make_step(model, last.step, axis.name, factor, state, parent, contracted=True)
    if step.spec_hash == last.spec_hash:  # rounds to the same network: nothing to contract
        path.append(last)
        return
    _evaluate(evaluator, [step])
    if evaluator is not None and step.top1 is None:
        path.append(last)  # the contraction failed to train: keep the uncontracted step
        return
    path.append(step)


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
        SpecError: an axis that is not an axis or spec key, a target not above the base
            cost, a step ratio <= 1, or an ``order`` whose axis cannot grow at its step.
    """
    order = config.order
    if evaluator is None and not order:
        raise _cli_error("a dry run needs the axis of every step", "--order")
    names = list(dict.fromkeys([*config.axes, *(order or ())]))
    from harness.spec import load_spec

    spec = load_spec(base)
    option = {
        n: "--order" if n in (order or ()) and n not in config.axes else "--axes" for n in names
    }
    axes = [create_axis(n, spec, option=option[n]) for n in names]
    model = CostModel(base, axes, cost=config.cost, classes=config.classes)
    # NOTE: aliases (gamma_t) resolve to their axis; steps are named by the resolved axis.
    resolved = {n: a.name for n, a in zip(names, axes, strict=True)}
    current = _make_step(model, 0, "base", 1.0, {}, None)
    _check(config, current, model)
    _evaluate(evaluator, [current])
    result = Expansion(base=base, cost=config.cost, target=config.target, path=[current])
    while current.cost < config.target * (1.0 - config.tolerance):
        n = len(result.path)
        if n > config.max_steps or (order and n > len(order)):
            raise _cli_error(
                f"after {n - 1} steps the cost is {current.cost:.6g}, still below the target "
                f"{config.target:g}; list more axes",
                "--order" if order else "--max-steps",
            )
        axes_now = [resolved[order[n - 1]]] if order else [resolved[a] for a in config.axes]
        proposals, skipped = _propose(model, current, axes_now, config, n)
        result.skipped += skipped
        if order and skipped:
            raise _cli_error(
                f"step {n}: axis '{order[n - 1]}' cannot grow: {skipped[0]['reason']}", "--order"
            )
        if not proposals:
            reasons = "; ".join(f"{s['axis']}: {s['reason']}" for s in skipped)
            raise HarnessError(f"step {n}: no axis can grow ({reasons})")
        _evaluate(evaluator, proposals)
        current = (
            proposals[0] if evaluator is None else _choose(proposals, current, config.criterion)
        )
        result.path.append(current)
        if current.cost > config.target * (1.0 + config.tolerance):
            _contract(model, result.path, config, evaluator)
            current = result.path[-1]
            if evaluator is not None:
                evaluator.keep(result.path)
            if on_step is not None:
                on_step(current)
            break
        if evaluator is not None:
            evaluator.keep(result.path)
        if on_step is not None:
            on_step(current)
    return result
