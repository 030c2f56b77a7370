"""What a spec costs, per stage: the figures ``harness compile`` prints.

Composes the three rooms: load the spec, compile it, measure the model. Training memory
(at a batch size) and latency are measured or simulated on request, and looked up in a
:class:`~harness.measure.CostCache` first when one is given.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import torch

from harness.compiler import VideoNet, build_model, planned_input_shape
from harness.compiler.network import row_group
from harness.errors import SpecError
from harness.measure import (
    CostCache,
    CostKey,
    Latency,
    MetaForward,
    TrainMemory,
    check_fits,
    count_flops,
    count_params,
    estimate_train_memory,
    example_input,
    fits,
    forward_on_meta,
    measure_latency,
    measure_train_memory,
    precheck,
)
from harness.spec import ModelSpec, load_spec, realise, spec_hash

__all__ = [
    "FLOP_CONVENTION",
    "MEMORY_METHODS",
    "TABLE_VERSION",
    "GroupTotal",
    "LatencyOptions",
    "ModelReport",
    "StageRow",
    "describe_model",
    "memory_method",
]

FLOP_CONVENTION = (
    "gflops: conv/linear/matmul/einsum/attention multiply-adds (1 multiply-add = 1 FLOP), "
    "batch 1, 1e9; gflops_all adds normalisation and pooling"
)


# Bump when the rows of the table or the inputs shown change, so that cached counts with
# older ones are not read (3: a spectrogram input shown as channels x frames x mels).
TABLE_VERSION = 3


@dataclass(frozen=True)
class StageRow:
    """One row of the per-module table (one of ``VideoNet.rows()``)."""

    # stem, stages.0, ..., head; with several pathways slow/stem, slow/stages.0, ...,
    # fast->slow/stem (a lateral), ..., join (see harness.compiler.network.list_rows)
    name: str
    output_shape: list[int]  # (C, T, H, W) after the module; (classes,) for the head
    params: int
    gflops: float


@dataclass(frozen=True)
class GroupTotal:
    """The rows of one pathway, of the laterals or of the join, added up."""

    name: str  # a pathway's name, laterals or join
    params: int
    gflops: float


@dataclass(frozen=True)
class ModelReport:
    """Parameters and FLOPs of a compiled spec at one input."""

    name: str
    spec_hash: str
    input_shape: list[int]  # [C, T, H, W]
    classes: int
    params: int  # every parameter
    params_no_norm: int  # without normalisation layers (the X3D paper's count)
    gflops: float
    gflops_all: float | None  # None when counted on meta tensors (it needs fvcore's trace)
    unsupported_ops: dict[str, int]
    stages: list[StageRow] = field(default_factory=list)
    # Named inputs (C, T, H, W) of a network that reads several clips or has several
    # pathways; empty (and left out of the JSON) where ``input_shape`` is the one clip.
    inputs: dict[str, list[int]] = field(default_factory=dict)
    flop_convention: str = FLOP_CONVENTION
    # fvcore (a trace of the built model), or meta_simulation where that trace would not fit
    count_method: str = "fvcore"
    train_memory: TrainMemory | None = None  # with a batch size
    # With a batch size: multiply-adds of one clip's training step / 1e9 (the forward, a
    # backward of twice it, and what activation checkpointing recomputes).
    train_gflops: float | None = None
    latency: Latency | None = None  # on request
    activation_checkpoint: list[int] = field(default_factory=list)  # checkpointed stages

    def to_json(self) -> dict[str, Any]:
        """Every field (``inputs`` where there are some), plus flat cost figures (null when
        not requested)."""
        data = asdict(self)
        if not self.inputs:
            del data["inputs"]
        return {**data, **self.cost_summary()}

    def group_totals(self) -> list[GroupTotal]:
        """Each pathway's rows, the laterals' and the join's, added up, in first-row order;
        empty for a single pathway. Together they are the whole network's figures."""
        groups: dict[str, list[StageRow]] = {}
        for row in self.stages:
            group = row_group(row.name)
            if group is not None:
                groups.setdefault(group, []).append(row)
        return [
            GroupTotal(name, sum(r.params for r in rows), sum(r.gflops for r in rows))
            for name, rows in groups.items()
        ]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelReport:
        """The counts of :meth:`to_json` (memory and latency are cached on their own)."""
        names = {f.name for f in fields(cls)} - {
            "train_memory",
            "train_gflops",
            "latency",
            "activation_checkpoint",
        }
        values = {k: v for k, v in data.items() if k in names}
        return cls(**{**values, "stages": [StageRow(**row) for row in values["stages"]]})

    def cost_summary(self) -> dict[str, Any]:
        """``train_memory_mb`` (MiB), ``latency_ms`` (medians) and the method of each."""
        memory, latency = self.train_memory, self.latency
        forward = latency.forward if latency else None
        both = latency.forward_backward if latency else None
        return {
            "train_memory_mb": memory.peak_mb if memory else None,
            "train_memory_method": memory.method if memory else None,
            "train_memory_oom": memory.oom if memory else None,
            "latency_ms": forward.median if forward else None,
            "latency_iqr_ms": forward.iqr if forward else None,
            "latency_fwd_bwd_ms": both.median if both else None,
            "latency_fwd_bwd_iqr_ms": both.iqr if both else None,
            "latency_method": latency.method if latency else None,
            "latency_oom": latency.oom if latency else None,
        }


