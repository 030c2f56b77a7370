"""Stem builders, registered by spec ``type``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from harness.compiler.convs import create_conv_unit
from harness.compiler.plan import Grid
from harness.registry import Registry
from harness.spec.schema import ConvStemSpec, PoolSpec

__all__ = ["STEMS", "create_pool", "create_stem"]

STEMS: Registry[Callable[..., nn.Module]] = Registry("stem")


def create_pool(spec: PoolSpec) -> nn.Module:
    """A max or average pooling layer."""
    cls = nn.MaxPool3d if spec.type == "max" else nn.AvgPool3d
    return cls(spec.kernel, stride=spec.stride or spec.kernel, padding=spec.padding)


@STEMS.register("conv")
def create_conv_stem(spec: ConvStemSpec, *, dim_in: int, grid: Grid | None = None) -> nn.Module:
    unit = create_conv_unit(
        spec.factorization,
        dim_in=dim_in,
        dim_out=spec.width,
        kernel=spec.kernel,
        stride=spec.stride,
        mid_width=spec.mid_width,
        norm=spec.norm,
        act=spec.act,
        bias=spec.bias,
    )
    if spec.pool is None:
        return unit
    return nn.Sequential(unit, create_pool(spec.pool))


@STEMS.register("none")
def create_identity_stem(spec: Any, *, dim_in: int, grid: Grid | None = None) -> nn.Module:
    return nn.Identity()


def create_stem(spec: Any, *, dim_in: int, grid: Grid | None = None) -> nn.Module:
    """Build stem ``spec`` over ``dim_in`` input channels.

    ``grid`` is the stem's output extent and layout (patch stems size their positional
    encodings with it).
    """
    return STEMS.get(spec.type)(spec, dim_in=dim_in, grid=grid)
