"""Simulate a step on meta tensors: what it keeps alive, and its multiply-adds.

Meta tensors have shapes, dtypes and storages of a given size but no data, so a forward,
backward and optimizer step over them costs milliseconds whatever the clip and batch.

:class:`Simulator` (a ``TorchDispatchMode``, below autograd) sees every operator PyTorch
runs, forward and backward, and every storage it creates. A storage is counted from the
operator that returns it until Python frees it (a weak reference), as the caching allocators
count it, so replaying the log gives the bytes the step holds at each moment and its peak.
Kernel workspaces (im2col buffers of CPU convolutions, cuDNN workspace) are invisible here
and not counted. In the forward pass it also counts the multiply-adds of the compute
operators (the ``gflops`` convention) and fvcore's activations.
:class:`~harness.measure._policy.DevicePolicy` (above autograd) makes the meta step run
what the target device would: autocast's casts and fused attention.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import sys
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, ParamSpec, TypeVar

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from harness.compiler.recompute import CheckpointedStage, is_recomputing
from harness.measure._fold import Repeat, RepeatMarks, Replay, expand_events, meta_copy
from harness.measure._policy import DevicePolicy
from harness.measure._runtime import (
    PRECISIONS,
    module_tensors,
    optimizer_state_like,
    storage_bytes,
    submodules,
    train_step,
)
from harness.measure._shapes import get_shape_rule

__all__ = [
    "ForwardTrace",
    "MetaModel",
    "SavedTensors",
    "Simulator",
    "StepTrace",
    "meta_model",
    "no_gc",
    "simulate_forward",
    "simulate_train_step",
]

aten = torch.ops.aten
_P = ParamSpec("_P")
_T = TypeVar("_T")


def _prod(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _conv_macs(x: torch.Tensor, w: torch.Tensor, *args: Any, out: torch.Tensor) -> int:
    # Every output (input, when transposed) element takes one multiply-add per weight of
    # its group: w is (C_out, C_in / groups, *kernel), transposed (C_in, C_out / groups, ...).
    transposed = len(args) > 4 and bool(args[4])
    return (x.numel() if transposed else out.numel()) * _prod(w.shape[1:])


def _mm_macs(a: torch.Tensor, b: torch.Tensor, *args: Any, out: torch.Tensor) -> int:
    return a.shape[0] * a.shape[1] * b.shape[1]


def _addmm_macs(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *args: Any, out: Any) -> int:
    return _mm_macs(a, b, out=out)


def _bmm_macs(a: torch.Tensor, b: torch.Tensor, *args: Any, out: torch.Tensor) -> int:
    return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]


def _baddbmm_macs(
    bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *args: Any, out: Any
) -> int:
    return _bmm_macs(a, b, out=out)


def _attention_macs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *args: Any, out: Any) -> int:
    # q k^T then (softmax) v: prod(batch dims) N M (D + Dv), as harness.measure.ops counts.
    return _prod(q.shape[:-2]) * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])


# Compute operators at dispatch level and their multiply-adds (the ``gflops`` convention,
# one multiply-add = one FLOP). Linear, matmul and einsum reach dispatch as mm/addmm/bmm;
# attention as one of its fused kernels (see harness.measure._policy).
_COMPUTE: dict[Any, Callable[..., int]] = {
    aten.convolution.default: _conv_macs,
    aten.mm.default: _mm_macs,
    aten.addmm.default: _addmm_macs,
    aten.bmm.default: _bmm_macs,
    aten.baddbmm.default: _baddbmm_macs,
    aten._scaled_dot_product_flash_attention_for_cpu.default: _attention_macs,
    aten._scaled_dot_product_efficient_attention.default: _attention_macs,
    aten._scaled_dot_product_flash_attention.default: _attention_macs,
    aten._scaled_dot_product_cudnn_attention.default: _attention_macs,
}
# fvcore's ActivationCountAnalysis counts the outputs of these (conv, linear, matmul, einsum).
_ACTIVATION_OPS = frozenset(
    (
        aten.convolution.default,
        aten.mm.default,
        aten.addmm.default,
        aten.bmm.default,
        aten.baddbmm.default,
    )
)


_DETACH = aten.detach.default


class PhaseBytes(NamedTuple):
    peak: int  # most bytes held at once during the phase
    held: int  # bytes held when it ends


class Simulator(TorchDispatchMode):
    """Logs the storages created under it, as they are allocated and freed; counts MACs.

    The log replays into the most bytes held at once per phase (:meth:`peaks`).

    Args:
        check_rules: also run the meta kernel beside every fast shape rule and raise if they
            disagree (for tests; slow).
    """

    def __init__(self, *, check_rules: bool = False) -> None:
        super().__init__()
        self.check_rules = check_rules
        self.counting = False  # count multiply-adds and activations (the forward pass)
        self.macs: Counter[str] = Counter()  # operator -> multiply-adds
        # Multiply-adds of forward passes that activation checkpointing recomputes in the
        # backward pass (counted while ``recomputing`` is above zero).
        self.recompute_macs: Counter[str] = Counter()
        self.recomputing = 0
        self.activations = 0  # elements output by the compute operators
        self.events: list[tuple[int, int]] = []  # (storage, +bytes allocated or -bytes freed)
        self.marks: dict[str, int] = {}  # phase -> number of events when it ended
        self._alive: dict[int, weakref.ref[Any]] = {}

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # NOTE: PyTorch wraps a mode's __torch_dispatch__ to keep torch.compile out of it,
        # at a few microseconds an operator; a simulation is never compiled.
        return False

    def adopt(self, tensors: Iterable[torch.Tensor | None]) -> None:
        """Watch storages that exist before the step (parameters, inputs) without counting."""
        for t in tensors:
            if isinstance(t, torch.Tensor):
                self._watch(t.untyped_storage(), 0)

    def phase(self, name: str) -> None:
        """End phase ``name`` here (the next phase starts)."""
        self.marks[name] = len(self.events)

    def replay(self, replays: Sequence[Replay] = ()) -> dict[str, PhaseBytes]:
        """The bytes of each phase, beyond what was held before the first.

        Args:
            replays: spans of the log that happen more often than they were logged (the
                copies of a repeated group, see :mod:`harness.measure._fold`).
        """
        sizes, marks = expand_events(self.events, self.marks, replays)
        running = start = 0
        result = {}
        for name, end in marks.items():
            totals = list(itertools.accumulate(sizes[start:end], initial=running))
            running = totals[-1]
            result[name], start = PhaseBytes(max(totals), running), end
        return result

    def _watch(self, storage: Any, nbytes: int) -> None:
        key = storage._cdata
        if key in self._alive:
            return
        alive, events = self._alive, self.events

        def release(_: object) -> None:
            alive.pop(key, None)
            if nbytes:
                events.append((key, -nbytes))

        alive[key] = weakref.ref(storage, release)
        if nbytes:
            events.append((key, nbytes))

    def _track(self, out: Any) -> None:
        if type(out) is tuple or type(out) is list:
            for item in out:
                if isinstance(item, torch.Tensor):
                    self._track(item)
        elif isinstance(out, torch.Tensor):
            storage = out.untyped_storage()
            if storage._cdata not in self._alive:
                self._watch(storage, storage.nbytes())

    def _count(self, func: Any, args: Any, kwargs: Any, out: Any) -> None:
        macs = _COMPUTE.get(func)
        if macs is None:
            return
        self.macs[func.__name__.split(".")[0]] += macs(*args, out=out)
        if func in _ACTIVATION_OPS:
            self.activations += out.numel()

    def _count_recomputed(self, func: Any, args: Any, out: Any) -> None:
        macs = _COMPUTE.get(func)
        if macs is not None:
            self.recompute_macs[func.__name__.split(".")[0]] += macs(*args, out=out)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is _DETACH:
            # NOTE: autograd detaches every output it saves and every gradient it stores
            # (about half the operators of a step); an alias holds no storage of its own.
            return func(*args)
        kwargs = kwargs or {}
        # Rules stand in for meta kernels only: real tensors (an optimizer's step counter
        # on the CPU) must be computed.
        rule = get_shape_rule(func) if args and getattr(args[0], "is_meta", False) else None
        out = rule(*args, **kwargs) if rule is not None else None
        if out is None:
            out = func(*args, **kwargs)
        elif self.check_rules:
            _check_rule(func, out, func(*args, **kwargs))
        if self.counting:
            self._count(func, args, kwargs, out)
        elif self.recomputing:
            self._count_recomputed(func, args, out)
        self._track(out)
        return out


def _check_rule(func: Any, fast: Any, slow: Any) -> None:
    fast_list = list(fast) if isinstance(fast, tuple | list) else [fast]
    slow_list = list(slow) if isinstance(slow, tuple | list) else [slow]
    for a, b in zip(fast_list, slow_list, strict=True):
        if a is None or b is None:
            ok = a is None and b is None
        else:
            ok = (a.shape, a.dtype, a.stride()) == (b.shape, b.dtype, b.stride())
        if not ok:
            raise AssertionError(f"shape rule for {func} disagrees with its meta kernel")


class SavedTensors(contextlib.AbstractContextManager["SavedTensors"]):
    """Bytes of the distinct storages autograd saves for backward, beyond ``known`` ones."""

    def __init__(self, known: Iterable[torch.Tensor]) -> None:
        self._known = {t.untyped_storage()._cdata for t in known}
        self._seen: set[int] = set()
        self.nbytes = 0  # of the storages seen so far
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, _unpack)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        key = storage._cdata
        if key not in self._known and key not in self._seen:
            self._seen.add(key)
            self.nbytes += storage.nbytes()
        return t

    def __enter__(self) -> SavedTensors:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)


def _unpack(t: torch.Tensor) -> torch.Tensor:
    return t


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Hold off the cyclic collector: a full collection mid-simulation costs more than it.

    Storages are still freed by reference counting, which is what the simulation follows.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class MetaModel:
    """A module to run on meta tensors: its forward and its meta parameters and buffers."""

    module: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]
    params: list[torch.Tensor]
    buffers: list[torch.Tensor]
    modules: list[nn.Module]  # ``module`` and everything under it


@contextlib.contextmanager
def meta_model(model: nn.Module) -> Iterator[MetaModel]:
    """``model`` on the meta device; a model with real weights runs as a meta copy of it.

    ``model`` is not changed: a model with real weights is copied (:func:`meta_copy`, no
    constructors run), and the train/eval mode of each of its modules is restored on exit.
    NOTE: a copy rather than swapping meta tensors in for the forward call only: a
    checkpointed stage runs its forward pass again inside the backward pass.
    """
    modules = submodules(model)
    modes = [m.training for m in modules]
    params, buffers = module_tensors(modules)
    try:
        if all(t.is_meta for t in params) and all(t.is_meta for t in buffers):
            yield MetaModel(model, model, params, buffers, modules)
            return
        copy = meta_copy(model)
        copies = submodules(copy)
        meta_params, meta_buffers = module_tensors(copies)
        yield MetaModel(copy, copy, meta_params, meta_buffers, copies)
    finally:
        for m, mode in zip(modules, modes, strict=True):
            if m.training != mode:
                m.training = mode


def set_mode(modules: Iterable[nn.Module], training: bool) -> None:
    """Put each of ``modules`` in train or eval mode, as ``module.train(training)`` does.

    NOTE: the flag is set directly, only where it changes: ``train()`` recurses through
    ``named_children`` and sets every flag through ``nn.Module.__setattr__``.
    """
    for m in modules:
        if m.training != training:
            m.training = training


@dataclass(frozen=True)
class StepTrace:
    """What one simulated training step holds, in bytes, and its forward arithmetic."""

    param_bytes: int
    buffer_bytes: int
    input_bytes: int  # the clip batch and its targets
    grad_bytes: int  # parameter gradients
    optimizer_bytes: int  # optimizer state (it exists before the step: steady state)
    saved_bytes: int  # activations autograd saves for backward (parameters excluded)
    forward_peak: int  # most bytes created by the step and alive at once, per phase
    backward_peak: int
    optimizer_peak: int
    macs: dict[str, int]  # forward multiply-adds by operator, whole batch
    activations: int  # fvcore's activations, whole batch
    grads_held: bool = False  # the gradients exist before the step (gradient accumulation)
    # forward multiply-adds that activation checkpointing runs again in backward, whole batch
    recompute_macs: dict[str, int] = field(default_factory=dict)

    @property
    def peak_bytes(self) -> int:
        """Most bytes held at once: what exists before the step plus its highest phase."""
        before = self.param_bytes + self.buffer_bytes + self.input_bytes + self.optimizer_bytes
        if self.grads_held:
            before += self.grad_bytes
        return before + max(self.forward_peak, self.backward_peak, self.optimizer_peak)


@dataclass(frozen=True)
class ForwardTrace:
    """What one simulated forward pass holds, in bytes, and its arithmetic."""

    param_bytes: int
    buffer_bytes: int
    input_bytes: int
    peak: int  # most bytes of activations (outputs and intermediates) alive at once
    macs: dict[str, int]
    activations: int
    scope_macs: dict[str, int] = field(default_factory=dict)  # multiply-adds inside each scope


class _InPlaceStep:
    """A fused optimizer on meta tensors: its step changes values only, which meta lacks."""

    def __init__(self, params: Sequence[torch.Tensor]) -> None:
        self.params = params

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        pass


def _inputs(shape: Sequence[int], batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.empty(batch, *shape, device="meta")
    return x, torch.zeros(batch, dtype=torch.long, device="meta")


def _settled(simulate: Callable[_P, _T]) -> Callable[_P, _T]:
    """``simulate``, run again until a run imports no module.

    NOTE: PyTorch imports some Python meta kernels (and sympy with them) on first use. The
    exceptions raised and caught while importing keep the simulation's frames, and so the
    tensors they hold, alive in reference cycles: the first simulation in a process would
    hold some activations longer than the step does (0.01-0.3% of the peak on the zoo).
    """

    @functools.wraps(simulate)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        while True:
            modules = len(sys.modules)
            result = simulate(*args, **kwargs)
            if len(sys.modules) == modules:
                return result

    return run


@_settled
def simulate_train_step(
    meta: MetaModel,
    input_shape: Sequence[int],
    batch: int,
    *,
    device_type: str,
    precision: str,
    optimizer: str,
    repeats: Sequence[Repeat] = (),
    check_rules: bool = False,
    grad_accum: int = 1,
) -> StepTrace:
    """One training step of ``meta`` at ``batch``, as ``device_type`` would run it.

    Figures are those of a later step, as measured ones are: the optimizer state is held
    before the step (steady state). The optimizer runs fused (see ``harness.measure.
    OPTIMIZERS``): its step writes parameters and state in place and allocates nothing, so
    the optimizer phase holds what the backward pass left, and the state is the recipe's.

    Args:
        repeats: groups of ``meta`` that the network being costed runs more often than
            ``meta`` does (:mod:`harness.measure._fold`); the figures are the network's.
        grad_accum: micro-batches per update. Above 1 the step simulated is a later
            micro-batch, the most expensive one: the gradients of the earlier ones are held
            through its forward pass, and its backward adds to them in place.
    """
    x, y = _inputs(input_shape, batch)
    opt = _InPlaceStep(meta.params)
    sim = Simulator(check_rules=check_rules)
    accumulate = grad_accum > 1
    if accumulate:
        for p in meta.params:
            if p.requires_grad:
                p.grad = torch.empty_like(p)
    sim.adopt([*meta.params, *meta.buffers, x, y, *(p.grad for p in meta.params)])
    scores: list[int] = []  # bytes of the model's output

    def forward(x: torch.Tensor) -> torch.Tensor:
        out = meta.forward(x)
        scores.append(storage_bytes([out]))
        return out

    def on_phase(name: str) -> None:
        sim.phase(name)
        sim.counting = False

    set_mode(meta.modules, True)
    with contextlib.ExitStack() as stack:
        marks = [stack.enter_context(RepeatMarks(r, sim)) for r in repeats]
        stack.enter_context(_recomputations(meta.modules, sim))
        with sim:
            sim.counting = True
            amp = DevicePolicy(device_type, PRECISIONS[precision])
            train_step(forward, opt, x, y, amp=amp, on_phase=on_phase, zero_grad=not accumulate)
    phases = sim.replay([r for m in marks for r in m.replays()])
    state = optimizer_state_like(optimizer, meta.params)
    trace = StepTrace(
        param_bytes=storage_bytes(meta.params),
        buffer_bytes=storage_bytes(meta.buffers),
        input_bytes=storage_bytes([x, y]),
        grad_bytes=storage_bytes(p.grad for p in meta.params),
        optimizer_bytes=storage_bytes(state),
        # What the model's forward leaves alive but its output: what autograd saved.
        saved_bytes=phases["model"].held - scores[0],
        forward_peak=max(phases["model"].peak, phases["forward"].peak),
        backward_peak=phases["backward"].peak,
        optimizer_peak=phases["optimizer"].peak,
        macs=dict(sim.macs),
        activations=sim.activations,
        grads_held=accumulate,
        recompute_macs=dict(sim.recompute_macs),
    )
    for m in marks:
        trace = m.unfold(trace, optimizer)
    return trace


@contextlib.contextmanager
def _recomputations(modules: Sequence[nn.Module], sim: Simulator) -> Iterator[None]:
    """Count apart what checkpointed blocks recompute: a call of one of them inside the
    backward pass is its recomputation."""

    def before(*_: Any) -> None:
        if is_recomputing():
            sim.recomputing += 1

    def after(*_: Any) -> None:
        if is_recomputing():
            sim.recomputing -= 1

    handles = []
    for stage in modules:
        if isinstance(stage, CheckpointedStage):
            for child in stage:
                handles.append(child.register_forward_pre_hook(before))
                handles.append(child.register_forward_hook(after))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@_settled
def simulate_forward(
    meta: MetaModel,
    input_shape: Sequence[int],
    batch: int,
    *,
    device_type: str,
    precision: str,
    scopes: Mapping[str, nn.Module] | None = None,
) -> ForwardTrace:
    """One inference forward pass of ``meta`` (eval mode, no gradients) at ``batch``.

    Args:
        scopes: modules of ``meta`` whose multiply-adds are also counted apart, by name
            (a call of a scope counts everything inside it).
    """
    x, _ = _inputs(input_shape, batch)
    sim = Simulator()
    sim.adopt([*meta.params, *meta.buffers, x])
    set_mode(meta.modules, False)
    with contextlib.ExitStack() as stack:
        scope_macs = {
            name: stack.enter_context(_counted(module, sim))
            for name, module in (scopes or {}).items()
        }
        with torch.no_grad(), sim, DevicePolicy(device_type, PRECISIONS[precision]):
            sim.counting = True
            scores = meta.forward(x)
            del scores
            sim.phase("forward")
    return ForwardTrace(
        param_bytes=storage_bytes(meta.params),
        buffer_bytes=storage_bytes(meta.buffers),
        input_bytes=storage_bytes([x]),
        peak=sim.replay()["forward"].peak,
        macs=dict(sim.macs),
        activations=sim.activations,
        scope_macs={name: counter[0] for name, counter in scope_macs.items()},
    )


@contextlib.contextmanager
def _counted(module: nn.Module, sim: Simulator) -> Iterator[list[int]]:
    """A one-item list that holds the multiply-adds ``sim`` counts inside ``module``."""
    total = [0]
    start: list[int] = []

    def before(*_: Any) -> None:
        start.append(sum(sim.macs.values()))

    def after(*_: Any) -> None:
        total[0] += sum(sim.macs.values()) - start.pop()

    handles = [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        yield total
    finally:
        for handle in handles:
            handle.remove()
