"""Latency of inference and of a training step, timed on a device.

Timing protocol (nanoGPT's ``bench.py``): build the inputs once, run ``warmup`` untimed
calls (allocator caches, cuDNN autotuning, ``torch.compile``), then time ``repeats`` calls
one by one with ``time.perf_counter``; on CUDA ``torch.cuda.synchronize()`` closes every
call, so the clock measures the GPU's work, not the launch. On CPU the thread count is fixed
for the measurement (and restored afterwards). Reported: the median and the spread
(quartiles, min, max) in milliseconds, with every option that changes the figure.

``forward`` is inference: eval mode, no gradients, batch ``batch``. ``forward_backward`` is
a training step without the optimizer update: train mode, forward, cross-entropy, backward.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import SpecError
from harness.measure._runtime import (
    autocast,
    check_batch,
    example_batch,
    get_device,
    get_precision,
)

__all__ = ["Latency", "Spread", "measure_latency"]

Shape = Sequence[int]


@dataclass(frozen=True)
class Spread:
    """Summary of repeated timings, in milliseconds."""

    median: float
    q1: float  # first quartile
    q3: float  # third quartile
    min: float
    max: float
    n: int  # timed calls

    @property
    def iqr(self) -> float:
        """Interquartile range: the spread of the middle half."""
        return self.q3 - self.q1

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if len(values) > 1:
            q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        else:
            q1 = q3 = values[0]
        return cls(statistics.median(values), q1, q3, min(values), max(values), len(values))


@dataclass(frozen=True)
class Latency:
    """Wall-clock time of inference and of forward+backward at one batch size."""

    forward: Spread | None  # inference (eval, no gradients); None if out of memory
    forward_backward: Spread | None  # train-mode forward, loss, backward; None if skipped/OOM
    input_shape: tuple[int, ...]
    batch: int
    device: str  # cpu | cuda
    threads: int | None  # CPU threads (torch.set_num_threads); None on CUDA
    precision: str  # fp32 | bf16 | fp16 (autocast)
    channels_last: bool  # model and input in channels_last_3d
    compiled: bool  # torch.compile
    warmup: int
    method: str  # cpu_wall_clock | cuda_synchronized_wall_clock
    oom: bool = False  # the device ran out of memory

    @property
    def median_ms(self) -> float | None:
        return None if self.forward is None else self.forward.median

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Latency:
        spreads = {
            key: None if data[key] is None else Spread(**data[key])
            for key in ("forward", "forward_backward")
        }
        return cls(**{**data, **spreads, "input_shape": tuple(data["input_shape"])})


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _time(call: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> Spread:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        call()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return Spread.of(times)


def _check_counts(threads: int | None, warmup: int, repeats: int) -> None:
    for name, value, least in (("threads", threads, 1), ("warmup", warmup, 0)):
        if value is not None and value < least:
            raise SpecError(f"must be at least {least}, got {value}", path=(name,))
    if repeats < 1:
        raise SpecError(f"must be at least 1, got {repeats}", path=("repeats",))


def measure_latency(
    model: nn.Module,
    input_shape: Shape,
    *,
    batch: int = 1,
    device: str = "cpu",
    precision: str = "fp32",
    threads: int | None = None,
    channels_last: bool = False,
    compile: bool = False,
    backward: bool = True,
    warmup: int = 3,
    repeats: int = 10,
) -> Latency:
    """Time inference (and forward+backward) of ``model`` on ``device``.

    Runs on a copy of ``model``, which is left as it was. On CUDA, running out of memory
    gives a result with ``oom=True``.

    Args:
        threads: CPU threads while timing (default: the current ``torch.get_num_threads()``).
        channels_last: convert model and input to ``torch.channels_last_3d``.
        compile: time ``torch.compile(model)`` (compilation happens during the warm-up).
        backward: also time forward+backward.
    """
    check_batch(batch)
    dev = get_device(device)
    get_precision(precision)
    _check_counts(threads, warmup, repeats)
    on_cuda = dev.type == "cuda"
    n_threads = None if on_cuda else (threads or torch.get_num_threads())
    result: dict[str, Any] = dict(
        input_shape=tuple(input_shape),
        batch=batch,
        device=dev.type,
        threads=n_threads,
        precision=precision,
        channels_last=channels_last,
        compiled=compile,
        warmup=warmup,
        method="cuda_synchronized_wall_clock" if on_cuda else "cpu_wall_clock",
    )
    try:
        with _threads(n_threads):
            timings = _measure(
                model, input_shape, batch, dev, precision, channels_last, compile, backward,
                warmup, repeats,
            )  # fmt: skip
    except torch.cuda.OutOfMemoryError:
        timings = None  # leaving the handler frees the failed run's tensors
    if on_cuda:
        torch.cuda.empty_cache()
    if timings is None:
        return Latency(forward=None, forward_backward=None, oom=True, **result)
    return Latency(forward=timings[0], forward_backward=timings[1], **result)


def _measure(
    model: nn.Module,
    input_shape: Shape,
    batch: int,
    device: torch.device,
    precision: str,
    channels_last: bool,
    compile: bool,
    backward: bool,
    warmup: int,
    repeats: int,
) -> tuple[Spread, Spread | None]:
    # A copy: training updates norm statistics and gradients, which are not ours to change.
    net = copy.deepcopy(model).to(device)
    x, y = example_batch(input_shape, batch, device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        x = x.contiguous(memory_format=torch.channels_last_3d)
    run: Callable[[torch.Tensor], torch.Tensor] = torch.compile(net) if compile else net

    def infer() -> None:
        with torch.no_grad(), autocast(device, precision):
            run(x)

    def train() -> None:
        net.zero_grad(set_to_none=True)
        with autocast(device, precision):
            scores = run(x)
        F.cross_entropy(scores.float(), y).backward()

    net.eval()
    forward = _time(infer, device, warmup, repeats)
    if not backward:
        return forward, None
    net.train()
    forward_backward = _time(train, device, warmup, repeats)
    net.zero_grad(set_to_none=True)
    return forward, forward_backward
