"""Token selection inside a transformer stage: keep the relevant patches, or merge frames.

A stage's ``token_selection`` (:class:`~harness.spec.attention.TokenSelectionSpec`) runs
between two of its blocks; the compiler's plan hands the smaller grid to the blocks after
it, to later stages and to the head, so FLOPs and memory follow the reduced token counts
layer by layer. Class tokens are always kept. Two methods, one registered builder each::

    topk    (B, [1] + T L, D) -> (B, [1] + T k', D)    k' = k (+ 1 with per-frame class tokens)
            score every patch token, one score per location (frames weighed, see below),
            keep the top k locations in their original order, in every frame
    merge   (B, [1] + T L, D) -> (B, [1] + T' L, D)
            while more than T' frames: average the most similar pair of adjacent frames

``topk`` keeps the same locations in every frame (a tube per location), so the token grid
stays T x k and every attention scope (joint, space, time, divided, factorised) applies
after it. The choice itself (``topk``) has no gradient; the score head learns through a
straight-through gate: a kept token is multiplied by ``(g - g.detach()) + 1`` with
``g = sigmoid(score)``, exactly 1 in the forward pass (``g - g`` is exactly 0), so the
values are those of plain gathering, while the gradient reaches the score as if the tokens
were scaled by ``g`` (the soft gate of DynamicViT-style selection, without its change of
values).

``merge`` is ToMe's token merging (Bolya et al., ICLR 2023) turned to time, one pair at a
time: the frames' mean tokens are compared by cosine similarity, and the most similar
adjacent pair of each clip is replaced by its size-weighted mean (a merged frame remembers
how many frames it holds), until T' = round(keep_ratio T) are left. Clips may merge
different pairs; shapes are the same for all. The average is differentiable; which pair is
merged is not. The blocks after it see plain averages (ToMe's proportional attention is not
applied).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from harness.compiler.plan import Grid
from harness.compiler.tokens import TokenGrid
from harness.registry import Registry
from harness.spec.attention import RelevanceScoreSpec, TokenSelectionSpec

__all__ = [
    "SCORE_HEADS",
    "SELECTIONS",
    "FrameMerge",
    "RelevanceScore",
    "TopKSelection",
    "create_token_selection",
    "frame_weights",
    "list_score_heads",
    "list_selections",
    "temporal_change",
]

SCORE_HEADS: Registry[Callable[..., nn.Module]] = Registry("relevance score")
SELECTIONS: Registry[Callable[..., nn.Module]] = Registry("token selection")


@SCORE_HEADS.register("linear")
def create_linear_score(*, dim: int) -> nn.Module:
    """norm -> linear D -> 1."""
    return nn.Sequential(nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, 1))


@SCORE_HEADS.register("mlp")
def create_mlp_score(*, dim: int) -> nn.Module:
    """norm -> linear D -> D/4 -> GELU -> linear D/4 -> 1."""
    hidden = max(1, dim // 4)
    return nn.Sequential(
        nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1)
    )


def list_score_heads() -> list[str]:
    """The names a relevance score's ``type`` may take."""
    return SCORE_HEADS.names()


def list_selections() -> list[str]:
    """The names a token selection's ``method`` may take."""
    return SELECTIONS.names()


def frame_weights(frames: int, recency: float) -> list[float]:
    """The weight of each frame's score in a location's score: ``w_t ~ exp(-recency
    (T - 1 - t))``, summing to 1 (recency 0: the mean over frames)."""
    recent = [math.exp(-recency * (frames - 1 - t)) for t in range(frames)]
    total = sum(recent)
    return [w / total for w in recent]


def temporal_change(patches: torch.Tensor, window: int) -> torch.Tensor:
    """(B, T, P, D) tokens minus the mean of the ``window`` frames centred on each (those
    in the clip) at the same location: how much a location changes around a frame."""
    half = window // 2
    frames = patches.shape[1]
    padded = F.pad(patches, (0, 0, 0, 0, half, half))  # zeros before and after the clip
    sums = padded.unfold(1, window, 1).sum(-1)  # (B, T, P, D)
    counts = [min(frames, t + half + 1) - max(0, t - half) for t in range(frames)]
    inside = torch.tensor(counts, dtype=patches.dtype, device=patches.device)
    return patches - sums / inside[None, :, None, None]


