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

from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BeforeValidator, Field, WithJsonSchema

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
    "TokenHeadSpec",
    "TransformerBlockSpec",
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


class TokenHeadSpec(Node):
    """Layer norm -> class token or mean of the tokens -> dropout -> linear."""

    type: Literal["tokens"] = "tokens"
    pool: Literal["cls", "mean"] = "cls"  # the class token, or the mean of the tokens
    norm: bool = True  # final layer norm
    dropout: Number = Field(0.0, ge=0, lt=1)  # before the linear layer
