"""Spec nodes of multi-pathway networks: named inputs, pathways, laterals, joins, segments.

A single-pathway spec (``stem`` + ``stages``) is the degenerate case: one pathway reading
the ``rgb`` input. A multi-pathway spec lists ``pathways`` instead, each with its own input
sampling, width and stages; ``laterals`` fuse one pathway into another after the stem or a
stage; ``join`` says how the head reads the pathways that remain. SlowFast (Feichtenhofer et
al., ICCV 2019) is the canonical case::

    rgb --every alpha-th frame--> slow stem -> res2 -> res3 -> res4 -> res5 --+
                                        ^        ^      ^      ^              +-> join -> head
    rgb ------------------------> fast stem -> res2 -> res3 -> res4 -> res5 --+
                      (laterals: time-strided conv, fast -> slow, concatenated)

Two-stream networks read two named inputs (``rgb`` and ``flow``); TSN-style ``segments``
run any of these on K snippets of the clip and fuse their scores.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import Field, WithJsonSchema, field_validator

from harness.spec._types import Node, NotBool, Number, OddInt, PositiveFloat, PositiveInt

__all__ = [
    "AttentionCombine",
    "ConcatJoinSpec",
    "Connection",
    "InputSpec",
    "JoinSpec",
    "LateralSpec",
    "ScoresJoinSpec",
    "SegmentsSpec",
]

# Where a lateral connection sits: after the stem, or after stage ``i`` (0-based).
Position = Literal["stem"] | Annotated[int, Field(ge=0, le=63), NotBool]
AttentionCombine = Literal["concat", "sum", "attention"]


class InputSpec(Node):
    """A named input tensor of shape (B, channels, clip.frames, clip.size, clip.size)."""

    channels: PositiveInt  # 3 for RGB; 2 per frame for optical flow (x and y displacement)


class Connection(Node):
    """What every connection between two pathways has: where it reads, writes and sits.

    Class attributes say which shape rules the compiler's plan applies to it.
    """

    same_space: ClassVar[bool] = True  # source and target must have one height and width
    same_time: ClassVar[bool] = True  # the source's frames must be a multiple of the target's
    if TYPE_CHECKING:  # every kind has them: its registered transform and its combine
        type: str
        combine: str

    source: str = Field(alias="from")  # name of the pathway read
    target: str = Field(alias="to")  # name of the pathway written
    # After the stem and/or these stages (a single position or a list).
    after: Annotated[
        tuple[Position, ...],
        Field(min_length=1, max_length=64),
        WithJsonSchema(
            {
                "anyOf": [
                    {"const": "stem"},
                    {"type": "integer", "minimum": 0},
                    {
                        "type": "array",
                        "items": {"anyOf": [{"const": "stem"}, {"type": "integer", "minimum": 0}]},
                    },
                ]
            }
        ),
    ]

    @field_validator("after", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, int | str) else value

    def invalid(self) -> tuple[str, str] | None:
        """(key, message) of a problem among the node's own values, or None."""
        return None

    def out_channels(self, source: int, ratio: int, target: int) -> int:
        """Channels the connection hands its combine, from ``source`` channels at frame
        ratio ``ratio`` into a target of ``target`` channels."""
        raise NotImplementedError


class LateralSpec(Connection):
    """A connection that fuses pathway ``from`` into pathway ``to`` after a stem or stage.

    The transform maps ``from``'s features onto ``to``'s frame count (their ratio, alpha,
    comes from the pathways' sampling and strides); ``combine`` merges the result:
    ``concat`` over channels, ``sum`` (``F_to + weight * lateral(F_from)``), or
    ``attention`` (``a * F_to + (1 - a) * F_from`` with ``a`` a learned sigmoid per location).
    """

    # time_strided_conv: K x 1 x 1 conv with temporal stride alpha (+ norm, act; SlowFast);
    # time_to_channel: fold alpha frames into channels; strided_sample: every alpha-th frame.
    type: Literal["time_strided_conv", "time_to_channel", "strided_sample"] = "time_strided_conv"
    kernel: OddInt = 5  # temporal kernel of time_strided_conv
    channel_ratio: PositiveFloat = 2.0  # time_strided_conv output = ratio x source channels
    combine: AttentionCombine = "concat"  # concat, sum or attention (above)
    weight: Number = 1.0  # sum only: scale of the lateral term (the seed's alpha * TtoS)

    def out_channels(self, source: int, ratio: int, target: int) -> int:
        """Channels the transform makes of ``source`` channels at frame ratio ``ratio``.

        A conv feeding a sum or attention fusion makes the ``target``'s channels.
        """
        conv = int(self.channel_ratio * source) if self.combine == "concat" else target
        widths = {
            "time_strided_conv": conv,
            "time_to_channel": source * ratio,
            "strided_sample": source,
        }
        return widths[self.type]


class ConcatJoinSpec(Node):
    """Pool every pathway globally, concatenate, then one head (SlowFast, early fusion)."""

    type: Literal["concat"] = "concat"
    pathways: tuple[str, ...] | None = None  # which pathways the head reads; default all


class ScoresJoinSpec(Node):
    """One head per pathway, scores averaged with fixed or learned weights (late fusion)."""

    type: Literal["scores"] = "scores"
    pathways: tuple[str, ...] | None = None  # which pathways get a head; default all
    # fixed weights in pathway order (at least 0, scaled to sum to 1); default equal
    weights: tuple[Annotated[float, Field(ge=0, allow_inf_nan=False), NotBool], ...] | None = None
    learned: bool = False  # learn the weights (softmax of one logit per pathway)

    @field_validator("weights")
    @classmethod
    def _positive_sum(cls, weights: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if weights is not None and not (0 < math.fsum(weights) < math.inf):
            raise ValueError("the weights must have a sum above 0 (each is scaled by the sum)")
        return weights


JoinSpec = Annotated[ConcatJoinSpec | ScoresJoinSpec, Field(discriminator="type")]


class SegmentsSpec(Node):
    """TSN-style segments (Wang et al., ECCV 2016): the clip is K snippets of equal length.

    The network runs on every snippet (folded into the batch); ``consensus`` fuses the K
    score vectors: ``avg``, ``max`` or ``attention`` (softmax weights from a learned linear
    map of each snippet's scores).
    """

    count: PositiveInt  # K: snippets per clip; must divide clip.frames
    consensus: Literal["avg", "max", "attention"] = "avg"  # how the K scores are fused
