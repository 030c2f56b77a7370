"""Transformer blocks with space-time attention scopes (ViT, TimeSformer, ViViT).

Attention runs through ``torch.nn.functional.scaled_dot_product_attention``, so PyTorch
picks its flash / memory-efficient kernels where it can. A scope says which tokens attend
to which (see :class:`~harness.compiler.tokens.TokenGrid` for the layouts)::

    joint                   all tokens together                (ViViT 1, TimeSformer joint)
    space                   within each frame; a clip class token joins every frame and
                            takes the mean of its per-frame outputs         (TimeSformer)
    time                    each location across frames; a clip class token is left alone
    factorized_dot_product  half the heads in space, half in time            (ViViT 4)

Divided attention (Bertasius et al., ICML 2021) is ``attention: [time, space]`` with
``time_proj``; factorised self-attention (ViViT model 3, Arnab et al., ICCV 2021) is
``[space, time]``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import get_num_threads, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from harness.compiler.blocks._registry import BLOCKS
from harness.compiler.layers import create_drop_path
from harness.compiler.plan import Grid
from harness.compiler.tokens import TokenGrid, create_positions
from harness.errors import SpecError
from harness.registry import Registry
from harness.spec.attention import FrameTokensBlockSpec, TransformerBlockSpec

__all__ = ["SCOPES", "Attention", "Mlp", "TransformerBlock", "attend"]

SCOPES: Registry[Callable[..., nn.Module]] = Registry("attention")


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over (B, heads, N, d) tensors, by PyTorch's fused kernels."""
    if q.requires_grad and q.device.type == "cpu" and q.shape[0] * q.shape[1] < get_num_threads():
        # NOTE: the CPU flash kernel spreads its backward over batch x heads; with fewer of
        # those than threads (MViT's one-head first stage) the math kernel is faster.
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v)
    return F.scaled_dot_product_attention(q, k, v)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, N, 3 D) -> (3, B, heads, N, D / heads)."""
    b, n, three_d = x.shape
    return x.reshape(b, n, 3, heads, three_d // (3 * heads)).permute(2, 0, 3, 1, 4)


class Attention(nn.Module):
    """Multi-head self-attention over (B, N, D): qkv -> scaled dot-product -> proj."""

    def __init__(self, dim: int, heads: int, *, qkv_bias: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = split_heads(self.qkv(x), self.heads).unbind(0)
        out = attend(q, k, v).transpose(1, 2).flatten(2)
        return self.proj(out)


class Mlp(nn.Sequential):
    """linear -> GELU -> linear."""

    def __init__(self, dim: int, hidden: int, dim_out: int | None = None) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim_out or dim))


class JointScope(nn.Module):
    def __init__(self, attn: nn.Module, grid: TokenGrid, post: nn.Module) -> None:
        super().__init__()
        self.attn = attn
        self.post = post

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post(self.attn(x))


class SpaceScope(JointScope):
    """Attention within each frame."""

    def __init__(self, attn: nn.Module, grid: TokenGrid, post: nn.Module) -> None:
        super().__init__(attn, grid, post)
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls, frames = self.grid.split(x)
        b, t, _, d = frames.shape
        if cls is not None:  # the clip's class token joins every frame
            frames = torch.cat((cls.expand(b, t, d).unsqueeze(2), frames), dim=2)
        out = self.post(self.attn(frames.reshape(b * t, -1, d))).reshape(b, t, -1, d)
        if cls is None:
            return self.grid.merge(None, out)
        return self.grid.merge(out[:, :, 0].mean(1, keepdim=True), out[:, :, 1:])


class TimeScope(SpaceScope):
    """Attention across frames at each location; a clip class token gets no update."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls, frames = self.grid.split(x)
        b, t, n, d = frames.shape
        seq = frames.transpose(1, 2).reshape(b * n, t, d)
        out = self.post(self.attn(seq)).reshape(b, n, t, d).transpose(1, 2)
        return self.grid.merge(None if cls is None else torch.zeros_like(cls), out)