@dataclass(frozen=True)
class LatencyOptions:
    """How to time: see :func:`harness.measure.measure_latency`."""

    threads: int | None = None
    channels_last: bool = False
    compile: bool = False
    warmup: int = 3
    repeats: int = 10


MEMORY_METHODS = ("auto", "measure", "estimate")


def memory_method(method: str, device: str) -> str:
    """``measure`` or ``estimate``; ``auto`` measures on CUDA and simulates on the CPU."""
    if method not in MEMORY_METHODS:
        raise SpecError(
            f"unknown memory method '{method}'; known: {', '.join(MEMORY_METHODS)}",
            path=("memory",),
        )
    if method == "auto":
        return "measure" if device.startswith("cuda") else "estimate"
    return method


def _module_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _stage_rows(model: VideoNet, by_module: dict[str, int]) -> list[StageRow]:
    """One row per row of ``model.rows()``: its output shape, parameters, GFLOPs.

    ``by_module`` holds the multiply-adds inside each module named by ``model.stage_names()``
    (fvcore's by-module count, or the meta simulation's per-scope count).
    """
    return [
        StageRow(
            row.name,
            list(row.output_shape),
            _module_params(model.get_submodule(row.module)),
            by_module.get(row.module, 0) / 1e9,
        )
        for row in model.rows()
    ]


def _named_inputs(model: VideoNet) -> dict[str, list[int]]:
    """Each named input's shape, where there are several clips or pathways: (C, T, H, W)
    of a clip, (C, frames, mels) of a spectrogram (not the channels it is packed into)."""
    plan = model.plan
    audio = {name: [c, frames, mels] for name, c, frames, mels in plan.audio}
    if len(plan.inputs) == 1 and len(plan.pathways) == 1 and not audio:
        return {}
    _, t, h, w = plan.input_shape
    return {name: audio.get(name, [c, t, h, w]) for name, c in plan.inputs}


def describe_model(
    spec: ModelSpec | str | Path,
    *,
    frames: int | None = None,
    size: int | None = None,
    classes: int | None = None,
    batch: int | None = None,
    latency: LatencyOptions | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    memory: str = "auto",
    optimizer: str = "sgd",
    cache: CostCache | None = None,
) -> ModelReport:
    """Compile ``spec`` and count its parameters and FLOPs at ``frames`` x ``size``.

    Args:
        batch: also report the training-step memory at this batch size.
        latency: also time inference and forward+backward (at ``batch``, or 1).
        device: where to measure (or, for simulated memory, which device to simulate).
        precision: fp32, or bf16/fp16 autocast.
        memory: ``measure``, ``estimate`` (simulate) or ``auto`` (see :func:`memory_method`).
        optimizer: the optimizer of the training step.
        cache: look costs up here first, and store them.
    """
    loaded = load_spec(spec)
    real = realise(loaded)
    classes = classes or real.classes
    digest = spec_hash(loaded)
    built: list[VideoNet] = []

    def model() -> VideoNet:  # built once, and only when something is not in the cache
        if not built:
            built.append(build_model(loaded, frames=frames, size=size, classes=classes))
        return built[0]

    shape = planned_input_shape(loaded, frames=frames, size=size)
    if shape is None:  # a spec that cannot be planned: the build names the bad key
        shape = model().plan.input_shape

    ahead: list[MetaForward] = []

    def on_meta() -> MetaForward:  # the network on meta tensors: costs nothing to build
        if not ahead:
            ahead.append(forward_on_meta(loaded, frames=frames, size=size, classes=classes))
        return ahead[0]

    checkpointed = sorted(loaded.checkpointed_stages())
    # NOTE: a runtime setting, not in the spec hash; keyed only where set (earlier entries
    # stay valid), and only for what a training step measures.
    step = {"checkpoint": checkpointed} if checkpointed else {}

    def key(kind: str, at: int, **options: Any) -> CostKey:
        return CostKey.of(
            digest, shape, batch=at, device=device, precision=precision, kind=kind,
            classes=classes, **options,
        )  # fmt: skip

    def count_key(kind: str) -> CostKey:
        return key(kind, 1, table=TABLE_VERSION)

    report = _count(cache, count_key, model, on_meta, loaded.name, digest, shape, classes)
    costs: dict[str, Any] = {"activation_checkpoint": checkpointed}
    if batch is not None:
        # The simulated step (the cost room's pre-check): memory, and the training FLOPs
        # with what activation checkpointing recomputes.
        simulated = precheck(
            loaded, frames=frames, size=size, classes=classes, batch=batch, device=device,
            precision=precision, optimizer=optimizer, cache=cache,
        )  # fmt: skip
        costs["train_gflops"] = simulated.train_flops / 1e9
        costs["train_memory"] = simulated.train_memory
        if memory_method(memory, device) == "measure":
            _check_real_step(on_meta(), shape, batch, device, precision, optimizer, "memory")
            # A measurement holds for the machine it ran on; a simulation for any.
            costs["train_memory"] = _cached(
                cache,
                key("train_memory/measure", batch, optimizer=optimizer,
                    machine=_machine(device), **step),
                lambda: measure_train_memory(
                    model(), shape, batch=batch, device=device, precision=precision,
                    optimizer=optimizer,
                ),
                TrainMemory.from_json,
            )  # fmt: skip
    if latency is not None:
        options = asdict(latency)
        at = batch or 1
        _check_real_step(on_meta(), shape, at, device, precision, "sgd", "latency")
        costs["latency"] = _cached(
            cache,
            key("latency", at, machine=_machine(device), **options, **step),
            lambda: measure_latency(
                model(), shape, batch=at, device=device, precision=precision, **options
            ),
            Latency.from_json,
        )
    return replace(report, **costs)


