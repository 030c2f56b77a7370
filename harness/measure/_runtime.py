"""What every cost measurement shares: devices, precisions, optimizers and the training step.

The training step whose memory and time we report is the usual loop body::

    optimizer.zero_grad(set_to_none=True)
    with autocast(device, precision):           # nothing at fp32
        loss = cross_entropy(model(x).float(), y)
    loss.backward()
    optimizer.step()

at steady state (the optimizer state already exists). The optimizers are registered by name
with the hyper-parameters that change memory (momentum, weight decay) and run fused, as the
trainer runs them: one kernel per step on CPU and CUDA that updates parameters and state in
place (on CPU about 12x faster than PyTorch's default per-parameter loop for X3D-M), so a
step allocates nothing beyond the state, which each recipe also describes for the meta
simulation (fused kernels have no meta implementation).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import SpecError
from harness.registry import Registry

__all__ = [
    "DEVICES",
    "OPTIMIZERS",
    "PRECISIONS",
    "OptimizerRecipe",
    "Stepper",
    "autocast",
    "check_batch",
    "check_grad_accum",
    "create_optimizer",
    "example_batch",
    "get_device",
    "get_precision",
    "module_tensors",
    "optimizer_state",
    "optimizer_state_like",
    "storage_bytes",
    "submodules",
    "train_step",
]

KeyPath = tuple[str | int, ...]

DEVICES = ("cpu", "cuda")
# Training precision: fp32, or bf16/fp16 autocast (parameters, gradients and optimizer
# state stay fp32; the convolutions and matrix products run, and save, at half width).
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


@dataclass(frozen=True)
class OptimizerRecipe:
    """An optimizer as costs are measured: its fused form, and the state it keeps."""

    create: Callable[[Iterable[torch.Tensor]], torch.optim.Optimizer]
    state: Callable[[torch.Tensor], tuple[torch.Tensor, ...]]  # per parameter, empty tensors


OPTIMIZERS: Registry[OptimizerRecipe] = Registry("optimizer")


def _like(p: torch.Tensor) -> torch.Tensor:
    # NOTE: not empty_like, whose meta implementation is Python (about 20 us a call).
    return torch.empty(p.shape, dtype=p.dtype, device=p.device)


# X3D / SlowFast recipe: momentum 0.9 (one buffer per parameter), weight decay 5e-5.
OPTIMIZERS.register("sgd")(
    OptimizerRecipe(
        create=lambda params: torch.optim.SGD(
            params, lr=0.1, momentum=0.9, weight_decay=5e-5, fused=True
        ),
        state=lambda p: (_like(p),),  # momentum_buffer
    )
)
# MViT / TimeSformer recipe: two moment buffers per parameter, weight decay 0.05; the fused
# kernel counts steps in a float32 scalar per parameter, on its device.
OPTIMIZERS.register("adamw")(
    OptimizerRecipe(
        create=lambda params: torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05, fused=True),
        state=lambda p: (
            torch.empty((), dtype=torch.float32, device=p.device),  # step
            _like(p),  # exp_avg
            _like(p),  # exp_avg_sq
        ),
    )
)


def create_optimizer(name: str, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
    """Optimizer ``name`` (fused) over ``params``."""
    return OPTIMIZERS.get(name).create(params)


def optimizer_state_like(name: str, params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """Empty tensors shaped like the state optimizer ``name`` keeps for ``params``.

    Only parameters that receive a gradient get state, as in a real step.
    """
    recipe = OPTIMIZERS.get(name)
    return [t for p in params if p.grad is not None for t in recipe.state(p)]


def _error(message: str, path: KeyPath, file: str | None) -> SpecError:
    return SpecError(message, path=path, file=file)


def check_batch(batch: int, *, path: KeyPath = ("batch",), file: str | None = None) -> int:
    """``batch`` if it is a positive integer; a SpecError otherwise."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise _error(f"batch must be a positive integer, got {batch!r}", path, file)
    return batch


def check_grad_accum(
    grad_accum: int, *, path: KeyPath = ("grad_accum",), file: str | None = None
) -> int:
    """``grad_accum`` (micro-batches per update) if it is a positive integer; else SpecError."""
    if isinstance(grad_accum, bool) or not isinstance(grad_accum, int) or grad_accum < 1:
        raise _error(f"grad_accum must be a positive integer, got {grad_accum!r}", path, file)
    return grad_accum


