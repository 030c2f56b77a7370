"""ResNet-family blocks: basic, (2+1)D, bottleneck, TSM, CSN and P3D.

All are :class:`Residual` wrappers around a branch; the first block of a stage carries the
stride (temporal on the temporal conv, spatial on the spatial one).

    basic       t x k x k -> t x k x k                      (R3D; t = 1: MCx / rMCx 2D stages)
    r2plus1d    (1 x k x k -> t x 1 x 1) twice              (R(2+1)D)
    bottleneck  t x 1 x 1 -> 1 x k x k -> 1x1x1             (C2D, I3D, Slow-only)
                (middle: parallel: t x 1 x 1 + 1 x k x k      (AVSlowFast's acoustic block))
    tsm         shift -> 1x1x1 -> 1 x k x k -> 1x1x1        (TSM)
    csn         1x1x1 -> [1x1x1] -> dw t x k x k -> 1x1x1   (ip-/ir-CSN)
    p3d         1x1x1 -> S(1 x k x k) / T(t x 1 x 1) -> 1x1x1  (P3D-A/B/C)
"""

from __future__ import annotations

import torch
from torch import nn

from harness.compiler.blocks._registry import BLOCKS, Residual, pick
from harness.compiler.layers import ConvNormAct, ParallelSum, create_act, create_norm
from harness.compiler.layers import r2plus1d_mid_width as mid_width
from harness.compiler.plan import Grid
from harness.spec.blocks import (
    BasicBlockSpec,
    BottleneckBlockSpec,
    CSNBlockSpec,
    P3DBlockSpec,
    R2Plus1DBlockSpec,
    TSMBlockSpec,
)

Stride = tuple[int, int]


def _inner(dim_inner: int | None) -> int:
    assert dim_inner is not None, "the spec validator guarantees an inner width"
    return dim_inner


@BLOCKS.register("basic")
def create_basic_block(
    spec: BasicBlockSpec,
    *,
    dim_in: int,
    dim_out: int,
    dim_inner: int | None,
    stride: Stride,
    index: int,
    grid: Grid | None = None,
) -> nn.Module:
    t, s = stride
    kt, k = pick(spec.temporal_kernel, index), spec.spatial_kernel
    branch = nn.Sequential(
        ConvNormAct(dim_in, dim_out, (kt, k, k), (t, s, s), norm=spec.norm, act=spec.act),
        ConvNormAct(dim_out, dim_out, (kt, k, k), norm=spec.norm, act="none"),
    )
    return Residual(
        branch, dim_in=dim_in, dim_out=dim_out, stride=stride, norm=spec.norm, act=spec.act
    )


def _conv2plus1d(
    dim_in: int,
    dim_mid: int,
    dim_out: int,
    kt: int,
    k: int,
    stride: Stride,
    spec: R2Plus1DBlockSpec,
    act: str,
) -> nn.Sequential:
    t, s = stride
    return nn.Sequential(
        ConvNormAct(dim_in, dim_mid, (1, k, k), (1, s, s), norm=spec.norm, act=spec.act),
        ConvNormAct(dim_mid, dim_out, (kt, 1, 1), (t, 1, 1), norm=spec.norm, act=act),
    )


@BLOCKS.register("r2plus1d")
def create_r2plus1d_block(
    spec: R2Plus1DBlockSpec,
    *,
    dim_in: int,
    dim_out: int,
    dim_inner: int | None,
    stride: Stride,
    index: int,
    grid: Grid | None = None,
) -> nn.Module:
    kt, k = pick(spec.temporal_kernel, index), spec.spatial_kernel
    mid1 = mid_width(dim_in, dim_out, kt, k)
    second_in = dim_in if spec.mid_width_from == "block_input" else dim_out
    mid2 = mid_width(second_in, dim_out, kt, k)
    branch = nn.Sequential(
        _conv2plus1d(dim_in, mid1, dim_out, kt, k, stride, spec, spec.act),
        _conv2plus1d(dim_out, mid2, dim_out, kt, k, (1, 1), spec, "none"),
    )
    return Residual(
        branch, dim_in=dim_in, dim_out=dim_out, stride=stride, norm=spec.norm, act=spec.act
    )


