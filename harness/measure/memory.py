"""Memory of a training step and of inference: measured on a device, or simulated.

Two ways to the same figure, each named in the result's ``method``:

``cuda_peak_allocated``
    A real step on the GPU after a warm-up step; the peak of
    ``torch.cuda.max_memory_allocated`` above what was allocated before (tensors, and the
    cuDNN workspaces PyTorch allocates for them; not the allocator's cached reserve).
``profiler_cpu_peak``
    A real step on the CPU under ``torch.profiler`` with ``profile_memory=True``, whose
    allocation events are replayed in order; the running total's maximum, plus the bytes
    held before the step (parameters, buffers, optimizer state, the batch). Exact, kernel
    workspaces included.
``meta_simulation``
    The same step on meta tensors (:mod:`harness.measure._meta`): every storage the step
    creates, counted while Python holds it. Milliseconds whatever the size, on any machine,
    for either target device. Excludes kernel workspaces, which the measured methods include.

All figures are bytes; ``*_mb`` properties are MiB (2**20 bytes). A step that runs out of
GPU memory is not an error: its result has ``oom=True`` and no peak (over any budget).
"""

from __future__ import annotations

import contextlib
import copy
import gc
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from fvcore.nn import ActivationCountAnalysis
from torch import nn
from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile

from harness.measure._meta import (
    ForwardTrace,
    SavedTensors,
    StepTrace,
    meta_model,
    no_gc,
    simulate_forward,
    simulate_train_step,
)
from harness.measure._runtime import (
    OPTIMIZERS,
    autocast,
    check_batch,
    check_grad_accum,
    create_optimizer,
    example_batch,
    get_device,
    get_precision,
    optimizer_state,
    storage_bytes,
    train_step,
)

__all__ = [
    "MIB",
    "InferenceMemory",
    "TrainMemory",
    "count_activations",
    "estimate_inference_memory",
    "estimate_train_memory",
    "measure_inference_memory",
    "measure_train_memory",
]

MIB = 2**20
Shape = Sequence[int]


@dataclass(frozen=True)
class TrainMemory:
    """Peak memory of one training step (forward, backward, optimizer step), in bytes."""

    peak_bytes: int | None  # most bytes held at once; None when the device ran out
    param_bytes: int  # parameters
    buffer_bytes: int  # buffers (norm statistics)
    grad_bytes: int  # parameter gradients
    optimizer_bytes: int  # optimizer state (momentum, moments)
    input_bytes: int  # the clip batch and its targets
    saved_bytes: int  # activations autograd saves for backward (parameters excluded)
    input_shape: tuple[int, ...]  # (C, T, H, W) of one clip
    batch: int
    device: str  # cpu | cuda
    precision: str  # fp32 | bf16 | fp16 (autocast)
    optimizer: str  # a name in OPTIMIZERS
    method: str  # cuda_peak_allocated | profiler_cpu_peak | meta_simulation
    oom: bool = False  # the step ran out of device memory (over any budget)
    grad_accum: int = 1  # micro-batches per update; above 1, a later micro-batch's peak

    @property
    def peak_mb(self) -> float | None:
        return None if self.peak_bytes is None else self.peak_bytes / MIB

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainMemory:
        return cls(**{**data, "input_shape": tuple(data["input_shape"])})

    @classmethod
    def simulated(
        cls,
        trace: StepTrace,
        input_shape: Shape,
        batch: int,
        device: str,
        precision: str,
        optimizer: str,
        grad_accum: int = 1,
    ) -> TrainMemory:
        """The figures of a simulated step (``meta_simulation``)."""
        return cls(
            peak_bytes=trace.peak_bytes,
            param_bytes=trace.param_bytes,
            buffer_bytes=trace.buffer_bytes,
            grad_bytes=trace.grad_bytes,
            optimizer_bytes=trace.optimizer_bytes,
            input_bytes=trace.input_bytes,
            saved_bytes=trace.saved_bytes,
            input_shape=tuple(input_shape),
            batch=batch,
            device=device,
            precision=precision,
            optimizer=optimizer,
            method="meta_simulation",
            grad_accum=grad_accum,
        )


@dataclass(frozen=True)
class InferenceMemory:
    """Peak memory of one inference forward pass (eval mode, no gradients), in bytes."""

    activation_bytes: int | None  # most bytes of activations held at once; None if OOM
    param_bytes: int
    buffer_bytes: int
    input_bytes: int
    input_shape: tuple[int, ...]
    batch: int
    device: str
    precision: str
    method: str
    oom: bool = False

    @property
    def peak_bytes(self) -> int | None:
        """Activations plus what the pass reads: parameters, buffers, the input."""
        if self.activation_bytes is None:
            return None
        return self.activation_bytes + self.param_bytes + self.buffer_bytes + self.input_bytes

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InferenceMemory:
        return cls(**{**data, "input_shape": tuple(data["input_shape"])})

    @classmethod
    def simulated(
        cls, trace: ForwardTrace, input_shape: Shape, batch: int, device: str, precision: str
    ) -> InferenceMemory:
        """The figures of a simulated forward pass (``meta_simulation``)."""
        return cls(
            activation_bytes=trace.peak,
            param_bytes=trace.param_bytes,
            buffer_bytes=trace.buffer_bytes,
            input_bytes=trace.input_bytes,
            input_shape=tuple(input_shape),
            batch=batch,
            device=device,
            precision=precision,
            method="meta_simulation",
        )


