"""Token machinery of video transformers: patch stems, positional encodings, token heads.

Tokens flow as ``(B, N, D)``. The patch grid is T x H x W; class tokens are none
(``patches``), one before the grid (``cls``) or one before every frame (``frame_cls``, so a
frame is ``1 + H W`` tokens). :class:`TokenGrid` splits a sequence into frames x locations
and back, which is all the attention scopes need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.compiler.heads import HEADS
from harness.compiler.plan import Grid
from harness.compiler.stems import STEMS
from harness.errors import SpecError
from harness.registry import Registry
from harness.spec.attention import PatchStemSpec, TokenHeadSpec

__all__ = ["POSITIONS", "PatchEmbed", "TokenGrid", "TokenHead", "create_positions"]

Extent = tuple[int, int, int]
POSITIONS: Registry[type[nn.Module]] = Registry("positional encoding")


@dataclass(frozen=True)
class TokenGrid:
    """A token sequence seen as frames x locations, plus an optional leading class token."""

    frames: int
    locations: int  # tokens per frame: H W, or 1 + H W with a class token per frame
    global_cls: bool  # one class token before everything
    frame_cls: bool  # the first location of every frame is that frame's class token

    @classmethod
    def from_grid(cls, grid: Grid) -> TokenGrid:
        frame_cls = grid.tokens == "frame_cls"
        locations = grid.height * grid.width + frame_cls
        return cls(grid.frames, locations, grid.tokens == "cls", frame_cls)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(B, N, D) -> class token (B, 1, D) or None, and frames (B, T, L, D)."""
        cls = x[:, :1] if self.global_cls else None
        body = x[:, 1:] if self.global_cls else x
        return cls, body.reshape(x.shape[0], self.frames, self.locations, x.shape[-1])

    def merge(self, cls: torch.Tensor | None, frames: torch.Tensor) -> torch.Tensor:
        body = frames.flatten(1, 2)
        return body if cls is None else torch.cat((cls, body), dim=1)


