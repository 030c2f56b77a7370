"""The plain block: a (factorised) conv -> norm -> act, no residual (C3D, S3D's stem)."""

from __future__ import annotations

from torch import nn

from harness.compiler.blocks._registry import BLOCKS
from harness.compiler.convs import create_conv_unit
from harness.compiler.plan import Grid
from harness.spec.blocks import PlainBlockSpec


@BLOCKS.register("plain")
def create_plain_block(
    spec: PlainBlockSpec,
    *,
    dim_in: int,
    dim_out: int,
    dim_inner: int | None,
    stride: tuple[int, int],
    index: int,
    grid: Grid | None = None,
) -> nn.Module:
    t, s = stride
    return create_conv_unit(
        spec.factorization,
        dim_in=dim_in,
        dim_out=dim_out,
        kernel=spec.kernel,
        stride=(t, s, s),
        mid_width=spec.mid_width,
        norm=spec.norm,
        act=spec.act,
        bias=spec.bias,
    )