def _check(
    batch: int, device: str, precision: str, optimizer: str | None, *, present: bool
) -> torch.device:
    check_batch(batch)
    dev = get_device(device, present=present)
    get_precision(precision)
    if optimizer is not None:
        OPTIMIZERS.get(optimizer)
    return dev


# ------------------------------------------------------------------------------ estimates


def estimate_train_memory(
    model: nn.Module,
    input_shape: Shape,
    *,
    batch: int,
    device: str = "cpu",
    precision: str = "fp32",
    optimizer: str = "sgd",
    grad_accum: int = 1,
) -> TrainMemory:
    """Simulate one training step on meta tensors, as ``device`` would run it.

    ``device`` is the target being simulated; it need not exist on this machine.
    ``model`` is not changed (its weights are not touched, nor copied). With
    ``grad_accum`` above 1, the step is a later micro-batch of gradient accumulation (the
    gradients of the earlier ones are held through it).
    """
    dev = _check(batch, device, precision, optimizer, present=False)
    check_grad_accum(grad_accum)
    with meta_model(model) as meta, no_gc():
        trace = simulate_train_step(
            meta, input_shape, batch, device_type=dev.type, precision=precision,
            optimizer=optimizer, grad_accum=grad_accum,
        )  # fmt: skip
    return TrainMemory.simulated(
        trace, input_shape, batch, dev.type, precision, optimizer, grad_accum
    )


def estimate_inference_memory(
    model: nn.Module,
    input_shape: Shape,
    *,
    batch: int = 1,
    device: str = "cpu",
    precision: str = "fp32",
) -> InferenceMemory:
    """Simulate one inference forward pass on meta tensors, as ``device`` would run it."""
    dev = _check(batch, device, precision, None, present=False)
    with meta_model(model) as meta, no_gc():
        trace = simulate_forward(
            meta, input_shape, batch, device_type=dev.type, precision=precision
        )
    return InferenceMemory.simulated(trace, input_shape, batch, dev.type, precision)


# ---------------------------------------------------------------------------- measurements


def _allocation_events(prof: profile) -> list[tuple[int, int]]:
    """(time, signed bytes) of every CPU allocation and free the profiler recorded."""
    events = []
    assert prof.profiler is not None and prof.profiler.kineto_results is not None
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.tag == _EventType.Allocation:
            fields: Any = node.extra_fields
            if fields.device.type == "cpu":
                events.append((node.start_time_ns, fields.alloc_size))
    return sorted(events)


def _replay_peak(prof: profile) -> int:
    """Most bytes allocated at once during the profile, above what was held at its start."""
    running = peak = 0
    for _, size in _allocation_events(prof):
        running += size
        peak = max(peak, running)
    return peak


def _prepare(
    model: nn.Module, input_shape: Shape, batch: int, device: torch.device, optimizer: str
) -> tuple[nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
    net = copy.deepcopy(model).to(device).train()
    opt = create_optimizer(optimizer, net.parameters())
    x, y = example_batch(input_shape, batch, device)
    return net, opt, x, y


@contextlib.contextmanager
def _forward(device: torch.device, precision: str, saved: SavedTensors) -> Iterator[None]:
    with autocast(device, precision), saved:
        yield


def _cpu_step(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    amp: Any,
    zero_grad: bool,
) -> int:
    grads = [p.grad for p in net.parameters()]
    held = storage_bytes([*net.parameters(), *net.buffers(), *optimizer_state(opt), x, y, *grads])
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        train_step(net, opt, x, y, amp=amp, zero_grad=zero_grad)
    return held + _replay_peak(prof)


def _cuda_step(
    net: nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    amp: Any,
    zero_grad: bool,
) -> int:
    device = x.device
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    train_step(net, opt, x, y, amp=amp, zero_grad=zero_grad)
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device)