def _bottleneck_middle(
    spec: BottleneckBlockSpec, inner: int, kt: int, stride: tuple[int, int, int]
) -> nn.Module:
    """The middle conv: one kt x k x k conv, or kt x 1 x 1 and 1 x k x k side by side."""
    k = spec.spatial_kernel
    if spec.middle == "full":
        return ConvNormAct(
            inner, inner, (kt, k, k), stride, groups=spec.groups, norm=spec.norm, act=spec.act
        )
    return ParallelSum(
        ConvNormAct(
            inner, inner, (kt, 1, 1), stride, groups=spec.groups, norm=spec.norm, act=spec.act
        ),
        ConvNormAct(
            inner, inner, (1, k, k), stride, groups=spec.groups, norm=spec.norm, act=spec.act
        ),
    )


@BLOCKS.register("bottleneck")
def create_bottleneck_block(
    spec: BottleneckBlockSpec,
    *,
    dim_in: int,
    dim_out: int,
    dim_inner: int | None,
    stride: Stride,
    index: int,
    grid: Grid | None = None,
) -> nn.Module:
    t, s = stride
    inner = _inner(dim_inner)
    kt = pick(spec.temporal_kernel, index)
    first_t, middle_t = (kt, 1) if spec.temporal_kernel_at == "first" else (1, kt)
    first_stride, middle_stride = ((t, 1, 1), (1, s, s))
    if spec.temporal_stride_at == "middle":
        first_stride, middle_stride = ((1, 1, 1), (t, s, s))
    branch = nn.Sequential(
        ConvNormAct(dim_in, inner, (first_t, 1, 1), first_stride, norm=spec.norm, act=spec.act),
        _bottleneck_middle(spec, inner, middle_t, middle_stride),
        ConvNormAct(inner, dim_out, (1, 1, 1), norm=spec.norm, act="none"),
    )
    return Residual(
        branch, dim_in=dim_in, dim_out=dim_out, stride=stride, norm=spec.norm, act=spec.act
    )


class TemporalShift(nn.Module):
    """Shift ``fold`` channels one frame back in time and the next ``fold`` one frame forward.

    TSM (Lin, Gan, Han; ICCV 2019). No parameters; vacated frames are zero.
    """

    def __init__(self, fraction: float) -> None:
        super().__init__()
        self.fraction = fraction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fold = int(x.shape[1] * self.fraction)
        if fold == 0 or x.shape[2] < 2:
            return x
        back, forward, rest = x[:, :fold], x[:, fold : 2 * fold], x[:, 2 * fold :]
        zeros = back.new_zeros(back[:, :, :1].shape)
        back = torch.cat((back[:, :, 1:], zeros), dim=2)  # frame t sees frame t + 1
        forward = torch.cat((zeros, forward[:, :, :-1]), dim=2)  # frame t sees frame t - 1
        return torch.cat((back, forward, rest), dim=1)


class _ShiftInPlace(nn.Module):
    def __init__(self, shift: TemporalShift, block: nn.Module) -> None:
        super().__init__()
        self.shift = shift
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.shift(x))


@BLOCKS.register("tsm")
def create_tsm_block(
    spec: TSMBlockSpec,
    *,
    dim_in: int,
    dim_out: int,
    dim_inner: int | None,
    stride: Stride,
    index: int,
    grid: Grid | None = None,
) -> nn.Module:
    t, s = stride
    inner, k = _inner(dim_inner), spec.spatial_kernel
    layers: list[nn.Module] = [
        ConvNormAct(dim_in, inner, (1, 1, 1), norm=spec.norm, act=spec.act),
        ConvNormAct(inner, inner, (1, k, k), (t, s, s), norm=spec.norm, act=spec.act),
        ConvNormAct(inner, dim_out, (1, 1, 1), norm=spec.norm, act="none"),
    ]
    shift = TemporalShift(spec.shift_fraction)
    if spec.shift_mode == "residual":
        layers.insert(0, shift)
    block = Residual(
        nn.Sequential(*layers),
        dim_in=dim_in,
        dim_out=dim_out,
        stride=stride,
        norm=spec.norm,
        act=spec.act,
    )
    return block if spec.shift_mode == "residual" else _ShiftInPlace(shift, block)


