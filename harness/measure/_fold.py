"""Repeated blocks, simulated once: a stage's run of alike blocks leaves a repeating trace.

Most of a network's blocks repeat the one before them: X3D-M's third stage is one strided
block and ten alike ones (alternating with and without squeeze-excitation, a period of
two). A block's simulated step depends only on how it is built and on its neighbours (which
of them keep its input or output alive for backward), so inside such a run every group of
``period`` blocks allocates and frees the same bytes in the same order, forward and backward,
and adds the same multiply-adds, parameters and optimizer state.

:func:`fold_plan` drops all but one of those interior groups from the plan, keeping a block
on each side so that the group kept sees the same neighbours its copies do::

    stage:   b0 | r1 | [r2 r3] [r4 r5] [r6 r7] [r8 r9] | r10      (period 2)
    built:   b0 | r1 | [r2 r3]                         | r10      (3 copies left out)

The simulation of the shorter network marks where the kept group starts and ends, forward
and backward (:class:`RepeatMarks`), and replays those events once per copy left out
(:func:`expand_events`): the result is the full network's, byte for byte, at a fraction of
the build and simulation. Only single-pathway networks are folded; in a multi-pathway one
the backward passes of the pathways may interleave. ``tests/measure/test_fold.py`` checks
every zoo model against its full build.

Blocks alike to one built before (the kept group's neighbours are alike to its members,
and a search's candidates share most blocks) are copied rather than constructed
(:func:`create_meta_block`).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from harness.compiler.blocks import create_block
from harness.compiler.plan import BlockPlan, Grid, NetworkPlan, StagePlan
from harness.measure._runtime import (
    module_tensors,
    optimizer_state_like,
    storage_bytes,
    submodules,
)
from harness.measure.flops import count_module_params

if TYPE_CHECKING:
    from harness.measure._meta import Simulator, StepTrace

__all__ = [
    "Fold",
    "Folding",
    "Repeat",
    "RepeatMarks",
    "Replay",
    "create_meta_block",
    "expand_events",
    "fold_plan",
    "fold_stage",
    "meta_copy",
]


@dataclass(frozen=True)
class Fold:
    """A group of alike blocks built once for several copies."""

    stage: int  # the stage's index in the network
    start: int  # position of the group's first block in the built stage
    period: int  # blocks in the group
    extra: int  # copies of the group left out of the built stage


def _alike(
    spec: Any,
    dim_in: int,
    dim_out: int,
    dim_inner: int | None,
    stride: tuple[int, int],
    grid: Grid | None,
    index: int,
) -> tuple[Any, ...]:
    """What a block is built from: blocks with equal keys are built alike."""
    return (spec, dim_in, dim_out, dim_inner, stride, grid, index % spec.period())


def _key(block: BlockPlan) -> tuple[Any, ...]:
    b = block
    return _alike(b.spec, b.dim_in, b.dim_out, b.dim_inner, b.stride, b.grid, b.index)


def fold_stage(blocks: Sequence[BlockPlan]) -> tuple[int, int, int] | None:
    """``(start, period, copies)`` of the longest foldable run of ``blocks``, or None.

    The run is ``copies`` groups of ``period`` alike blocks starting at ``start``, with an
    alike block before it (the last of a group) and after it (the first of a group).
    """
    n = len(blocks)
    if n < 4:
        return None
    keys = [_key(b) for b in blocks]
    period = math.lcm(*(b.spec.period() for b in blocks))
    # The run starts one block after the first from which the keys repeat with the period.
    start = n - period + 1
    while start > 1 and keys[start - 2] == keys[start - 2 + period]:
        start -= 1
    copies = (n - start - 1) // period  # a block must follow the last copy
    if copies < 2:  # nothing left out
        return None
    return start, period, copies


def fold_plan(plan: NetworkPlan) -> tuple[NetworkPlan, tuple[Fold, ...]]:
    """``plan`` without the repeated blocks a simulation can replay, and where they were."""
    if len(plan.pathways) != 1:
        return plan, ()
    (pathway,) = plan.pathways
    stages: list[StagePlan] = []
    folds = []
    for i, stage in enumerate(pathway.stages):
        # NOTE: a checkpointed block runs its forward pass again in backward, which the
        # marks of a repeated group do not follow: such a stage is simulated whole. So is
        # one with a token selection, which shifts its blocks among the stage's children.
        whole = stage.checkpoint or stage.selection is not None
        run = None if whole else fold_stage(stage.blocks)
        if run is None:
            stages.append(stage)
            continue
        start, period, copies = run
        kept = (*stage.blocks[: start + period], *stage.blocks[start + copies * period :])
        stages.append(replace(stage, blocks=kept))
        folds.append(Fold(stage=i, start=start, period=period, extra=copies - 1))
    if not folds:
        return plan, ()
    return replace(plan, pathways=(replace(pathway, stages=tuple(stages)),)), tuple(folds)


# Blocks built for earlier meta builds in this process, by what they are built from (most
# recently used last): a search's candidates share most of their blocks.
_TEMPLATES: OrderedDict[tuple[Any, ...], nn.Module] = OrderedDict()
_TEMPLATE_LIMIT = 512
_TEMPLATE_LOCK = threading.Lock()


def create_meta_block(
    spec: Any,
    *,
    dim_in: int,
    dim_out: int,
    dim_inner: int | None,
    stride: tuple[int, int],
    index: int,
    grid: Grid | None = None,
) -> nn.Module:
    """:func:`create_block` for meta builds: a copy of the alike block built before, if any.

    Copying (:func:`meta_copy`) skips the module constructors, most of a meta build. Alike
    is :func:`fold_stage`'s sense: same spec node, widths, strides, grid and position in
    the spec's period. The block built is kept as a template and never handed out itself.
    """
    key = _alike(spec, dim_in, dim_out, dim_inner, stride, grid, index)
    with _TEMPLATE_LOCK:
        template = _TEMPLATES.get(key)
        if template is not None:
            _TEMPLATES.move_to_end(key)
    if template is None:
        template = create_block(
            spec,
            dim_in=dim_in,
            dim_out=dim_out,
            dim_inner=dim_inner,
            stride=stride,
            index=index,
            grid=grid,
        )
        with _TEMPLATE_LOCK:
            _TEMPLATES[key] = template
            while len(_TEMPLATES) > _TEMPLATE_LIMIT:
                _TEMPLATES.popitem(last=False)
    # NOTE: a copy only makes meta tensors, device given: the build's function mode
    # (MetaBuild) has nothing to do there, and would cost a Python call per tensor.
    with torch._C.DisableTorchFunction():
        return meta_copy(template)


# Mutable containers a module keeps in its __dict__ (hook tables, padding lists): a copy gets
# its own. NOTE: exact types, tested once per attribute; isinstance against a union costs a
# third of a copy.
_CONTAINERS = frozenset((dict, OrderedDict, list, set))


def meta_copy(module: nn.Module, memo: dict[int, Any] | None = None) -> nn.Module:
    """A copy of ``module`` on the meta device sharing nothing mutable with it, built
    without constructors.

    Its parameters and buffers are new meta tensors of the same shapes (shared ones stay
    shared), its submodules copies, and its containers (hook tables among them) its own.
    """
    memo = {} if memo is None else memo
    done = memo.get(id(module))
    if done is not None:
        return done
    copy = object.__new__(type(module))
    memo[id(module)] = copy
    state = {
        name: value.copy() if type(value) in _CONTAINERS else value
        for name, value in module.__dict__.items()
    }
    state["_parameters"] = {
        name: None if p is None else _meta_tensor(p, memo, parameter=True)
        for name, p in module._parameters.items()
    }
    state["_buffers"] = {
        name: None if b is None else _meta_tensor(b, memo, parameter=False)
        for name, b in module._buffers.items()
    }
    state["_modules"] = {
        name: None if m is None else meta_copy(m, memo) for name, m in module._modules.items()
    }
    copy.__dict__.update(state)
    return copy


def _meta_tensor(t: torch.Tensor, memo: dict[int, Any], *, parameter: bool) -> torch.Tensor:
    done = memo.get(id(t))
    if done is None:
        done = torch.empty(t.shape, dtype=t.dtype, device="meta")
        if parameter:
            done = nn.Parameter(done, t.requires_grad)
        memo[id(t)] = done
    return done


class Folding:
    """A plan edit for :func:`harness.compiler.build_model` that remembers its folds."""

    def __init__(self) -> None:
        self.folds: tuple[Fold, ...] = ()

    def __call__(self, plan: NetworkPlan) -> NetworkPlan:
        plan, self.folds = fold_plan(plan)
        return plan

    def repeats(self, stages: nn.ModuleList) -> list[Repeat]:
        """The built groups to replay, in the network's built ``stages``."""
        result = []
        for fold in self.folds:
            blocks = list(stages[fold.stage].children())
            end = fold.start + fold.period
            result.append(Repeat(blocks[fold.start : end], after=blocks[end], extra=fold.extra))
        return result


