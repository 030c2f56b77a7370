"""What every cost measurement shares: devices, precisions, optimizers and the training step.

The training step whose memory and time we report is the usual loop body::

    optimizer.zero_grad(set_to_none=True)
    with autocast(device, precision):           # nothing at fp32
        loss = cross_entropy(model(x).float(), y)
    loss.backward()
    optimizer.step()

at steady state (the optimizer state already exists). The optimizers are registered by name
with the hyper-parameters that change memory (momentum, weight decay); PyTorch picks their
implementation per device (a per-parameter loop on CPU, ``foreach`` on CUDA) and so do we.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from harness.errors import SpecError
from harness.registry import Registry

__all__ = [
    "DEVICES",
    "OPTIMIZERS",
    "PRECISIONS",
    "autocast",
    "check_batch",
    "create_optimizer",
    "example_batch",
    "get_device",
    "get_precision",
    "optimizer_state",
    "storage_bytes",
    "train_step",
]

KeyPath = tuple[str | int, ...]
OptimizerFn = Callable[..., torch.optim.Optimizer]

DEVICES = ("cpu", "cuda")
# Training precision: fp32, or bf16/fp16 autocast (parameters, gradients and optimizer
# state stay fp32; the convolutions and matrix products run, and save, at half width).
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}

OPTIMIZERS: Registry[OptimizerFn] = Registry("optimizer")


@OPTIMIZERS.register("sgd")
def _sgd(params: Iterable[torch.Tensor], *, foreach: bool | None = None) -> torch.optim.Optimizer:
    # X3D / SlowFast recipe: momentum 0.9 (one buffer per parameter), weight decay 5e-5.
    return torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-5, foreach=foreach)


@OPTIMIZERS.register("adamw")
def _adamw(params: Iterable[torch.Tensor], *, foreach: bool | None = None) -> torch.optim.Optimizer:
    # MViT / TimeSformer recipe: two moment buffers per parameter, weight decay 0.05.
    return torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05, foreach=foreach)


def create_optimizer(
    name: str, params: Iterable[torch.Tensor], *, foreach: bool | None = None
) -> torch.optim.Optimizer:
    """Optimizer ``name`` over ``params``; ``foreach=None`` lets PyTorch choose per device."""
    return OPTIMIZERS.get(name)(params, foreach=foreach)


def _error(message: str, path: KeyPath, file: str | None) -> SpecError:
    return SpecError(message, path=path, file=file)


def check_batch(batch: int, *, path: KeyPath = ("batch",), file: str | None = None) -> int:
    """``batch`` if it is a positive integer; a SpecError otherwise."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise _error(f"batch must be a positive integer, got {batch!r}", path, file)
    return batch


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


def train_step(
    model: Callable[[torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    amp: contextlib.AbstractContextManager[Any] | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> None:
    """One step: zero the gradients (to None), forward, cross-entropy, backward, update.

    Args:
        amp: context of the forward pass (autocast), if any.
        on_phase: called with ``"forward"``, ``"backward"`` and ``"optimizer"`` as each ends.
    """
    optimizer.zero_grad(set_to_none=True)
    with amp if amp is not None else contextlib.nullcontext():
        scores = model(x)
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
