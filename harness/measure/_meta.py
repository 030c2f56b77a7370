"""Simulate a step on meta tensors: what it keeps alive, and its multiply-adds.

Meta tensors have shapes, dtypes and storages of a given size but no data, so a forward,
backward and optimizer step over them costs milliseconds whatever the clip and batch. Two
modes watch the step:

- :class:`Simulator` (a ``TorchDispatchMode``, below autograd) sees every operator PyTorch
  runs, forward and backward, and every storage it creates. A storage is counted from the
  operator that returns it until Python frees it (a weak reference), exactly as the caching
  allocators count it, so the running total is the bytes the step holds at each moment and
  its maximum is the step's peak. Kernel workspaces (im2col buffers of CPU convolutions,
  cuDNN workspace) are invisible here and not counted. In the forward pass it also counts
  multiply-adds of the compute operators (the ``gflops`` convention) and fvcore's activations.
- :class:`DevicePolicy` (a ``TorchFunctionMode``, above autograd) makes the meta step run
  what the target device would: autocast's casts at bf16/fp16 (meta tensors have no autocast
  of their own) and the fused attention kernel PyTorch dispatches to on CPU and CUDA (on meta
  ``scaled_dot_product_attention`` falls back to the math path, which saves the attention
  matrix that the fused kernels never materialise).
"""

from __future__ import annotations

import contextlib
import gc
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors
from torch.utils._python_dispatch import TorchDispatchMode

from harness.measure._runtime import (
    PRECISIONS,
    create_optimizer,
    optimizer_state,
    storage_bytes,
    train_step,
)
from harness.measure._shapes import get_shape_rule

__all__ = [
    "DevicePolicy",
    "ForwardTrace",
    "MetaBuild",
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
# attention as one of its fused kernels (see DevicePolicy).
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


class Simulator(TorchDispatchMode):
    """Counts the bytes of live storages created under it, and forward multiply-adds.

    Args:
        check_rules: also run the meta kernel beside every fast shape rule and raise if they
            disagree (for tests; slow).
    """

    def __init__(self, *, check_rules: bool = False) -> None:
        super().__init__()
        self.check_rules = check_rules
        self.live = 0  # bytes held now by storages created under the simulator
        self.peak = 0  # most bytes held since the last :meth:`phase`
        self.counting = False  # count multiply-adds and activations (the forward pass)
        self.macs: Counter[str] = Counter()  # operator -> multiply-adds
        self.activations = 0  # elements output by the compute operators
        self.phases: dict[str, int] = {}  # phase -> its peak
        self._alive: dict[int, weakref.ref[Any]] = {}

    def adopt(self, tensors: Iterable[torch.Tensor | None]) -> None:
        """Watch storages that exist before the step (parameters, inputs) without counting."""
        for t in tensors:
            if isinstance(t, torch.Tensor):
                self._watch(t.untyped_storage(), 0)

    def phase(self, name: str) -> None:
        """Close phase ``name``: record its peak and start the next one from the bytes live."""
        self.phases[name] = self.peak
        self.peak = self.live

    def _watch(self, storage: Any, nbytes: int) -> None:
        key = storage._cdata
        if key in self._alive:
            return
        alive = self._alive

        def release(_: object) -> None:
            self.live -= nbytes
            alive.pop(key, None)

        alive[key] = weakref.ref(storage, release)
        self.live += nbytes
        if self.live > self.peak:
            self.peak = self.live

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

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
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
        self._seen: dict[int, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, _unpack)

    @property
    def nbytes(self) -> int:
        return sum(self._seen.values())

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        key = storage._cdata
        if key not in self._known:
            self._seen[key] = storage.nbytes()
        return t

    def __enter__(self) -> SavedTensors:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)


def _unpack(t: torch.Tensor) -> torch.Tensor:
    return t


# --------------------------------------------------------------------------- device policy

# Autocast's lower-precision operators: convolutions and matrix products run, and save
# their inputs, at half width (the parameters' half copies are cached for the forward).
_LOWER_COMMON = frozenset(
    (
        torch.conv1d,
        torch.conv2d,
        torch.conv3d,
        torch.conv_transpose1d,
        torch.conv_transpose2d,
        torch.conv_transpose3d,
        F.linear,
        torch.matmul,
        torch.Tensor.matmul,
        torch.Tensor.__matmul__,
        torch.mm,
        torch.Tensor.mm,
        torch.bmm,
        torch.Tensor.bmm,
        torch.addmm,
        torch.baddbmm,
        torch.prelu,
        F.scaled_dot_product_attention,
    )
)
_LOWER = {"cpu": _LOWER_COMMON, "cuda": _LOWER_COMMON | {torch.einsum}}
# Operators CUDA autocast runs in fp32 whatever their inputs (norms over tokens, softmax).
_FP32 = {
    "cpu": frozenset(),
    "cuda": frozenset(
        (
            F.layer_norm,
            F.group_norm,
            F.softmax,
            F.log_softmax,
            torch.softmax,
            torch.Tensor.softmax,
            torch.log_softmax,
            torch.Tensor.log_softmax,
        )
    ),
}