@dataclass(frozen=True)
class Repeat:
    """A built group of blocks that the full network runs ``1 + extra`` times in a row."""

    group: Sequence[nn.Module]
    after: nn.Module  # the module that runs right after the group
    extra: int

    def modules(self) -> list[nn.Module]:
        """The group's blocks and every module under them."""
        return [s for m in self.group for s in submodules(m)]


@dataclass(frozen=True)
class _Snapshot:
    events: int  # length of the simulator's log
    macs: Counter[str]
    activations: int


@dataclass(frozen=True)
class Replay:
    """Events ``start:end`` of a simulator's log happen ``times`` more times after ``end``."""

    start: int
    end: int
    times: int
    # The storage the span hands on (the group's output forward, the gradient of its input
    # backward): what follows frees it, and that freeing belongs to what follows.
    handed: int | None = None


def expand_events(
    events: Sequence[tuple[int, int]], marks: dict[str, int], replays: Sequence[Replay]
) -> tuple[list[int], dict[str, int]]:
    """The sizes of ``events`` with ``replays`` applied, and ``marks`` moved to match.

    A copy also frees, with the span's own, whatever the span allocates and leaves to be
    freed outside it (autocast's cached parameter casts, freed as the forward pass ends),
    but for the storage it hands on.
    """
    sizes = [nbytes for _, nbytes in events]
    inserts: dict[int, list[int]] = {}
    positions: dict[int, list[int]] | None = None  # storage -> where its events are
    for r in replays:
        inserts.setdefault(r.end, []).extend(sizes[r.start : r.end] * r.times)
        left: dict[int, int] = {}  # allocated in the span and alive as it ends
        for key, nbytes in events[r.start : r.end]:
            if nbytes > 0:
                left[key] = nbytes
            else:
                left.pop(key, None)
        if r.handed is not None:
            left.pop(r.handed, None)
        if not left:
            continue
        if positions is None:
            positions = {}
            for i, (key, _) in enumerate(events):
                positions.setdefault(key, []).append(i)
        for key, nbytes in left.items():
            # Its next event is its freeing (a live storage's address is not reused); one
            # inside a replayed span (an activation saved for backward) is replayed there.
            freed = next((i for i in positions[key] if i >= r.end), None)
            if freed is not None and not any(s.start <= freed < s.end for s in replays):
                inserts.setdefault(freed + 1, []).extend([-nbytes] * r.times)
    expanded: list[int] = []
    moved: dict[str, int] = {}
    previous = 0
    for pos in sorted(set(inserts) | set(marks.values())):
        expanded.extend(sizes[previous:pos])
        expanded.extend(inserts.get(pos, ()))
        moved.update((name, len(expanded)) for name, end in marks.items() if end == pos)
        previous = pos
    expanded.extend(sizes[previous:])
    return expanded, {name: moved[name] for name in marks}