def measure_train_memory(
    model: nn.Module,
    input_shape: Shape,
    *,
    batch: int,
    device: str = "cpu",
    precision: str = "fp32",
    optimizer: str = "sgd",
    grad_accum: int = 1,
) -> TrainMemory:
    """Run two real training steps on ``device`` and measure the peak of the second.

    The steps run on a copy of ``model`` (the optimizer changes weights). On CUDA, running
    out of memory gives a result with ``oom=True`` instead of an exception. With
    ``grad_accum`` above 1, the second step is a micro-batch that adds to the gradients
    the first left.
    """
    dev = _check(batch, device, precision, optimizer, present=True)
    check_grad_accum(grad_accum)
    on_cuda = dev.type == "cuda"
    common: dict[str, Any] = dict(
        param_bytes=storage_bytes(model.parameters()),
        buffer_bytes=storage_bytes(model.buffers()),
        input_shape=tuple(input_shape),
        batch=batch,
        device=dev.type,
        precision=precision,
        optimizer=optimizer,
        method="cuda_peak_allocated" if on_cuda else "profiler_cpu_peak",
        grad_accum=grad_accum,
    )
    try:
        figures = _measured_step(model, input_shape, batch, dev, precision, optimizer, grad_accum)
    except torch.cuda.OutOfMemoryError:
        figures = None  # leaving the handler frees the failed step's tensors
    _release(dev)
    if figures is None:
        figures = dict(peak_bytes=None, grad_bytes=0, optimizer_bytes=0, input_bytes=0)
        return TrainMemory(saved_bytes=0, oom=True, **figures, **common)
    return TrainMemory(**figures, **common)


def _measured_step(
    model: nn.Module,
    input_shape: Shape,
    batch: int,
    device: torch.device,
    precision: str,
    optimizer: str,
    grad_accum: int = 1,
) -> dict[str, Any]:
    on_cuda = device.type == "cuda"
    start = torch.cuda.memory_allocated(device) if on_cuda else 0  # others' tensors
    net, opt, x, y = _prepare(model, input_shape, batch, device, optimizer)
    train_step(net, opt, x, y, amp=autocast(device, precision))  # creates optimizer state
    accumulate = grad_accum > 1
    if not accumulate:
        opt.zero_grad(set_to_none=True)
    saved = SavedTensors([*net.parameters(), *net.buffers(), x])
    step = _cuda_step if on_cuda else _cpu_step
    amp = _forward(device, precision, saved)
    peak = step(net, opt, x, y, amp, not accumulate) - start
    return dict(
        peak_bytes=peak,
        grad_bytes=storage_bytes(p.grad for p in net.parameters()),
        optimizer_bytes=storage_bytes(optimizer_state(opt)),
        input_bytes=storage_bytes([x, y]),
        saved_bytes=saved.nbytes,
    )


def _release(device: torch.device) -> None:
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()


def measure_inference_memory(
    model: nn.Module,
    input_shape: Shape,
    *,
    batch: int = 1,
    device: str = "cpu",
    precision: str = "fp32",
) -> InferenceMemory:
    """Run real inference forward passes on ``device``; measure the second's activations."""
    dev = _check(batch, device, precision, None, present=True)
    on_cuda = dev.type == "cuda"
    common: dict[str, Any] = dict(
        param_bytes=storage_bytes(model.parameters()),
        buffer_bytes=storage_bytes(model.buffers()),
        input_bytes=batch * _numel(input_shape) * 4,
        input_shape=tuple(input_shape),
        batch=batch,
        device=dev.type,
        precision=precision,
        method="cuda_peak_allocated" if on_cuda else "profiler_cpu_peak",
    )
    try:
        peak = _measured_forward(model, input_shape, batch, dev, precision)
    except torch.cuda.OutOfMemoryError:
        peak = None  # leaving the handler frees the failed pass's tensors
    _release(dev)
    return InferenceMemory(activation_bytes=peak, oom=peak is None, **common)


def _measured_forward(
    model: nn.Module, input_shape: Shape, batch: int, device: torch.device, precision: str
) -> int:
    net = copy.deepcopy(model).to(device).eval()
    x, _ = example_batch(input_shape, batch, device)
    with torch.no_grad(), autocast(device, precision):
        net(x)  # warm-up
        return _forward_peak(net, x)


def _forward_peak(net: nn.Module, x: torch.Tensor) -> int:
    """Peak bytes allocated above those held before one forward pass (output included)."""
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
        start = torch.cuda.memory_allocated(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        scores = net(x)
        torch.cuda.synchronize(x.device)
        del scores
        return torch.cuda.max_memory_allocated(x.device) - start
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        scores = net(x)
        del scores
    return _replay_peak(prof)


def _numel(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def count_activations(model: nn.Module, inputs: torch.Tensor) -> int:
    """Activations of one forward pass, by fvcore's definition (``ActivationCountAnalysis``).

    The elements output by convolutions, linear layers, matrix products and einsum, in
    eval mode without gradients (with gradients, fvcore's trace keeps every activation).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            analysis = ActivationCountAnalysis(model, (inputs,))
            analysis.unsupported_ops_warnings(False)
            analysis.uncalled_modules_warnings(False)
            analysis.tracer_warnings("none")
            return int(analysis.total())
    finally:
        model.train(was_training)