def get_device(
    name: str | torch.device,
    *,
    present: bool = True,
    path: KeyPath = ("device",),
    file: str | None = None,
) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` as a device; a SpecError if unknown.

    Args:
        present: the device must exist on this machine (to run on it, not to simulate it).
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in DEVICES:
        raise _error(f"unknown device '{name}'; known: {', '.join(DEVICES)}", path, file)
    if device.type == "cuda" and present:
        if not torch.cuda.is_available():
            raise _error("CUDA was requested but this machine has no CUDA device", path, file)
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise _error(f"no CUDA device {device.index}; this machine has {count}", path, file)
    return device


def get_precision(
    name: str, *, path: KeyPath = ("precision",), file: str | None = None
) -> torch.dtype | None:
    """The autocast dtype of precision ``name`` (``None`` for fp32)."""
    if name not in PRECISIONS:
        raise _error(f"unknown precision '{name}'; known: {', '.join(PRECISIONS)}", path, file)
    return PRECISIONS[name]


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[None]:
    """``torch.autocast`` at ``precision`` on ``device``; nothing at fp32."""
    dtype = get_precision(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


class Stepper(Protocol):
    """What a training step needs of an optimizer."""

    def zero_grad(self, set_to_none: bool = True) -> None: ...
    def step(self) -> Any: ...


def train_step(
    model: Callable[[torch.Tensor], torch.Tensor],
    optimizer: Stepper,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    amp: contextlib.AbstractContextManager[Any] | None = None,
    on_phase: Callable[[str], None] | None = None,
    zero_grad: bool = True,
) -> None:
    """One step: zero the gradients (to None), forward, cross-entropy, backward, update.

    Args:
        amp: context of the forward pass (autocast), if any.
        on_phase: called with ``"model"`` (the model's forward), ``"forward"`` (the loss),
            ``"backward"`` and ``"optimizer"`` as each ends.
        zero_grad: False for a micro-batch of gradient accumulation, whose backward adds to
            the gradients the earlier micro-batches left.
    """
    if zero_grad:
        optimizer.zero_grad(set_to_none=True)
    with amp if amp is not None else contextlib.nullcontext():
        scores = model(x)
    if on_phase is not None:
        on_phase("model")
    loss = F.cross_entropy(scores.float(), y)
    del scores
    if on_phase is not None:
        on_phase("forward")
    loss.backward()
    del loss
    if on_phase is not None:
        on_phase("backward")
    optimizer.step()
    if on_phase is not None:
        on_phase("optimizer")


def example_batch(
    input_shape: Sequence[int], batch: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random clip batch ``(batch, *input_shape)`` and its class targets.

    The targets are all class 0: their values change neither memory nor time, and class 0
    exists whatever the number of classes.
    """
    x = torch.randn(batch, *input_shape, device=device)
    y = torch.zeros(batch, dtype=torch.long, device=device)
    return x, y


def storage_bytes(tensors: Iterable[torch.Tensor | None]) -> int:
    """Bytes held by the distinct storages behind ``tensors`` (views counted once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        if isinstance(t, torch.Tensor):
            storage = t.untyped_storage()
            seen[storage._cdata] = storage.nbytes()
    return sum(seen.values())


def optimizer_state(optimizer: torch.optim.Optimizer) -> Iterator[torch.Tensor]:
    """Every tensor in the optimizer's state (momentum buffers, moments, step counters)."""
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor):
                yield value


def submodules(module: nn.Module) -> list[nn.Module]:
    """``module`` and every module under it, each once, in ``module.modules()``'s order.

    NOTE: a flat walk; ``modules()`` nests a generator per level, which costs a pre-check
    about a millisecond each time it walks X3D-M.
    """
    seen: set[int] = set()
    result = []
    stack = [module]
    while stack:
        m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        result.append(m)
        stack.extend(reversed([c for c in m._modules.values() if c is not None]))
    return result


def module_tensors(modules: Iterable[nn.Module]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The distinct parameters and buffers held directly by ``modules``."""
    params: dict[torch.Tensor, None] = {}
    buffers: dict[torch.Tensor, None] = {}
    for m in modules:
        params.update((p, None) for p in m._parameters.values() if p is not None)
        buffers.update((b, None) for b in m._buffers.values() if b is not None)
    return list(params), list(buffers)
