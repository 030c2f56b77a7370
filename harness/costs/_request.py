"""How a cost is asked for (:class:`CostRequest`) and what comes back (:class:`CostRow`).

A request holds the settings of the step that will actually run, so that a memory budget
is checked on the training step that trains, not on a default one: build it from the
training configuration with :meth:`CostRequest.for_training`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from harness.costs._table import TRAINED, parse_cost

if TYPE_CHECKING:
    from harness.train.config import TrainConfig

__all__ = ["CostRequest", "CostRow", "LatencyTiming", "format_shape"]


@dataclass(frozen=True)
class LatencyTiming:
    """How ``latency_ms`` is timed (see :func:`harness.measure.measure_latency`)."""

    device: str = "cpu"  # cpu | cuda
    threads: int = 1  # CPU threads while timing, fixed so that candidates compare
    warmup: int = 3  # untimed calls first
    repeats: int = 15  # timed calls; the cost is their median


@dataclass(frozen=True)
class CostRequest:
    """The settings a cost is measured under."""

    frames: int | None = None  # clip frames (None: the spec's)
    size: int | None = None  # crop size in pixels (None: the spec's)
    classes: int | None = None  # classes of the head (None: the spec's)
    batch: int = 1  # clips per training step per process (train_memory_mb)
    grad_accum: int = 1  # micro-batches whose gradients add up before each update
    optimizer: str = "sgd"  # a name in harness.measure.OPTIMIZERS
    precision: str = "fp32"  # fp32, or bf16 / fp16 autocast
    device: str = "cpu"  # the device whose training step is simulated: cpu | cuda
    timing: LatencyTiming = field(default_factory=LatencyTiming)

    @classmethod
    def for_training(
        cls,
        config: TrainConfig,
        *,
        classes: int | None = None,
        frames: int | None = None,
        size: int | None = None,
        timing: LatencyTiming | None = None,
    ) -> CostRequest:
        """The request of the training step ``config`` runs (batch, accumulation, optimizer,
        precision as resolved for its device), at ``frames`` x ``size`` (None: the spec's)."""
        return cls(
            frames=frames,
            size=size,
            classes=classes,
            batch=config.batch_size,
            grad_accum=config.grad_accum,
            optimizer=config.optimizer,
            precision=config.resolved_precision(),
            device=config.device,
            timing=timing or LatencyTiming(),
        )

    def at(self, *, frames: int | None, size: int | None) -> CostRequest:
        """The same settings at another clip (None: the spec's)."""
        return replace(self, frames=frames, size=size)

    def describe_step(self) -> str:
        """The training step in words: ``adamw step, batch 16, fp32, cpu``."""
        accum = f" x {self.grad_accum} accumulated" if self.grad_accum > 1 else ""
        return f"{self.optimizer} step, batch {self.batch}{accum}, {self.precision}, {self.device}"


def format_shape(shape: Sequence[int]) -> str:
    """``(3, 8, 32, 32)`` -> ``3x8x32x32``."""
    return "x".join(str(int(n)) for n in shape)


@dataclass(frozen=True)
class CostRow:
    """The costs of one network at one input, each with how it was measured."""

    values: Mapping[str, float]  # cost name (without ``trained.``) -> value in its unit
    methods: Mapping[str, str]  # cost name -> how the value was obtained, in words
    input_shape: tuple[int, ...]  # (C, T, H, W) of the clip the costs were measured at
    request: CostRequest
    stages: Sequence[Mapping[str, Any]] = ()  # per-stage table (fvcore), when described
    unsupported_ops: Mapping[str, int] = field(default_factory=dict)  # uncounted operators

    def get(self, name: str) -> float | None:
        """The value of cost ``name`` (``trained.`` ignored: a row is at one input)."""
        return self.values.get(parse_cost(name).cost.name)

    def columns(self, *, trained: bool) -> dict[str, Any]:
        """The results-table columns of this row: ``gflops``, ``input_shape``... and the
        methods, each prefixed ``trained.`` when ``trained``."""
        prefix = TRAINED if trained else ""
        out: dict[str, Any] = {f"{prefix}{k}": v for k, v in self.values.items()}
        out[f"{prefix}input_shape"] = format_shape(self.input_shape)
        for key, column in _METHOD_COLUMNS.items():
            if key in self.methods:
                out[f"{prefix}{column}"] = self.methods[key]
        return out


# NOTE: the results table has one method column per kind of measurement; params and
# gflops_all are always counted one way (see COSTS).
_METHOD_COLUMNS = {
    "gflops": "gflops_method",
    "train_memory_mb": "memory_method",
    "latency_ms": "latency_method",
}
