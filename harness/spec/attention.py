"""Spec nodes of video transformers: patch stems, attention blocks and token heads.

Tokens live on the (T, H, W) grid the patch stem makes, plus class tokens: none, one for
the clip (``global``) or one per frame (``frame``, ViViT's factorised encoder). The
compiler tracks the grid as it tracks a conv feature map, so the same stages, strides and
clip checks apply. Attention types:

    joint                   one softmax over all tokens (ViViT model 1, TimeSformer joint)
    space / time            within each frame / across frames at each location
    [time, space]           divided attention (TimeSformer); [space, time]: ViViT model 3
    factorized_dot_product  half the heads attend in space, half in time (ViViT model 4)
    mvit                    pooling attention with query / key-value strides (MViT)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BeforeValidator, Field, ValidationInfo, WithJsonSchema, field_validator

from harness.spec._types import (
    KernelTriple,
    Node,
    Number,
    OddInt,
    PositiveFloat,
    PositiveInt,
    Triple,
)

__all__ = [
    "AttentionScope",
    "FrameTokensBlockSpec",
    "MViTBlockSpec",
    "PatchStemSpec",
    "RelevanceScoreSpec",
    "TokenHeadSpec",
    "TokenSelectionSpec",
    "TransformerBlockSpec",
    "kept_count",
]

AttentionScope = Literal["joint", "space", "time", "factorized_dot_product"]
PosEmbed = Literal["learned", "sinusoidal", "none"]


class PatchStemSpec(Node):
    """Patch (tubelet) embedding: a conv whose stride is the patch, then tokens.

    Without ``kernel`` the conv's kernel is the patch (non-overlapping tubelets, ViT/ViViT);
    with it, an odd kernel with 'same' padding (MViT's 3x7x7 stride 2x4x4). Positional
    encodings are ``learned`` (sized for the spec's clip and interpolated when the built clip
    differs) or ``sinusoidal``; ``joint`` gives every token its own, ``separable`` adds a
    spatial and a temporal one (TimeSformer, MViT), ``space`` a spatial one shared by frames.
    """

    type: Literal["patch"] = "patch"
    width: PositiveInt  # embedding width D
    patch: Triple  # (t, h, w) stride of the embedding, in frames and pixels
    kernel: KernelTriple | None = None  # overlapping patches; default: kernel = patch
    bias: bool = True  # bias of the embedding conv
    cls_token: Literal["none", "global", "frame"] = "global"  # class tokens added
    pos_embed: PosEmbed = "learned"  # learned, sinusoidal or none
    # joint: one per token; separable: spatial + temporal; space: spatial, shared by frames
    pos_layout: Literal["joint", "separable", "space"] = "separable"


class _TokenBlock(Node):
    uses_inner: ClassVar[bool] = False
    layout: ClassVar[str] = "tokens"  # reads and writes (B, N, C) tokens

    def own_width(self) -> int | None:
        return None

    def period(self) -> int:
        """Blocks after which per-block patterns repeat: token blocks have none."""
        return 1

    def mixes_time(self) -> bool:
        """Whether the block combines frames: attention may, whatever its scope."""
        return True


# Named attention layouts, so that one categorical search parameter can choose among them.
ATTENTION_LAYOUTS: dict[str, tuple[str, ...]] = {
    "divided": ("time", "space"),  # TimeSformer
    "factorized_self": ("space", "time"),  # ViViT model 3
}


def _attention_layout(value: Any) -> Any:
    if isinstance(value, str):
        return ATTENTION_LAYOUTS.get(value, (value,))
    return value


_SCOPES = list(get_args(AttentionScope))
# JSON Schema of the attention field: a list of scopes, or one scope or layout name.
_ATTENTION_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {"enum": [*_SCOPES, *ATTENTION_LAYOUTS]},
            {"type": "array", "items": {"enum": _SCOPES}, "minItems": 1, "maxItems": 4},
        ]
    }
)


class TransformerBlockSpec(_TokenBlock):
    """Pre-norm transformer block (ViT, TimeSformer, ViViT)::

        for scope in attention:  x = x + [proj] attn_scope(norm(x))
        x = x + mlp(norm(x))                      (D -> mlp_ratio D -> D, GELU)

    The block keeps the width: its stage's ``width`` must equal its input width.
    """

    type: Literal["transformer"] = "transformer"
    heads: PositiveInt  # attention heads; must divide the width
    # One residual attention sub-layer per entry, in order: [joint]; [time, space] is
    # TimeSformer's divided attention; [space, time] ViViT's factorised self-attention.
    # A layout name of ATTENTION_LAYOUTS ("divided") or a single scope ("joint") also works.
    attention: Annotated[
        tuple[AttentionScope, ...],
        BeforeValidator(_attention_layout),
        Field(min_length=1, max_length=4),
        _ATTENTION_SCHEMA,
    ] = ("joint",)
    mlp_ratio: PositiveFloat = 4.0  # hidden width of the MLP / width
    qkv_bias: bool = True  # bias of the query, key and value projections
    time_proj: bool = False  # TimeSformer's extra linear layer after temporal attention
    # Stochastic depth (Huang et al. 2016): each residual branch is dropped for a whole
    # clip with this probability while training (and the kept ones scaled by 1 / (1 - p)).
    drop_path: Number = Field(0.0, ge=0, lt=1)

    late_keys: ClassVar[frozenset[str]] = frozenset({"drop_path"})


class FrameTokensBlockSpec(_TokenBlock):
    """One token per frame: the frames' class tokens (or means), then a clip class token.

    The hand-over from ViViT's spatial to its temporal encoder (model 2, factorised encoder):
    norm -> per-frame class token -> [clip class token] + positional encoding over time.
    """

    type: Literal["frame_tokens"] = "frame_tokens"
    pool: Literal["cls", "mean"] = "cls"  # each frame's class token, or the mean of its patches
    norm: bool = True  # layer norm first (the spatial encoder's final norm)
    cls_token: bool = True  # prepend a class token for the clip
    pos_embed: PosEmbed = "learned"  # positional encoding over time


class MViTBlockSpec(_TokenBlock):
    """Multiscale ViT block with pooling attention (Fan et al., ICCV 2021; Li et al. 2022).

    Queries are pooled with the stage's stride (the first block), keys and values with
    ``kv_stride``; each pool is a depthwise ``kernel`` conv plus a layer norm per head. The
    residual is max-pooled alike. The width changes in the MLP (v1, ``dim_change: mlp``) or
    in the attention (v2, ``attention``).
    """

    type: Literal["mvit"] = "mvit"
    heads: PositiveInt  # attention heads; must divide the attention width
    mlp_ratio: PositiveFloat = 4.0  # hidden width of the MLP / its input width
    qkv_bias: bool = True  # bias of the query, key and value projections
    kernel_q: OddInt = 3  # query pooling kernel (each axis)
    kernel_kv: OddInt = 3  # key/value pooling kernel
    kv_stride: Triple = (1, 1, 1)  # key/value pooling stride (t, h, w)
    q_pool: Literal["strided", "always"] = "strided"  # v1: only where strided; v2: always
    dim_change: Literal["mlp", "attention"] = "mlp"  # where the width grows (v1 / v2)
    residual_pool: bool = False  # v2: add the pooled queries to the attention output
    drop_path: Number = Field(0.0, ge=0, lt=1)  # stochastic depth, as in transformer blocks

    late_keys: ClassVar[frozenset[str]] = frozenset({"drop_path"})


class TokenHeadSpec(Node):
    """Layer norm -> class token or mean of the tokens -> dropout -> linear."""

    type: Literal["tokens"] = "tokens"
    pool: Literal["cls", "mean"] = "cls"  # the class token, or the mean of the tokens
    norm: bool = True  # final layer norm
    dropout: Number = Field(0.0, ge=0, lt=1)  # before the linear layer


class RelevanceScoreSpec(Node):
    """A learned relevance score per patch location, for ``token_selection`` ``topk``::

        c[t, p] = token[t, p] - mean of token[u, p], |u - t| <= window // 2 (u in the clip)
        s[t, p] = head(token[t, p] (, c[t, p] when window > 1))
                                               linear: norm -> D (2D) -> 1
                                               mlp:    norm -> D (2D) -> D/4 -> GELU -> 1
        score[p] = sum_t w_t s[t, p],  w_t ~ exp(-recency (T - 1 - t))

    The temporal context ``c`` is how much the token changes around its frame: with it, a
    head can rank moving content above a static background.
    """

    type: Literal["linear", "mlp"] = "linear"  # the score head (harness.compiler.select)
    window: OddInt = 1  # frames of the temporal context each token is scored with (1: none)
    recency: Number = Field(default=0.0, ge=0, le=10)  # 0: frames alike; > 0: later ones more


SelectionMethod = Literal["topk", "merge"]
Extent = tuple[int, int, int]


def kept_count(keep_ratio: float, n: int) -> int:
    """round(keep_ratio n), halves up, at least 1 (and at most n)."""
    return min(n, max(1, math.floor(keep_ratio * n + 0.5)))


# (frames, height, width) of the patch grid after each method: topk keeps k locations of
# every frame, as a k x 1 grid; merge keeps the locations of fewer frames.
_KEPT: dict[str, Callable[[float, Extent], Extent]] = {
    "topk": lambda ratio, e: (e[0], kept_count(ratio, e[1] * e[2]), 1),
    "merge": lambda ratio, e: (kept_count(ratio, e[0]), e[1], e[2]),
}


class TokenSelectionSpec(Node):
    """Fewer tokens for the rest of a stage of transformer blocks (``stages.N.token_selection``).

    Runs after the stage's first ``after`` blocks; the blocks after it, later stages and the
    head see the smaller grid, and so do FLOPs and memory. Class tokens are always kept.

    - ``topk``: keeps ``round(keep_ratio H W)`` patch locations, the same ones in every frame
      (so every attention scope still applies), the highest by a learned relevance
      ``score``, in their original order. Trained through a straight-through gate.
    - ``merge``: ``round(keep_ratio T)`` frames are left: the most similar pair of adjacent
      frames (cosine of their mean tokens) is averaged, again and again (ToMe over time).
    """

    after: PositiveInt  # blocks of the stage before the selection (1 to blocks - 1)
    method: SelectionMethod = "topk"  # topk: patch locations; merge: adjacent frames
    keep_ratio: Number = Field(gt=0, le=1)  # share kept: of the locations (topk), frames (merge)
    # topk only: the relevance score (default: a linear head, no temporal context or recency).
    score: RelevanceScoreSpec | None = Field(None, validate_default=True)

    @field_validator("score")
    @classmethod
    def _score_for_topk(
        cls, score: RelevanceScoreSpec | None, info: ValidationInfo
    ) -> RelevanceScoreSpec | None:
        method = info.data.get("method")
        if method == "merge" and score is not None:
            raise ValueError("method 'merge' compares frames and has no 'score' (a topk key)")
        if method == "topk" and score is None:
            return RelevanceScoreSpec()
        return score

    def kept(self, extent: Extent) -> Extent:
        """The (frames, height, width) patch grid left of ``extent``."""
        return _KEPT[self.method](self.keep_ratio, extent)
