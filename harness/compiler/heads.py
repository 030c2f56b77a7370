"""Head builders, registered by spec ``type``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from harness.compiler.layers import ConvNormAct, create_act
from harness.errors import SpecError
from harness.registry import Registry
from harness.spec.schema import ClassifierHeadSpec

__all__ = ["HEADS", "create_head", "head_width"]

HEADS: Registry[Callable[..., nn.Module]] = Registry("head")


def head_width(spec: ClassifierHeadSpec, dim_in: int) -> int:
    """Channels after the optional pre-pool conv."""
    return int(spec.conv_ratio * dim_in) if spec.conv_ratio else dim_in


@HEADS.register("classifier")
def create_classifier_head(
    spec: ClassifierHeadSpec,
    *,
    dim_in: int,
    extent: tuple[int, int, int],
    classes: int,
    tokens: str = "map",
) -> nn.Module:
    _needs_map(spec, tokens)
    layers: list[nn.Module] = []
    dim = head_width(spec, dim_in)
    if spec.conv_ratio:
        layers.append(ConvNormAct(dim_in, dim, (1, 1, 1), norm=spec.norm, act=spec.act))
    if spec.pool == "flatten":
        dim *= extent[0] * extent[1] * extent[2]
    else:
        layers.append(nn.AdaptiveAvgPool3d(1) if spec.pool == "avg" else nn.AdaptiveMaxPool3d(1))
    layers.append(nn.Flatten(1))
    for width in spec.hidden:
        layers += [nn.Linear(dim, width, bias=spec.hidden_bias), create_act(spec.act)]
        if spec.dropout:
            layers.append(nn.Dropout(spec.dropout))
        dim = width
    if spec.dropout and not spec.hidden:
        layers.append(nn.Dropout(spec.dropout))
    layers.append(nn.Linear(dim, classes))
    return nn.Sequential(*layers)


@HEADS.register("features")
def create_features_head(
    spec: Any, *, dim_in: int, extent: tuple[int, int, int], classes: int, tokens: str = "map"
) -> nn.Module:
    _needs_map(spec, tokens)
    return nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(1))


def create_head(
    spec: Any, *, dim_in: int, extent: tuple[int, int, int], classes: int, tokens: str = "map"
) -> nn.Module:
    """Build head ``spec`` on ``dim_in`` channels of ``extent`` = (T, H, W).

    ``tokens`` is the layout the head reads (a feature ``map``, or a token layout).
    """
    return HEADS.get(spec.type)(spec, dim_in=dim_in, extent=extent, classes=classes, tokens=tokens)


def _needs_map(spec: Any, tokens: str) -> None:
    if tokens != "map":
        raise SpecError(f"head type '{spec.type}' reads a feature map; tokens need 'tokens'")