class RepeatMarks(contextlib.AbstractContextManager["RepeatMarks"]):
    """Marks where a repeated group's events start and end in a simulated step.

    Forward, the group runs from its first block's call to the call of the module after
    it; backward, from the gradient of its output to the gradient of its input (tensor
    hooks, which allocate nothing).
    """

    def __init__(self, repeat: Repeat, sim: Simulator) -> None:
        self.repeat = repeat
        self._sim = sim
        self.forward: list[_Snapshot] = []  # at the group's start and end
        self.backward: dict[str, int] = {}  # "start"/"end" -> length of the log
        self._output: int | None = None  # the group's output storage
        self._input_grad: int | None = None  # the storage of its input's gradient
        self._handles = [
            repeat.group[0].register_forward_pre_hook(self._on_call),
            repeat.after.register_forward_pre_hook(self._on_call),
        ]

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()

    def _on_call(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        sim = self._sim
        self.forward.append(_Snapshot(len(sim.events), Counter(sim.macs), sim.activations))
        (x,) = args
        # The group's input gets its gradient when the group's backward is done; its output
        # (the next module's input) when the group's backward starts.
        if module is self.repeat.group[0]:
            x.register_hook(lambda grad: self._on_grad("end", grad))
        else:
            self._output = x.untyped_storage()._cdata
            x.register_hook(lambda grad: self._on_grad("start", grad))

    def _on_grad(self, name: str, grad: torch.Tensor) -> None:
        assert name not in self.backward, "a repeated group ran twice"
        self.backward[name] = len(self._sim.events)
        if name == "end":
            self._input_grad = grad.untyped_storage()._cdata

    def replays(self) -> list[Replay]:
        """The group's forward and backward events, each replayed ``extra`` times."""
        first, last = self.forward
        extra = self.repeat.extra
        return [
            Replay(first.events, last.events, extra, self._output),
            Replay(self.backward["start"], self.backward["end"], extra, self._input_grad),
        ]

    def unfold(self, trace: StepTrace, optimizer: str) -> StepTrace:
        """``trace`` with the parameters, state and arithmetic of the copies added."""
        first, last = self.forward
        extra = self.repeat.extra
        params, buffers = module_tensors(self.repeat.modules())
        macs = Counter(trace.macs)
        for name, count in (last.macs - first.macs).items():
            macs[name] += extra * count
        return replace(
            trace,
            param_bytes=trace.param_bytes + extra * storage_bytes(params),
            buffer_bytes=trace.buffer_bytes + extra * storage_bytes(buffers),
            grad_bytes=trace.grad_bytes + extra * storage_bytes(p.grad for p in params),
            optimizer_bytes=trace.optimizer_bytes
            + extra * storage_bytes(optimizer_state_like(optimizer, params)),
            macs=dict(macs),
            activations=trace.activations + extra * (last.activations - first.activations),
        )


def unfolded_params(repeats: Sequence[Repeat], *, norm: bool = True) -> int:
    """Parameters the copies of ``repeats`` left out of a folded build would add."""
    return sum(r.extra * count_module_params(r.modules(), norm=norm) for r in repeats)