class RelevanceScore(nn.Module):
    """(B, T, P, D) patch tokens -> (B, P): a score per token, then frames weighed.

    With a ``window`` above 1 the head reads each token beside its temporal change
    (:func:`temporal_change`), ``2 D`` values, so that what moves can score differently
    from what stays; with a window of 1, the token alone.
    """

    def __init__(self, spec: RelevanceScoreSpec, dim: int, frames: int) -> None:
        super().__init__()
        self.window = spec.window
        self.head = SCORE_HEADS.get(spec.type)(dim=dim if spec.window == 1 else 2 * dim)
        weights = torch.tensor(frame_weights(frames, spec.recency))
        self.register_buffer("weights", weights[:, None], persistent=False)  # (T, 1)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        if self.window > 1:
            patches = torch.cat((patches, temporal_change(patches, self.window)), dim=-1)
        scores = self.head(patches).squeeze(-1)  # (B, T, P)
        return (scores * self.get_buffer("weights")).sum(1)


class TopKSelection(nn.Module):
    """Keep the ``keep`` most relevant patch locations of every frame (see the module)."""

    def __init__(
        self, spec: RelevanceScoreSpec, dim: int, grid: TokenGrid, out: TokenGrid, keep: int
    ) -> None:
        super().__init__()
        self.grid = grid
        self.out = out
        self.keep = keep
        self.lead = int(grid.frame_cls)  # per-frame class tokens come first in a frame
        self.score = RelevanceScore(spec, dim, grid.frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls, frames = self.grid.split(x)
        patches = frames[:, :, self.lead :]  # (B, T, P, D)
        b, t, _, d = patches.shape
        score = self.score(patches)  # (B, P)
        index = score.topk(self.keep, dim=1).indices.sort(dim=1).values  # (B, k), in order
        kept = patches.gather(2, index[:, None, :, None].expand(b, t, self.keep, d))
        gate = torch.sigmoid(score.gather(1, index))
        # NOTE: straight through: exactly 1 forward, d/dscore = sigmoid' backward.
        kept = kept * ((gate - gate.detach()) + 1)[:, None, :, None]
        if self.lead:
            kept = torch.cat((frames[:, :, : self.lead], kept), dim=2)
        return self.out.merge(cls, kept)


class FrameMerge(nn.Module):
    """Average the most similar adjacent frames until ``frames_out`` are left."""

    def __init__(self, grid: TokenGrid, out: TokenGrid) -> None:
        super().__init__()
        self.grid = grid
        self.out = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls, frames = self.grid.split(x)  # (B, T, L, D)
        b, t = frames.shape[:2]
        # Sums of the tokens of the frames each holds, and how many frames that is.
        total, sizes = frames, torch.ones(b, t, dtype=x.dtype, device=x.device)
        for count in range(t, self.out.frames, -1):
            total, sizes = _merge_closest(total, sizes, count)
        return self.out.merge(cls, total / sizes[:, :, None, None])


def _merge_closest(
    total: torch.Tensor, sizes: torch.Tensor, count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One merge: the adjacent pair of frames whose mean tokens have the highest cosine."""
    mean = F.normalize(total.mean(2) / sizes[:, :, None], dim=-1)  # (B, count, D)
    pair = (mean[:, :-1] * mean[:, 1:]).sum(-1).argmax(1, keepdim=True)  # (B, 1)
    # Frame u goes to u - 1 if it follows the pair's first frame (u > pair), else stays.
    position = torch.arange(count, device=total.device)[None]
    target = position - (position > pair).long()  # (B, count)
    b, _, n, d = total.shape
    merged = total.new_zeros(b, count - 1, n, d)
    merged = merged.scatter_add(1, target[:, :, None, None].expand(b, count, n, d), total)
    return merged, sizes.new_zeros(b, count - 1).scatter_add(1, target, sizes)


@SELECTIONS.register("topk")
def create_topk_selection(
    spec: TokenSelectionSpec, *, dim: int, grid: Grid, grid_out: Grid
) -> nn.Module:
    assert spec.score is not None, "the spec gives topk a score"
    out = TokenGrid.from_grid(grid_out)
    keep = grid_out.height * grid_out.width
    return TopKSelection(spec.score, dim, TokenGrid.from_grid(grid), out, keep)


@SELECTIONS.register("merge")
def create_frame_merge(
    spec: TokenSelectionSpec, *, dim: int, grid: Grid, grid_out: Grid
) -> nn.Module:
    return FrameMerge(TokenGrid.from_grid(grid), TokenGrid.from_grid(grid_out))


def create_token_selection(
    spec: TokenSelectionSpec, *, dim: int, grid: Grid, grid_out: Grid
) -> nn.Module:
    """The selection module of ``spec.method``, reading ``grid`` and handing on ``grid_out``."""
    return SELECTIONS.get(spec.method)(spec, dim=dim, grid=grid, grid_out=grid_out)