def _count(
    cache: CostCache | None,
    key: Callable[..., CostKey],
    model: Callable[[], VideoNet],
    on_meta: Callable[[], MetaForward],
    name: str,
    digest: str,
    shape: tuple[int, ...],
    classes: int,
) -> ModelReport:
    """Parameters and FLOPs, per stage: fvcore's trace of the built model, or, where that
    trace would not fit in memory, the meta simulation's count (the same multiply-adds;
    ``gflops_all`` and the uncounted operators need the trace). Nothing big is allocated.
    """
    for kind in ("fvcore", "meta_count"):
        stored = cache.get(key(kind)) if cache is not None else None
        if stored is not None:
            return ModelReport.from_json(stored)
    ahead = on_meta()
    if fits(ahead.memory.peak_bytes or 0):
        report = _fvcore_report(model(), name, digest, shape, classes)
    else:
        report = _meta_report(ahead, name, digest, shape, classes)
    if cache is not None:
        cache.put(key(report.count_method.replace("meta_simulation", "meta_count")),
                  report.to_json())  # fmt: skip
    return report


def _fvcore_report(
    model: VideoNet, name: str, digest: str, shape: tuple[int, ...], classes: int
) -> ModelReport:
    flops = count_flops(model, example_input(shape))
    return ModelReport(
        name=name,
        spec_hash=digest,
        input_shape=list(shape),
        classes=classes,
        params=count_params(model),
        params_no_norm=count_params(model, norm=False),
        gflops=flops.gflops,
        gflops_all=flops.gflops_all,
        unsupported_ops=flops.unsupported_ops,
        stages=_stage_rows(model, flops.by_module),
        inputs=_named_inputs(model),
    )


def _meta_report(
    ahead: MetaForward, name: str, digest: str, shape: tuple[int, ...], classes: int
) -> ModelReport:
    return ModelReport(
        name=name,
        spec_hash=digest,
        input_shape=list(shape),
        classes=classes,
        params=count_params(ahead.model),
        params_no_norm=count_params(ahead.model, norm=False),
        gflops=ahead.flops / 1e9,
        gflops_all=None,
        unsupported_ops={},
        stages=_stage_rows(ahead.model, ahead.scope_flops),
        inputs=_named_inputs(ahead.model),
        count_method="meta_simulation",
    )


def _check_real_step(
    ahead: MetaForward,
    shape: tuple[int, ...],
    batch: int,
    device: str,
    precision: str,
    optimizer: str,
    what: str,
) -> None:
    """Refuse a measurement whose real training step (or timed passes) would not fit.

    NOTE: a measurement runs on a copy of the model, beside the one built for counting.
    """
    step = estimate_train_memory(
        ahead.model, shape, batch=batch, device=device, precision=precision, optimizer=optimizer
    )
    need = (step.peak_bytes or 0) + step.param_bytes
    shown = "x".join(str(n) for n in shape)
    check_fits(
        need,
        f"measuring {what} at batch {batch} ({shown} clips) on {device}",
        device=device,
        hint="--memory estimate simulates the step instead" if what == "memory" else "",
        path=("--batch",),
        file="<command line>",
    )


def _machine(device: str) -> str:
    """What a measurement on ``device`` depends on: the GPU model, or the host and its CPUs."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus"


R = TypeVar("R", ModelReport, TrainMemory, Latency)


def _cached(
    cache: CostCache | None,
    key: CostKey,
    compute: Callable[[], R],
    load: Callable[[dict[str, Any]], R],
) -> R:
    return compute() if cache is None else cache.get_or_compute(key, compute, load)
