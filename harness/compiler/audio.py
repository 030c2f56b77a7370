"""Audio pathways and audio-visual fusions (AVSlowFast; Xiao et al., 2020).

An audio pathway reads a ``(B, C, time, mels)`` spectrogram as a ``(B, C, time, 1, mels)``
map and is built by the same stem and block builders as a video pathway; then
:func:`collapse_height` makes every convolution and pool of it 1 x 1 x 0 (kernel, stride,
padding) along the height axis, so that a ``t x k x k`` kernel reads ``t`` frames and ``k``
frequency bands, and parameters and multiply-adds are those of the 2D (time x frequency)
network.

Fusions registered here (the lateral and combine registries of
:mod:`harness.compiler.pathways`, keyed by the YAML ``type``)::

    pooled_time_conv  source -> mean over H, W -> [k x 1 x 1 conv, norm, act] x n, the last
                      with temporal stride alpha -> broadcast over the target's H x W;
                      then the spec's sum or concat                (AVSlowFast's A -> V)
    cross_attention   target tokens (T H W) attend to source tokens (T, or T H W); the
                      projected result is added to the target             (residual)
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from harness.compiler.blocks.attention import attend
from harness.compiler.layers import ConvNormAct
from harness.compiler.pathways import COMBINES, LATERALS
from harness.compiler.plan import LateralPlan

__all__ = ["CrossAttention", "PooledTimeConv", "SourceTokens", "collapse_height"]

_HEIGHT = 1  # index of the height axis in a 3D kernel, stride or padding


def _flat(value: tuple[int, ...], height: int) -> tuple[int, int, int]:
    return (value[0], height, value[2])


def _collapse_conv(conv: nn.Conv3d) -> None:
    """``conv`` with a height kernel of 1 (new, uninitialised weights if it changed)."""
    weight = conv.weight
    if weight.shape[2 + _HEIGHT] != 1:
        shape = (*weight.shape[:3], 1, weight.shape[4])
        conv.weight = nn.Parameter(
            torch.empty(shape, dtype=weight.dtype, device=weight.device),
            requires_grad=weight.requires_grad,
        )
    conv.kernel_size = _flat(conv.kernel_size, 1)
    conv.stride = _flat(conv.stride, 1)
    conv.dilation = _flat(conv.dilation, 1)
    if not isinstance(conv.padding, str):
        conv.padding = _flat(conv.padding, 0)
        conv._reversed_padding_repeated_twice = [
            p for p in reversed(conv.padding) for _ in range(2)
        ]


def _triple(value: int | tuple[int, ...]) -> tuple[int, ...]:
    return (value,) * 3 if isinstance(value, int) else tuple(value)


def _collapse_pool(pool: nn.MaxPool3d | nn.AvgPool3d) -> None:
    pool.kernel_size = _flat(_triple(pool.kernel_size), 1)
    pool.stride = _flat(_triple(pool.stride), 1)
    pool.padding = _flat(_triple(pool.padding), 0)
    if isinstance(pool, nn.MaxPool3d):
        pool.dilation = _flat(_triple(pool.dilation), 1)


def collapse_height(module: nn.Module) -> nn.Module:
    """Make every conv and pool of ``module`` leave the height axis alone (in place).

    Kernels, strides and paddings along height become 1, 1 and 0; a conv's weight loses
    its height rows (it is initialised after the build). Returns ``module``.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Conv3d):
            _collapse_conv(layer)
        elif isinstance(layer, nn.MaxPool3d | nn.AvgPool3d):
            _collapse_pool(layer)
    return module


class PooledTimeConv(nn.Module):
    """(B, C, T, H, W) -> mean over H, W -> k x 1 x 1 convs -> (B, C', T / alpha, 1, 1)."""

    def __init__(self, convs: list[nn.Module]) -> None:
        super().__init__()
        self.convs = nn.Sequential(*convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x.mean(dim=(3, 4), keepdim=True))


@LATERALS.register("pooled_time_conv")
def create_pooled_time_conv(plan: LateralPlan) -> nn.Module:
    """AVSlowFast's audio -> visual lateral: ``convs`` convs, the last strided by alpha."""
    spec = plan.spec
    k = spec.kernel  # type: ignore[attr-defined]
    count = spec.convs  # type: ignore[attr-defined]
    mid = spec.mid_channels(plan.dim_in)  # type: ignore[attr-defined]
    widths = [plan.dim_in, *[mid] * (count - 1), plan.dim_out]
    convs = [
        ConvNormAct(a, b, (k, 1, 1), (plan.ratio if i == count - 1 else 1, 1, 1))
        for i, (a, b) in enumerate(itertools.pairwise(widths))
    ]
    # NOTE: the lateral starts adding nothing, as a residual branch starts as the identity:
    # a unit-scale audio term swamps the video pathway from the first step, and it learns
    # little motion (tiny_av on synthetic-av:tiny, 4 epochs: top-1 0.78, against 0.91).
    convs[-1].norm.zero_init = True  # type: ignore[assignment]
    return PooledTimeConv(list(convs))


class SourceTokens(nn.Module):
    """The source map the keys and values come from: averaged over H, W, or as it is."""

    def __init__(self, pool: bool) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(3, 4), keepdim=True) if self.pool else x


def _norm(kind: str, dim: int) -> nn.Module:
    return nn.LayerNorm(dim) if kind == "layer" else nn.Identity()


class CrossAttention(nn.Module):
    """target + proj(attention(q(target), k(source), v(source))), over map locations.

    Target (B, Ct, T, H, W) gives T H W queries; the source (B, Cs, T', H', W') gives
    T' H' W' keys and values; multi-head scaled dot-product attention at ``width``.
    """

    def __init__(
        self, *, dim_target: int, dim_source: int, width: int, heads: int, norm: str
    ) -> None:
        super().__init__()
        self.heads = heads
        self.norm_q = _norm(norm, dim_target)
        self.norm_kv = _norm(norm, dim_source)
        self.q = nn.Linear(dim_target, width)
        self.kv = nn.Linear(dim_source, 2 * width)
        self.proj = nn.Linear(width, dim_target)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = target.shape
        queries = target.flatten(2).transpose(1, 2)  # (B, T H W, Ct)
        keys = source.flatten(2).transpose(1, 2)  # (B, T' H' W', Cs)
        q = self._split(self.q(self.norm_q(queries)))
        k, v = self._split(self.kv(self.norm_kv(keys))).chunk(2, dim=-1)
        out = self.proj(attend(q, k.contiguous(), v.contiguous()).transpose(1, 2).flatten(2))
        return target + out.transpose(1, 2).reshape(b, c, t, h, w)


@LATERALS.register("cross_attention")
def create_source_tokens(plan: LateralPlan) -> nn.Module:
    return SourceTokens(plan.spec.keys == "time")  # type: ignore[attr-defined]


@COMBINES.register("cross_attention")
def create_cross_attention(plan: LateralPlan) -> nn.Module:
    spec = plan.spec
    return CrossAttention(
        dim_target=plan.dim_target,
        dim_source=plan.dim_in,
        width=spec.width,  # type: ignore[attr-defined]
        heads=spec.heads,  # type: ignore[attr-defined]
        norm=spec.norm,  # type: ignore[attr-defined]
    )
