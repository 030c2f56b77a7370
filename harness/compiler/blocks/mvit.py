"""The multiscale ViT block with pooling attention (MViT, Fan et al., ICCV 2021; MViTv2,
Li et al., CVPR 2022)::

    x -> norm -> qkv -> pool q (stage stride), pool k, v (kv_stride) -> attention -> proj --+
    |                                  [+ pooled q: residual pooling, v2]                   |
    +-> [proj, v2] -> max pool (the query stride) --------------------------------------(+)-> y
    y -> norm -> mlp (-> width out) --(+)-> ;  the shortcut is y, or proj(norm(y)) where the
    width grows in the MLP (v1)

Each pool is a depthwise conv over the (T, H, W) token grid followed by a layer norm per
head channel; the class token skips the pooling.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.compiler.blocks._registry import BLOCKS
from harness.compiler.blocks.attention import Mlp, attend, split_heads
from harness.compiler.layers import create_drop_path
from harness.compiler.plan import Grid
from harness.spec.attention import MViTBlockSpec

__all__ = ["MViTBlock", "PoolingAttention", "TokenPool"]

Triple = tuple[int, int, int]


class TokenPool(nn.Module):
    """Pool (B, heads, [1 +] T H W, C) tokens on their grid; the class token passes through."""

    def __init__(self, pool: nn.Module, norm: nn.Module, grid: Triple, cls: bool) -> None:
        super().__init__()
        self.pool = pool
        self.norm = norm
        self.grid = grid
        self.cls = cls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, _, c = x.shape
        cls, x = (x[:, :, :1], x[:, :, 1:]) if self.cls else (None, x)
        x = x.reshape(b * h, *self.grid, c).permute(0, 4, 1, 2, 3)
        x = self.pool(x).flatten(2).transpose(1, 2).reshape(b, h, -1, c)
        if cls is not None:
            x = torch.cat((cls, x), dim=2)
        return self.norm(x)


def _conv_pool(dim: int, kernel: int, stride: Triple, grid: Triple, cls: bool) -> TokenPool:
    pad = kernel // 2
    conv = nn.Conv3d(dim, dim, kernel, stride=stride, padding=pad, groups=dim, bias=False)
    return TokenPool(conv, nn.LayerNorm(dim, eps=1e-6), grid, cls)


class PoolingAttention(nn.Module):
    """Multi-head attention whose queries and keys/values are pooled on the token grid."""

    def __init__(
        self,
        spec: MViTBlockSpec,
        dim_in: int,
        dim: int,
        grid: Triple,
        q_stride: Triple,
        cls: bool,
    ) -> None:
        super().__init__()
        self.heads = spec.heads
        head_dim = dim // spec.heads
        self.qkv = nn.Linear(dim_in, 3 * dim, bias=spec.qkv_bias)
        self.proj = nn.Linear(dim, dim)
        pool_q = q_stride != (1, 1, 1) or spec.q_pool == "always"
        self.pool_q = (
            _conv_pool(head_dim, spec.kernel_q, q_stride, grid, cls) if pool_q else nn.Identity()
        )
        self.pool_k = _conv_pool(head_dim, spec.kernel_kv, spec.kv_stride, grid, cls)
        self.pool_v = _conv_pool(head_dim, spec.kernel_kv, spec.kv_stride, grid, cls)
        self.residual_pool = spec.residual_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = split_heads(self.qkv(x), self.heads).unbind(0)
        q, k, v = self.pool_q(q), self.pool_k(k), self.pool_v(v)
        out = attend(q, k, v)
        if self.residual_pool:
            out = out + q
        return self.proj(out.transpose(1, 2).flatten(2))


class MViTBlock(nn.Module):
    def __init__(
        self,
        attn: PoolingAttention,
        *,
        dim_in: int,
        dim_attn: int,
        dim_out: int,
        mlp_ratio: float,
        skip: nn.Module,
        early_proj: bool,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.drop_path = create_drop_path(drop_path)
        self.norm1 = nn.LayerNorm(dim_in, eps=1e-6)
        self.attn = attn
        self.skip = skip
        self.norm2 = nn.LayerNorm(dim_attn, eps=1e-6)
        self.mlp = Mlp(dim_attn, int(dim_attn * mlp_ratio), dim_out)
        changes = dim_in != dim_out
        self.early_proj = nn.Linear(dim_in, dim_out) if changes and early_proj else None
        self.late_proj = nn.Linear(dim_attn, dim_out) if changes and not early_proj else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_norm = self.norm1(x)
        shortcut = self.early_proj(x_norm) if self.early_proj is not None else x
        x = self.skip(shortcut.unsqueeze(1)).squeeze(1) + self.drop_path(self.attn(x_norm))
        x_norm = self.norm2(x)
        shortcut = self.late_proj(x_norm) if self.late_proj is not None else x
        return shortcut + self.drop_path(self.mlp(x_norm))


@BLOCKS.register("mvit")
def create_mvit_block(
    spec: MViTBlockSpec,
    *,
    dim_in: int,
    dim_out: int,
    dim_inner: int | None,
    stride: tuple[int, int],
    index: int,
    grid: Grid | None = None,
) -> nn.Module:
    assert grid is not None, "the compiler passes the grid"
    q_stride = (stride[0], stride[1], stride[1])
    cls = grid.tokens == "cls"
    early = spec.dim_change == "attention"
    dim_attn = dim_out if early else dim_in
    attn = PoolingAttention(spec, dim_in, dim_attn, grid.extent, q_stride, cls)
    skip: nn.Module = nn.Identity()
    if q_stride != (1, 1, 1):
        kernel = tuple(s + 1 if s > 1 else s for s in q_stride)
        pool = nn.MaxPool3d(kernel, q_stride, tuple(k // 2 for k in kernel))
        skip = TokenPool(pool, nn.Identity(), grid.extent, cls)
    return MViTBlock(
        attn,
        dim_in=dim_in,
        dim_attn=dim_attn,
        dim_out=dim_out,
        mlp_ratio=spec.mlp_ratio,
        skip=skip,
        early_proj=early,
        drop_path=spec.drop_path,
    )