class DevicePolicy(TorchFunctionMode):
    """Run, on meta tensors, the casts and attention kernels of ``device_type``.

    Args:
        device_type: ``"cpu"`` or ``"cuda"``, the device being simulated.
        dtype: autocast dtype (bfloat16 or float16), or None for fp32.
    """

    def __init__(self, device_type: str, dtype: torch.dtype | None) -> None:
        super().__init__()
        self.device_type = device_type
        self.dtype = dtype
        self._lower = _LOWER[device_type] if dtype is not None else frozenset()
        self._fp32 = _FP32[device_type] if dtype is not None else frozenset()
        self._casts: dict[int, torch.Tensor] = {}  # autocast's cache of parameter casts

    def __exit__(self, *exc: Any) -> None:
        self._casts.clear()
        super().__exit__(*exc)

    def _cast(self, value: Any, dtype: torch.dtype) -> Any:
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            return value
        if value.dtype == dtype:
            return value
        if value.is_leaf and value.requires_grad:  # autocast caches casts of parameters
            key = id(value)
            if key not in self._casts:
                self._casts[key] = value.to(dtype)
            return self._casts[key]
        return value.to(dtype)

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in self._lower:
            assert self.dtype is not None
            args = [self._cast(a, self.dtype) for a in args]
            kwargs = {k: self._cast(v, self.dtype) for k, v in kwargs.items()}
        elif func in self._fp32:
            args = [self._cast(a, torch.float32) for a in args]
        if func is F.scaled_dot_product_attention:
            return self._attention(*args, **kwargs)
        return func(*args, **kwargs)

    def _attention(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        dropout_p: float = 0.0,
        is_causal: bool = False,
        scale: float | None = None,
        enable_gqa: bool = False,
    ) -> torch.Tensor:
        fused = attn_mask is None and not enable_gqa and q.dim() == 4 and dropout_p == 0.0
        if fused and self.device_type == "cpu":
            out = aten._scaled_dot_product_flash_attention_for_cpu(
                q, k, v, dropout_p, is_causal, scale=scale
            )
            return out[0]
        if fused:
            out = aten._scaled_dot_product_efficient_attention(
                q, k, v, None, True, dropout_p, is_causal, scale=scale
            )
            return out[0]
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa
        )


# ------------------------------------------------------------------------- meta building

_CONSTRUCTORS = frozenset(_device_constructors())
# Initialisation fills values; a meta tensor has none, so these return the tensor as is.
_INIT = frozenset(
    (
        *(getattr(nn.init, n) for n in dir(nn.init) if n.endswith("_") and n[0] != "_"),
        torch.Tensor.normal_,
        torch.Tensor.uniform_,
        torch.Tensor.fill_,
        torch.Tensor.zero_,
        torch.Tensor.random_,
        torch.Tensor.bernoulli_,
        torch.Tensor.exponential_,
        torch.Tensor.erfinv_,
    )
)


class MetaBuild(TorchFunctionMode):
    """Build modules on the meta device, skipping the (value-only) weight initialisation.

    Like ``with torch.device("meta")``, plus: initialisation functions return their tensor
    untouched. PyTorch's meta kernels for random fills are Python and dominate a meta build.
    """

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _INIT and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return args[0]
        if func in _CONSTRUCTORS and kwargs.get("device") is None:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


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


