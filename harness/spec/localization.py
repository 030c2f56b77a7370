"""Spec nodes of temporal action localization networks (``task: localization``).

A localization network reads a window of ``T`` feature steps (one feature vector per
clip of an untrimmed video: pre-extracted, or from a recognition spec as ``backbone``) and
says which actions happen when. Two families::

    features (B, C, T) -> neck (temporal feature pyramid) -> anchor-free head -> segments
    features (B, C, T) -> boundary-matching head (BMN) ---------------------> segments

- ``pyramid`` neck: an embedding, then ``levels`` levels of ``depth`` blocks each, every
  level after the first at half the steps of the one before (ActionFormer's pyramid,
  Zhang et al., ECCV 2022). A block mixes time by a temporal convolution (``mixer:
  conv``) or by self-attention within a local window (``mixer: attention``).
- ``anchor_free`` head: at every step of every level, class scores and the distances to
  the action's start and end (in the level's steps), shared across levels.
- ``bmn`` head: start and end probabilities per step and a confidence map over (duration,
  start) proposals (Lin et al., "BMN", ICCV 2019), its boundary-matching layer a fixed
  sampling mask (a buffer, not a parameter).

``post`` turns scores into segments: a score threshold, then per-class NMS (hard or
Gaussian soft-NMS) and the best ``max_segments`` per video.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr

from harness.spec._types import Node, Number, OddInt, PositiveInt

__all__ = [
    "AnchorFreeHeadSpec",
    "BMNHeadSpec",
    "FeatureInputSpec",
    "LocalizationHeadSpec",
    "LocalizationSpec",
    "PostProcessSpec",
    "PyramidNeckSpec",
]


class FeatureInputSpec(Node):
    """What the network reads: a window of feature steps."""

    width: PositiveInt  # channels of one feature step (400: ActivityNet's TSN features)
    steps: PositiveInt  # T: feature steps in one window
    # A recognition spec (zoo name or YAML path) whose pooled features are the steps, one
    # clip each; None: the features are pre-extracted (``harness features``).
    backbone: str | None = None
    window: PositiveInt = 8  # frames of the backbone's clip behind one step
    stride: PositiveInt = 4  # frames between the clips of consecutive steps


class PyramidNeckSpec(Node):
    """Embedding, then a temporal feature pyramid (ActionFormer-style)."""

    type: Literal["pyramid"] = "pyramid"
    width: PositiveInt  # channels of every level
    levels: int = Field(4, ge=1, le=8)  # pyramid levels; each after the first halves T
    depth: int = Field(1, ge=1, le=16)  # blocks per level
    embed_depth: int = Field(1, ge=1, le=8)  # temporal convolutions of the embedding
    mixer: Literal["conv", "attention"] = "conv"  # how a block mixes time
    kernel: OddInt = 3  # temporal kernel of the convolutions (steps)
    window: PositiveInt = 9  # attention: steps each step attends to (its local window)
    heads: PositiveInt = 4  # attention heads; must divide the width
    mlp_ratio: Number = Field(2.0, gt=0, le=16)  # hidden width of a block's MLP / width


class AnchorFreeHeadSpec(Node):
    """Per step: class scores and the distances to start and end, shared by the levels."""

    type: Literal["anchor_free"] = "anchor_free"
    width: PositiveInt  # channels of the head's convolutions
    depth: int = Field(2, ge=0, le=8)  # convolutions before each output layer
    kernel: OddInt = 3  # their temporal kernel (steps)
    prior: Number = Field(0.01, gt=0, lt=1)  # initial class probability (focal-loss bias)


class BMNHeadSpec(Node):
    """BMN (Lin et al., ICCV 2019): boundary probabilities and a proposal confidence map."""

    type: Literal["bmn"] = "bmn"
    width: PositiveInt = 256  # 1D (temporal) channels
    width_3d: PositiveInt = 512  # channels of the boundary-matching 3D convolution
    width_2d: PositiveInt = 128  # channels of the 2D convolutions on the map
    groups: PositiveInt = 4  # groups of the base and boundary convolutions
    samples: PositiveInt = 32  # points sampled in each proposal
    samples_per_bin: PositiveInt = 3  # sub-points averaged per sampled point
    boundary_ratio: Number = Field(0.5, ge=0, le=4)  # context added on each side / duration
    max_duration: PositiveInt | None = None  # longest proposal, in steps (None: T)


LocalizationHeadSpec = Annotated[AnchorFreeHeadSpec | BMNHeadSpec, Field(discriminator="type")]


class PostProcessSpec(Node):
    """From scores to segments."""

    score_threshold: Number = Field(0.001, ge=0, lt=1)  # candidates below are dropped
    nms: Literal["hard", "soft"] = "soft"  # hard NMS, or Gaussian soft-NMS
    iou_threshold: Number = Field(0.5, gt=0, le=1)  # hard NMS: suppress above this tIoU
    sigma: Number = Field(0.5, gt=0, le=10)  # soft-NMS: score *= exp(-tIoU^2 / sigma)
    max_segments: PositiveInt = 100  # kept per video


class LocalizationSpec(Node):
    """A temporal action localization network."""

    task: Literal["localization"] = "localization"
    name: str = Field(min_length=1, max_length=200)  # zoo name or file stem
    description: str = ""  # one line on what the network is
    input: FeatureInputSpec  # the window of feature steps it reads
    neck: PyramidNeckSpec | None = None  # anchor-free heads need one; BMN has its own base
    head: LocalizationHeadSpec
    post: PostProcessSpec = PostProcessSpec.model_validate({})  # scores to segments
    classes: PositiveInt = 20  # runtime default: action classes (BMN: class-agnostic)

    # The document it was loaded from (to point build errors at their line), if any.
    _origin: Any = PrivateAttr(default=None)