def _sinusoid(positions: int, dim: int) -> torch.Tensor:
    """(positions, dim) sine/cosine table (Vaswani et al. 2017)."""
    index = torch.arange(positions, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(positions, dim)
    table[:, 0::2] = torch.sin(index * freq)
    table[:, 1::2] = torch.cos(index * freq[: dim // 2])
    return table


# Axes of the tables each layout adds up: joint (T, H, W), separable (1, H, W) + (T, 1, 1),
# space (1, H, W) shared by every frame.
_TABLES = {
    "joint": lambda t, h, w: {"joint": (t, h, w)},
    "separable": lambda t, h, w: {"space": (1, h, w), "time": (t, 1, 1)},
    "space": lambda t, h, w: {"space": (1, h, w)},
}


@POSITIONS.register("learned")
class LearnedPositions(nn.Module):
    """Learned tables sized for the spec's own clip (``declared``), resampled to ``grid``.

    Returns the (1, T H W, D) encoding of the patches and the class token's (or None).
    """

    def __init__(self, layout: str, dim: int, grid: Extent, declared: Extent, cls: bool) -> None:
        super().__init__()
        self.grid = grid
        shapes = _TABLES[layout](*declared)
        self.tables = nn.ParameterDict(
            {k: nn.Parameter(torch.zeros(1, dim, *s)) for k, s in shapes.items()}
        )
        for table in self.tables.values():
            nn.init.trunc_normal_(table, std=0.02)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim)) if cls else None

    def _resized(self, table: torch.Tensor) -> torch.Tensor:
        size = tuple(g if n > 1 else 1 for g, n in zip(self.grid, table.shape[2:], strict=True))
        if tuple(table.shape[2:]) == size:
            return table
        # NOTE: the built clip differs from the declared one: interpolate (ViT practice).
        return F.interpolate(table, size=size, mode="trilinear", align_corners=False)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        tables = [self._resized(t) for t in self.tables.values()]
        total = tables[0] if len(tables) == 1 else tables[0] + tables[1]
        return total.expand(-1, -1, *self.grid).flatten(2).transpose(1, 2), self.cls


@POSITIONS.register("sinusoidal")
class SinusoidalPositions(nn.Module):
    """Fixed sine/cosine encodings computed for the built grid (no parameters)."""

    def __init__(self, layout: str, dim: int, grid: Extent, declared: Extent, cls: bool) -> None:
        super().__init__()
        t, h, w = grid
        tables = []
        for axes in _TABLES[layout](t, h, w).values():
            table = _sinusoid(axes[0] * axes[1] * axes[2], dim).T.reshape(1, dim, *axes)
            tables.append(table.expand(1, dim, t, h, w))
        table = sum(tables[1:], tables[0]).flatten(2).transpose(1, 2)
        self.register_buffer("table", table.contiguous(), persistent=False)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.get_buffer("table"), None


def create_positions(kind: str, **kwargs: object) -> nn.Module | None:
    """Positional encoding ``kind`` (``none``: no module)."""
    if kind == "none":
        return None
    return POSITIONS.get(kind)(**kwargs)


class PatchEmbed(nn.Module):
    """conv (stride = patch) -> (B, T H W, D) tokens + positions -> class tokens prepended."""

    def __init__(self, spec: PatchStemSpec, dim_in: int, grid: Extent, declared: Extent) -> None:
        super().__init__()
        kernel = spec.kernel or spec.patch
        padding = (kernel[0] // 2, kernel[1] // 2, kernel[2] // 2) if spec.kernel else (0, 0, 0)
        self.proj = nn.Conv3d(
            dim_in, spec.width, kernel, stride=spec.patch, padding=padding, bias=spec.bias
        )
        self.cls_mode = spec.cls_token
        self.cls = None if spec.cls_token == "none" else nn.Parameter(torch.zeros(1, 1, spec.width))
        if self.cls is not None:
            nn.init.trunc_normal_(self.cls, std=0.02)
        self.pos = create_positions(
            spec.pos_embed,
            layout=spec.pos_layout,
            dim=spec.width,
            grid=grid,
            declared=declared,
            cls=spec.cls_token != "none",
        )
        self.frames = grid[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)  # (B, T H W, D)
        cls: torch.Tensor | None = self.cls
        if self.pos is not None:
            pos, cls_pos = self.pos()
            x = x + pos
            if cls is not None and cls_pos is not None:
                cls = cls + cls_pos
        if cls is None:
            return x
        b, n, d = x.shape
        if self.cls_mode == "global":
            return torch.cat((cls.expand(b, -1, -1), x), dim=1)
        frames = x.reshape(b, self.frames, n // self.frames, d)
        cls = cls.expand(b, self.frames, d).unsqueeze(2)
        return torch.cat((cls, frames), dim=2).flatten(1, 2)


@STEMS.register("patch")
def create_patch_stem(spec: PatchStemSpec, *, dim_in: int, grid: Grid | None = None) -> nn.Module:
    assert grid is not None and grid.declared is not None, "the compiler passes the grid"
    return PatchEmbed(spec, dim_in, grid.extent, grid.declared)


class TokenHead(nn.Module):
    """norm -> class token (or mean of the patch tokens) -> dropout -> linear."""

    def __init__(self, spec: TokenHeadSpec, dim: int, grid: TokenGrid, classes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim) if spec.norm else nn.Identity()
        self.grid = grid
        self.pool = spec.pool
        self.dropout = nn.Dropout(spec.dropout) if spec.dropout else nn.Identity()
        self.fc = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls, frames = self.grid.split(self.norm(x))
        if self.pool == "cls":
            x = cls[:, 0] if cls is not None else frames[:, :, 0].mean(1)
        else:
            x = frames[:, :, int(self.grid.frame_cls) :].mean(dim=(1, 2))
        return self.fc(self.dropout(x))


@HEADS.register("tokens")
def create_token_head(
    spec: TokenHeadSpec,
    *,
    dim_in: int,
    extent: tuple[int, int, int],
    classes: int,
    tokens: str = "map",
) -> nn.Module:
    if tokens == "map":
        raise SpecError("head type 'tokens' reads tokens: the stem must be a patch stem")
    if spec.pool == "cls" and tokens == "patches":
        raise SpecError("pool 'cls' needs a class token (stem cls_token: global or frame)")
    grid = TokenGrid.from_grid(Grid(*extent, tokens))
    return TokenHead(spec, dim_in, grid, classes)
