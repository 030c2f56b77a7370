"""What a spec costs, per stage: the figures ``harness compile`` prints.

Composes the three rooms: load the spec, compile it, measure the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.compiler import VideoNet, build_model
from harness.measure import count_flops, count_params, example_input
from harness.spec import ModelSpec, load_spec, realise, spec_hash

__all__ = ["FLOP_CONVENTION", "ModelReport", "StageRow", "describe_model"]

FLOP_CONVENTION = (
    "gflops: conv/linear/matmul/einsum/attention multiply-adds (1 multiply-add = 1 FLOP), "
    "batch 1, 1e9; gflops_all adds normalisation and pooling"
)


@dataclass(frozen=True)
class StageRow:
    """One row of the per-stage table."""

    name: str  # module name: stem, stages.0, ..., head
    output_shape: list[int]  # (C, T, H, W) after the module; (classes,) for the head
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
    gflops_all: float
    unsupported_ops: dict[str, int]
    stages: list[StageRow] = field(default_factory=list)
    flop_convention: str = FLOP_CONVENTION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _module_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _stage_rows(model: VideoNet, by_module: dict[str, int], classes: int) -> list[StageRow]:
    plan = model.plan
    rows = [
        StageRow(
            "stem",
            list(plan.stem_shape),
            _module_params(model.stem),
            by_module.get("stem", 0) / 1e9,
        )
    ]
    for i, (stage, stage_plan) in enumerate(zip(model.stages, plan.stages, strict=True)):
        name = f"stages.{i}"
        rows.append(
            StageRow(
                name,
                list(stage_plan.shape_out),
                _module_params(stage),
                by_module.get(name, 0) / 1e9,
            )
        )
    rows.append(
        StageRow("head", [classes], _module_params(model.head), by_module.get("head", 0) / 1e9)
    )
    return rows


def describe_model(
    spec: ModelSpec | str | Path,
    *,
    frames: int | None = None,
    size: int | None = None,
    classes: int | None = None,
) -> ModelReport:
    """Compile ``spec`` and count its parameters and FLOPs at ``frames`` x ``size``."""
    loaded = load_spec(spec)
    real = realise(loaded)
    classes = classes or real.classes
    model = build_model(loaded, frames=frames, size=size, classes=classes)
    shape = model.plan.input_shape
    flops = count_flops(model, example_input(shape))
    return ModelReport(
        name=loaded.name,
        spec_hash=spec_hash(loaded),
        input_shape=list(shape),
        classes=classes,
        params=count_params(model),
        params_no_norm=count_params(model, norm=False),
        gflops=flops.gflops,
        gflops_all=flops.gflops_all,
        unsupported_ops=flops.unsupported_ops,
        stages=_stage_rows(model, flops.by_module, classes),
    )
