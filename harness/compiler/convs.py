"""Factorisations of a t x h x w convolution, registered by name.

``full``         one t x h x w conv (C3D, R3D, I3D)
``2plus1d``      1 x h x w -> norm/act -> t x 1 x 1, mid width by the R(2+1)D formula
``separable``    the same with mid width = output width (S3D's separable conv)
``dw_temporal``  1 x h x w -> depthwise t x 1 x 1 (X3D's stem)
``parallel``     t x 1 x 1 + 1 x h x w, summed, -> norm/act (AVSlowFast's audio stem)

Each unit ends with norm and act. Spatial strides go on the spatial conv, temporal ones on
the temporal conv.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from harness.compiler.layers import ConvNormAct, ParallelSum, conv3d, create_act, create_norm
from harness.compiler.layers import r2plus1d_mid_width as _mid
from harness.registry import Registry

__all__ = ["CONV_UNITS", "create_conv_unit"]

Triple = tuple[int, int, int]
ConvUnitFn = Callable[..., nn.Module]

CONV_UNITS: Registry[ConvUnitFn] = Registry("factorization")


@CONV_UNITS.register("full")
def _full(
    *,
    dim_in: int,
    dim_out: int,
    kernel: Triple,
    stride: Triple,
    mid_width: int | None,
    norm: str,
    act: str,
    bias: bool,
) -> nn.Module:
    return ConvNormAct(dim_in, dim_out, kernel, stride, norm=norm, act=act, bias=bias)


def _spatial_temporal(
    dim_in: int,
    dim_mid: int,
    dim_out: int,
    kernel: Triple,
    stride: Triple,
    norm: str,
    act: str,
    bias: bool,
) -> nn.Module:
    t, h, w = kernel
    return nn.Sequential(
        ConvNormAct(
            dim_in, dim_mid, (1, h, w), (1, stride[1], stride[2]), norm=norm, act=act, bias=bias
        ),
        ConvNormAct(dim_mid, dim_out, (t, 1, 1), (stride[0], 1, 1), norm=norm, act=act, bias=bias),
    )


@CONV_UNITS.register("2plus1d")
def _two_plus_one(
    *,
    dim_in: int,
    dim_out: int,
    kernel: Triple,
    stride: Triple,
    mid_width: int | None,
    norm: str,
    act: str,
    bias: bool,
) -> nn.Module:
    mid = mid_width or _mid(dim_in, dim_out, kernel[0], kernel[1])
    return _spatial_temporal(dim_in, mid, dim_out, kernel, stride, norm, act, bias)


@CONV_UNITS.register("separable")
def _separable(
    *,
    dim_in: int,
    dim_out: int,
    kernel: Triple,
    stride: Triple,
    mid_width: int | None,
    norm: str,
    act: str,
    bias: bool,
) -> nn.Module:
    return _spatial_temporal(dim_in, dim_out, dim_out, kernel, stride, norm, act, bias)


@CONV_UNITS.register("dw_temporal")
def _dw_temporal(
    *,
    dim_in: int,
    dim_out: int,
    kernel: Triple,
    stride: Triple,
    mid_width: int | None,
    norm: str,
    act: str,
    bias: bool,
) -> nn.Module:
    t, h, w = kernel
    return nn.Sequential(
        conv3d(dim_in, dim_out, (1, h, w), (1, stride[1], stride[2]), bias=bias),
        conv3d(dim_out, dim_out, (t, 1, 1), (stride[0], 1, 1), groups=dim_out, bias=bias),
        create_norm(norm, dim_out),
        create_act(act),
    )


@CONV_UNITS.register("parallel")
def _parallel(
    *,
    dim_in: int,
    dim_out: int,
    kernel: Triple,
    stride: Triple,
    mid_width: int | None,
    norm: str,
    act: str,
    bias: bool,
) -> nn.Module:
    t, h, w = kernel
    # NOTE: both convs take the whole stride, so that their outputs line up: a kernel of 1
    # with stride s keeps ceil(n / s) of n, as a 'same'-padded kernel k does.
    return nn.Sequential(
        ParallelSum(
            conv3d(dim_in, dim_out, (t, 1, 1), stride, bias=bias),
            conv3d(dim_in, dim_out, (1, h, w), stride, bias=bias),
        ),
        create_norm(norm, dim_out),
        create_act(act),
    )


def create_conv_unit(
    factorization: str,
    *,
    dim_in: int,
    dim_out: int,
    kernel: Triple,
    stride: Triple = (1, 1, 1),
    mid_width: int | None = None,
    norm: str = "batch",
    act: str = "relu",
    bias: bool = False,
) -> nn.Module:
    """A (factorised) conv -> norm -> act unit; see the module docstring for the kinds."""
    return CONV_UNITS.get(factorization)(
        dim_in=dim_in,
        dim_out=dim_out,
        kernel=kernel,
        stride=stride,
        mid_width=mid_width,
        norm=norm,
        act=act,
        bias=bias,
    )
