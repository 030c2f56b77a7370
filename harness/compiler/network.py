"""The compiled network and the compiler entry point."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from pydantic import ValidationError
from torch import nn

from harness.compiler.blocks import create_block
from harness.compiler.heads import create_head
from harness.compiler.plan import NetworkPlan, StagePlan, plan_network
from harness.compiler.stems import create_pool, create_stem
from harness.errors import SpecError
from harness.spec import ModelSpec, load_spec, locate, realise

__all__ = ["VideoNet", "build_model", "init_weights"]


class VideoNet(nn.Module):
    """stem -> stages -> head, as compiled from a spec.

    Takes a ``(B, C, T, H, W)`` clip (or a one-entry mapping of named clips) and returns
    ``(B, classes)`` scores. ``plan`` keeps the compiler's bookkeeping (per-stage shapes).
    """

    def __init__(
        self, stem: nn.Module, stages: list[nn.Module], head: nn.Module, plan: NetworkPlan
    ) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head
        self.plan = plan

    def forward(self, x: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        if isinstance(x, Mapping):
            (x,) = x.values()
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def _build_stage(stage: StagePlan) -> nn.Module:
    layers = []
    for block in stage.blocks:
        try:
            layers.append(
                create_block(
                    block.spec,
                    dim_in=block.dim_in,
                    dim_out=block.dim_out,
                    dim_inner=block.dim_inner,
                    stride=block.stride,
                    index=block.index,
                )
            )
        except SpecError as exc:
            raise SpecError(exc.message, path=(*block.path, *exc.path)) from None
    if stage.pool is not None:
        layers.append(create_pool(stage.pool))
    return nn.Sequential(*layers)


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal convs (fan-out), unit norms, N(0, 0.01) linears, zero biases.

    Norms marked ``zero_init`` (the last of each residual branch) start at zero, so every
    residual block starts as the identity.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm3d):
            nn.init.constant_(module.weight, 0.0 if getattr(module, "zero_init", False) else 1.0)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.01)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _compile(spec: ModelSpec, *, frames: int, size: int, classes: int) -> VideoNet:
    plan = plan_network(spec, frames=frames, size=size)
    stem = create_stem(spec.stem, dim_in=spec.clip.channels)
    stages = [_build_stage(stage) for stage in plan.stages]
    c, t, h, w = plan.output_shape
    head = create_head(spec.head, dim_in=c, extent=(t, h, w), classes=classes)
    model = VideoNet(stem, stages, head, plan)
    init_weights(model)
    return model


def build_model(
    spec: ModelSpec | str | Path,
    *,
    frames: int | None = None,
    size: int | None = None,
    classes: int | None = None,
) -> VideoNet:
    """Compile a spec (or a zoo name, or a YAML path) into a ``torch.nn.Module``.

    Args:
        spec: the spec, a zoo name or a YAML path.
        frames: clip length to build for (default: the spec's, after expansion).
        size: crop size to build for (default: the spec's, after expansion).
        classes: number of output classes (default: the spec's ``classes``).

    Raises:
        SpecError: naming file, line and key path when the spec cannot be built.
    """
    loaded = load_spec(spec)
    try:
        real = realise(loaded)
        for name, value in (("frames", frames), ("size", size), ("classes", classes)):
            if value is not None and value < 1:
                raise SpecError(f"{name} must be at least 1, got {value}", path=(name,))
        return _compile(
            real,
            frames=frames or real.clip.frames,
            size=size or real.clip.size,
            classes=classes or real.classes,
        )
    except SpecError as exc:
        raise locate(loaded, exc) from None
    except ValidationError as exc:
        error = exc.errors()[0]
        raise locate(loaded, SpecError(error["msg"], path=error["loc"])) from None