@contextlib.contextmanager
def meta_model(model: nn.Module) -> Iterator[MetaModel]:
    """``model`` on the meta device; a model with real weights runs on meta copies of them.

    ``model`` is not changed: its parameters are swapped for meta ones only inside each
    call (``torch.func.functional_call``), and its train/eval mode is restored on exit.
    """
    was_training = model.training
    params: list[torch.Tensor] = list(model.parameters())
    buffers = list(model.buffers())
    try:
        if all(t.is_meta for t in params) and all(t.is_meta for t in buffers):
            yield MetaModel(model, model, params, buffers)
            return
        copies = {
            name: nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad)
            for name, p in model.named_parameters()
        }
        state = {
            **copies,
            **{name: torch.empty_like(b, device="meta") for name, b in model.named_buffers()},
        }

        def forward(x: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(model, state, (x,))

        yield MetaModel(model, forward, list(copies.values()), list(state.values())[len(copies) :])
    finally:
        set_mode(model, was_training)


def set_mode(module: nn.Module, training: bool) -> None:
    """``module.train(training)``, skipped when every submodule is in that mode already."""
    if any(m.training != training for m in module.modules()):
        module.train(training)


@dataclass(frozen=True)
class StepTrace:
    """What one simulated training step holds, in bytes, and its forward arithmetic."""

    param_bytes: int
    buffer_bytes: int
    input_bytes: int  # the clip batch and its targets
    grad_bytes: int  # parameter gradients
    optimizer_bytes: int  # optimizer state at steady state
    saved_bytes: int  # activations autograd saves for backward (parameters excluded)
    forward_peak: int  # most bytes created and alive at once, per phase
    backward_peak: int
    optimizer_peak: int  # includes the optimizer state (created in this first step)
    macs: dict[str, int]  # forward multiply-adds by operator, whole batch
    activations: int  # fvcore's activations, whole batch

    @property
    def peak_bytes(self) -> int:
        """The steady-state peak: in later steps the optimizer state exists throughout."""
        before = self.param_bytes + self.buffer_bytes + self.input_bytes
        during = max(self.forward_peak, self.backward_peak) + self.optimizer_bytes
        return before + max(during, self.optimizer_peak)


@dataclass(frozen=True)
class ForwardTrace:
    """What one simulated forward pass holds, in bytes, and its arithmetic."""

    param_bytes: int
    buffer_bytes: int
    input_bytes: int
    peak: int  # most bytes of activations (outputs and intermediates) alive at once
    macs: dict[str, int]
    activations: int


def _inputs(shape: Sequence[int], batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.empty(batch, *shape, device="meta")
    return x, torch.zeros(batch, dtype=torch.long, device="meta")


def simulate_train_step(
    meta: MetaModel,
    input_shape: Sequence[int],
    batch: int,
    *,
    device_type: str,
    precision: str,
    optimizer: str,
    check_rules: bool = False,
) -> StepTrace:
    """One training step of ``meta`` at ``batch``, as ``device_type`` would run it."""
    x, y = _inputs(input_shape, batch)
    # PyTorch's own choice per device: foreach kernels on CUDA, a loop on CPU.
    opt = create_optimizer(optimizer, meta.params, foreach=device_type == "cuda")
    sim = Simulator(check_rules=check_rules)
    sim.adopt([*meta.params, *meta.buffers, x, y])
    saved = SavedTensors([*meta.params, *meta.buffers, x])
    amp = contextlib.ExitStack()
    amp.enter_context(DevicePolicy(device_type, PRECISIONS[precision]))
    amp.enter_context(saved)

    def on_phase(name: str) -> None:
        sim.phase(name)
        sim.counting = False

    set_mode(meta.module, True)
    with sim:
        sim.counting = True
        train_step(meta.forward, opt, x, y, amp=amp, on_phase=on_phase)
    return StepTrace(
        param_bytes=storage_bytes(meta.params),
        buffer_bytes=storage_bytes(meta.buffers),
        input_bytes=storage_bytes([x, y]),
        grad_bytes=storage_bytes(p.grad for p in meta.params),
        optimizer_bytes=storage_bytes(optimizer_state(opt)),
        saved_bytes=saved.nbytes,
        forward_peak=sim.phases["forward"],
        backward_peak=sim.phases["backward"],
        optimizer_peak=sim.phases["optimizer"],
        macs=dict(sim.macs),
        activations=sim.activations,
    )


def simulate_forward(
    meta: MetaModel,
    input_shape: Sequence[int],
    batch: int,
    *,
    device_type: str,
    precision: str,
) -> ForwardTrace:
    """One inference forward pass of ``meta`` (eval mode, no gradients) at ``batch``."""
    x, _ = _inputs(input_shape, batch)
    sim = Simulator()
    sim.adopt([*meta.params, *meta.buffers, x])
    set_mode(meta.module, False)
    with torch.no_grad(), sim, DevicePolicy(device_type, PRECISIONS[precision]):
        sim.counting = True
        scores = meta.forward(x)
        del scores
    return ForwardTrace(
        param_bytes=storage_bytes(meta.params),
        buffer_bytes=storage_bytes(meta.buffers),
        input_bytes=storage_bytes([x]),
        peak=sim.peak,
        macs=dict(sim.macs),
        activations=sim.activations,
    )