@BLOCKS.register("csn")
def create_csn_block(
    spec: CSNBlockSpec,
    *,
    dim_in: int,
    dim_out: int,
    dim_inner: int | None,
    stride: Stride,
    index: int,
    grid: Grid | None = None,
) -> nn.Module:
    t, s = stride
    inner, k = _inner(dim_inner), spec.spatial_kernel
    kt = pick(spec.temporal_kernel, index)
    layers: list[nn.Module] = [ConvNormAct(dim_in, inner, (1, 1, 1), norm=spec.norm, act=spec.act)]
    if spec.variant == "ip":
        # interaction-preserved: keep a 1x1x1 channel-mixing conv before the depthwise one
        layers.append(ConvNormAct(inner, inner, (1, 1, 1), norm=spec.norm, act="none"))
    layers += [
        ConvNormAct(
            inner, inner, (kt, k, k), (t, s, s), groups=inner, norm=spec.norm, act=spec.act
        ),
        ConvNormAct(inner, dim_out, (1, 1, 1), norm=spec.norm, act="none"),
    ]
    return Residual(
        nn.Sequential(*layers),
        dim_in=dim_in,
        dim_out=dim_out,
        stride=stride,
        norm=spec.norm,
        act=spec.act,
    )


class _P3DCore(nn.Module):
    """The spatial/temporal pair of a P3D block in arrangement A, B or C."""

    def __init__(self, variant: str, spatial: nn.Module, temporal: nn.Module, act: str) -> None:
        super().__init__()
        self.variant = variant
        self.spatial = spatial
        self.temporal = temporal
        self.act = create_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.variant == "A":
            return self.act(self.temporal(self.spatial(x)))
        if self.variant == "B":
            return self.act(self.spatial(x) + self.temporal(x))
        s = self.spatial(x)
        return self.act(s + self.temporal(s))


@BLOCKS.register("p3d")
def create_p3d_block(
    spec: P3DBlockSpec,
    *,
    dim_in: int,
    dim_out: int,
    dim_inner: int | None,
    stride: Stride,
    index: int,
    grid: Grid | None = None,
) -> nn.Module:
    t, s = stride
    inner, k = _inner(dim_inner), spec.spatial_kernel
    kt = pick(spec.temporal_kernel, index)
    # In A and C the temporal conv follows the spatial one, so only the first carries the
    # stride; in B both read the block input and both are strided.
    spatial_stride = (t, s, s)
    temporal_stride = (t, s, s) if spec.variant == "B" else (1, 1, 1)
    spatial = ConvNormAct(
        inner,
        inner,
        (1, k, k),
        spatial_stride,
        norm=spec.norm,
        act=spec.act if spec.variant != "B" else "none",
    )
    temporal = nn.Sequential(
        nn.Conv3d(inner, inner, (kt, 1, 1), temporal_stride, padding=(kt // 2, 0, 0), bias=False),
        create_norm(spec.norm, inner),
    )
    branch = nn.Sequential(
        ConvNormAct(dim_in, inner, (1, 1, 1), norm=spec.norm, act=spec.act),
        _P3DCore(spec.variant, spatial, temporal, spec.act),
        ConvNormAct(inner, dim_out, (1, 1, 1), norm=spec.norm, act="none"),
    )
    return Residual(
        branch, dim_in=dim_in, dim_out=dim_out, stride=stride, norm=spec.norm, act=spec.act
    )
