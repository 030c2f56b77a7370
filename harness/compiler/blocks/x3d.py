"""The X3D bottleneck (Feichtenhofer, "X3D: Expanding Architectures for Efficient Video
Recognition", CVPR 2020)::

    x -> 1x1x1 (inner) -> norm -> relu
      -> depthwise t x k x k (spatial stride) -> norm -> [SE] -> swish
      -> 1x1x1 (out) -> norm --(+ shortcut)--> relu
"""

from __future__ import annotations

from torch import nn

from harness.compiler.blocks._registry import BLOCKS, Residual, pick
from harness.compiler.layers import ConvNormAct, SqueezeExcite, create_act
from harness.compiler.plan import Grid
from harness.spec.blocks import X3DBlockSpec
from harness.spec.expand import round_width


@BLOCKS.register("x3d")
def create_x3d_block(
    spec: X3DBlockSpec,
    *,
    dim_in: int,
    dim_out: int,
    dim_inner: int | None,
    stride: tuple[int, int],
    index: int,
    grid: Grid | None = None,
) -> nn.Module:
    assert dim_inner is not None, "the spec validator guarantees an inner width"
    t, s = stride
    kt, k = pick(spec.temporal_kernel, index), spec.spatial_kernel
    layers: list[nn.Module] = [
        ConvNormAct(dim_in, dim_inner, (1, 1, 1), norm=spec.norm, act=spec.act),
        ConvNormAct(
            dim_inner,
            dim_inner,
            (kt, k, k),
            (t, s, s),
            groups=dim_inner,
            norm=spec.norm,
            act="none",
        ),
    ]
    if spec.se_ratio > 0 and index % spec.se_every == 0:
        layers.append(SqueezeExcite(dim_inner, round_width(dim_inner, spec.se_ratio)))
    layers += [
        create_act(spec.inner_act),
        ConvNormAct(dim_inner, dim_out, (1, 1, 1), norm=spec.norm, act="none"),
    ]
    return Residual(
        nn.Sequential(*layers),
        dim_in=dim_in,
        dim_out=dim_out,
        stride=stride,
        norm=spec.norm,
        act=spec.act,
    )