class FactorizedDotProduct(nn.Module):
    """ViViT model 4: one qkv; half the heads attend in space, the other half in time."""

    def __init__(self, attn: Attention, grid: TokenGrid, post: nn.Module) -> None:
        super().__init__()
        self.attn = attn
        self.grid = grid
        self.post = post

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        t, loc, h = self.grid.frames, self.grid.locations, self.attn.heads
        q, k, v = split_heads(self.attn.qkv(x), h).unbind(0)  # (B, h, N, d_h)
        half = h // 2

        def space(z: torch.Tensor) -> torch.Tensor:  # (B, h', T L, d) -> (B h' T, L, d)
            return z.reshape(-1, loc, z.shape[-1])

        def time(z: torch.Tensor) -> torch.Tensor:  # -> (B h' L, T, d)
            return z.reshape(b, -1, t, loc, z.shape[-1]).transpose(2, 3).reshape(-1, t, z.shape[-1])

        s = attend(space(q[:, :half]), space(k[:, :half]), space(v[:, :half]))
        s = s.reshape(b, half, n, -1)
        tt = attend(time(q[:, half:]), time(k[:, half:]), time(v[:, half:]))
        tt = tt.reshape(b, h - half, loc, t, -1).transpose(2, 3).reshape(b, h - half, n, -1)
        out = torch.cat((s, tt), dim=1).transpose(1, 2).flatten(2)
        return self.post(self.attn.proj(out))


SCOPES.register("joint")(JointScope)
SCOPES.register("space")(SpaceScope)
SCOPES.register("time")(TimeScope)
SCOPES.register("factorized_dot_product")(FactorizedDotProduct)


class Residual(nn.Module):
    """x + drop_path(scope(norm(x)))."""

    def __init__(self, dim: int, scope: nn.Module, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.scope = scope
        self.drop_path = create_drop_path(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.scope(self.norm(x)))


class TransformerBlock(nn.Module):
    """Attention sub-layers, each x + scope(norm(x)), then x + mlp(norm(x)) (each branch
    dropped by stochastic depth while training, when its rate is above zero)."""

    def __init__(
        self, layers: list[nn.Module], dim: int, hidden: int, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)
        self.drop_path = create_drop_path(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(x)
        return x + self.drop_path(self.mlp(self.norm(x)))


@BLOCKS.register("transformer")
def create_transformer_block(
    spec: TransformerBlockSpec,
    *,
    dim_in: int,
    dim_out: int,
    dim_inner: int | None,
    stride: tuple[int, int],
    index: int,
    grid: Grid | None = None,
) -> nn.Module:
    assert grid is not None, "the compiler passes the grid"
    tokens = TokenGrid.from_grid(grid)
    layers: list[nn.Module] = []
    for i, scope in enumerate(spec.attention):
        if scope == "factorized_dot_product" and (tokens.global_cls or spec.heads < 2):
            raise SpecError(
                "factorized_dot_product needs 2+ heads and no clip class token",
                path=("attention", i),
            )
        post = nn.Linear(dim_in, dim_in) if spec.time_proj and scope == "time" else nn.Identity()
        attn = Attention(dim_in, spec.heads, qkv_bias=spec.qkv_bias)
        layers.append(Residual(dim_in, SCOPES.get(scope)(attn, tokens, post), spec.drop_path))
    return TransformerBlock(layers, dim_in, int(dim_in * spec.mlp_ratio), spec.drop_path)


class FrameTokens(nn.Module):
    """(B, N, D) -> (B, [1 +] T, D): one token per frame, positions over time, clip token."""

    def __init__(
        self, spec: FrameTokensBlockSpec, dim: int, grid: TokenGrid, declared: int
    ) -> None:
        super().__init__()
        self.grid = grid
        self.norm = nn.LayerNorm(dim, eps=1e-6) if spec.norm else nn.Identity()
        self.pool = spec.pool
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if spec.cls_token else None
        self.pos = create_positions(
            spec.pos_embed,
            layout="joint",
            dim=dim,
            grid=(grid.frames, 1, 1),
            declared=(declared, 1, 1),
            cls=spec.cls_token,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, frames = self.grid.split(self.norm(x))
        x = (
            frames[:, :, 0]
            if self.pool == "cls"
            else frames[:, :, int(self.grid.frame_cls) :].mean(2)
        )
        cls: torch.Tensor | None = self.cls
        if self.pos is not None:
            pos, cls_pos = self.pos()
            x = x + pos
            if cls is not None and cls_pos is not None:
                cls = cls + cls_pos
        return x if cls is None else torch.cat((cls.expand(x.shape[0], -1, -1), x), dim=1)


@BLOCKS.register("frame_tokens")
def create_frame_tokens_block(
    spec: FrameTokensBlockSpec,
    *,
    dim_in: int,
    dim_out: int,
    dim_inner: int | None,
    stride: tuple[int, int],
    index: int,
    grid: Grid | None = None,
) -> nn.Module:
    assert grid is not None and grid.declared is not None, "the compiler passes the grid"
    return FrameTokens(spec, dim_in, TokenGrid.from_grid(grid), grid.declared[0])
