"""The spec language: typed, frozen descriptions of a video network.

A :class:`ModelSpec` holds the input clip, the stem, the stages, the head and the X3D
expansion factors. It knows nothing of torch: :mod:`harness.compiler` turns it into a
module, :mod:`harness.measure` into costs. Runtime values (number of classes, batch size,
device) stay apart from the architecture and out of the spec hash.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, PrivateAttr, model_validator

from harness.spec._types import (
    Act,
    KernelTriple,
    Node,
    Norm,
    PadTriple,
    PositiveFloat,
    PositiveInt,
    Triple,
)
from harness.spec.blocks import BlockSpec

__all__ = [
    "ClassifierHeadSpec",
    "ClipSpec",
    "ConvStemSpec",
    "ExpansionSpec",
    "FeaturesHeadSpec",
    "HeadSpec",
    "IdentityStemSpec",
    "ModelSpec",
    "PoolSpec",
    "PublishedSpec",
    "StageSpec",
    "StemSpec",
    "parse_figure",
]


class ClipSpec(Node):
    """The input clip the network is designed for."""

    frames: PositiveInt  # T: frames per clip
    stride: PositiveInt = 1  # tau: temporal sampling stride, in source frames
    size: PositiveInt  # H = W: spatial crop side, pixels
    channels: PositiveInt = 3  # input channels (3 for RGB)


class PoolSpec(Node):
    """A pooling layer (between stages, after a stem)."""

    type: Literal["max", "avg"] = "max"
    kernel: Triple  # (t, h, w)
    stride: Triple | None = None  # default: the kernel
    padding: PadTriple = (0, 0, 0)


class ConvStemSpec(Node):
    """Convolutional stem: one (possibly factorised) conv, norm, act, optional pool.

    Factorisations: ``full`` (t x h x w), ``2plus1d`` (1 x h x w -> t x 1 x 1 with
    ``mid_width``, R(2+1)D), ``separable`` (the same with mid width = width, S3D),
    ``dw_temporal`` (1 x h x w, then a depthwise t x 1 x 1 conv, X3D).
    """

    type: Literal["conv"] = "conv"
    width: PositiveInt  # output channels
    kernel: KernelTriple  # (t, h, w)
    stride: Triple = (1, 2, 2)  # (t, h, w)
    factorization: Literal["full", "2plus1d", "separable", "dw_temporal"] = "full"
    mid_width: PositiveInt | None = None  # 2plus1d only: width between the two convs
    norm: Norm = "batch"
    act: Act = "relu"
    bias: bool = False
    pool: PoolSpec | None = None  # pooling after the conv (ResNet's 1x3x3 max pool)


class IdentityStemSpec(Node):
    """No stem: the first stage sees the clip (C3D)."""

    type: Literal["none"] = "none"


StemSpec = Annotated[ConvStemSpec | IdentityStemSpec, Field(discriminator="type")]


class StageSpec(Node):
    """A run of blocks at one resolution; the first block carries the strides."""

    block: BlockSpec | None = None  # the block, repeated ``depth`` times
    blocks: tuple[BlockSpec, ...] | None = Field(None, min_length=1)  # or one spec per block
    depth: PositiveInt | None = None  # number of blocks (with ``block``)
    width: PositiveInt | None = None  # output channels (inception modules set their own)
    bottleneck_ratio: PositiveFloat | None = None  # inner width = int(ratio * width)
    inner_width: PositiveInt | None = None  # explicit inner width; overrides the ratio
    temporal_stride: PositiveInt = 1  # stride of the first block over time
    spatial_stride: PositiveInt = 1  # stride of the first block over height and width
    pool: PoolSpec | None = None  # pooling after the last block (C3D, I3D's pool1)

    @model_validator(mode="after")
    def _check(self) -> StageSpec:
        if (self.block is None) == (self.blocks is None):
            raise ValueError("give either 'block' (with 'depth') or 'blocks', not both")
        if self.block is not None and self.depth is None:
            raise ValueError("'block' needs 'depth' (how many times it repeats)")
        if self.blocks is not None and self.depth is not None:
            raise ValueError("'depth' goes with 'block'; 'blocks' lists every block")
        specs = self.block_specs()
        if self.width is None and any(b.own_width() is None for b in specs):
            raise ValueError("missing key 'width' (output channels of the stage)")
        needs_inner = [b.type for b in specs if b.uses_inner]
        if needs_inner and self.bottleneck_ratio is None and self.inner_width is None:
            raise ValueError(
                f"block type '{needs_inner[0]}' needs 'bottleneck_ratio' or 'inner_width'"
            )
        return self

    def block_specs(self) -> tuple[Any, ...]:
        """The spec of every block of the stage, in order."""
        if self.blocks is not None:
            return self.blocks
        assert self.block is not None and self.depth is not None
        return (self.block,) * self.depth

    def out_width(self, block: Any) -> int:
        """Output channels of ``block`` in this stage."""
        own = block.own_width()
        width = own if own is not None else self.width
        assert width is not None, "the validator requires 'width' where blocks need it"
        return width

    def inner(self, width: int) -> int | None:
        """Inner (bottleneck) width for a stage output ``width``."""
        if self.inner_width is not None:
            return self.inner_width
        if self.bottleneck_ratio is not None:
            return max(1, int(self.bottleneck_ratio * width))
        return None


class ClassifierHeadSpec(Node):
    """[conv 1x1x1 + norm + act] -> global pool -> [fc + act + dropout]* -> dropout -> fc."""

    type: Literal["classifier"] = "classifier"
    # Width of a 1x1x1 conv before pooling, as a ratio of its input width (X3D's conv5).
    conv_ratio: PositiveFloat | None = None
    pool: Literal["avg", "max", "flatten"] = "avg"  # flatten keeps T x H x W (C3D's fc6)
    hidden: tuple[PositiveInt, ...] = ()  # widths of hidden fully-connected layers
    hidden_bias: bool = True
    norm: Norm = "batch"  # after the pre-pool conv
    act: Act = "relu"
    dropout: float = Field(0.0, ge=0, lt=1)  # before every fully-connected layer but the first


class FeaturesHeadSpec(Node):
    """Global average pool only: the network returns features, not class scores."""

    type: Literal["features"] = "features"


HeadSpec = Annotated[ClassifierHeadSpec | FeaturesHeadSpec, Field(discriminator="type")]


def _factor(name: str, symbol: str, doc: str) -> Any:
    return Field(1.0, gt=0, le=100, validation_alias=AliasChoices(name, symbol), description=doc)


class ExpansionSpec(Node):
    """X3D expansion factors (Feichtenhofer, CVPR 2020); plain keys or the paper's symbols."""

    frames: float = _factor("frames", "gamma_t", "x frames per clip")
    stride: float = _factor("stride", "gamma_tau", "x frame rate (divides the sampling stride)")
    size: float = _factor("size", "gamma_s", "x spatial resolution")
    width: float = _factor("width", "gamma_w", "x channel widths")
    bottleneck: float = _factor("bottleneck", "gamma_b", "x inner (bottleneck) widths")
    depth: float = _factor("depth", "gamma_d", "x blocks per stage")

    @model_validator(mode="before")
    @classmethod
    def _one_name_each(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                alias = field.validation_alias
                names = alias.choices if isinstance(alias, AliasChoices) else [name]
                given = [n for n in names if n in data]
                if len(given) > 1:
                    raise ValueError(f"'{given[0]}' and '{given[1]}' name the same factor")
        return data

    def is_identity(self) -> bool:
        return all(value == 1.0 for value in self.model_dump().values())


_FIGURE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKMG]?)\s*$")
_SCALE = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}


def parse_figure(value: int | float | str) -> tuple[float, float]:
    """A published figure as printed -> (value, half a unit of its last printed digit).

    ``"3.8M"`` -> (3.8e6, 0.05e6); ``33371472`` -> (33371472, 0.5); ``4.73`` -> (4.73, 0.005).
    """
    text = str(value)
    match = _FIGURE.match(text)
    if match is None:
        raise ValueError(f"'{value}' is not a figure such as 3.8M, 4.73 or 33371472")
    digits, suffix = match.groups()
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    scale = _SCALE[suffix]
    return float(digits) * scale, 0.5 * 10.0 ** (-decimals) * scale


class PublishedSpec(Node):
    """A published figure the spec must reproduce, with its source and convention."""

    source: str  # citation: paper table or repository file
    frames: PositiveInt  # input at which the figures hold
    size: PositiveInt
    classes: PositiveInt
    params: int | float | str | None = None  # as printed: 33371472, "3.8M"
    # all: every parameter; no_norm: without normalisation layers (the X3D paper's count)
    params_convention: Literal["all", "no_norm"] = "all"
    gflops: int | float | str | None = None  # multiply-adds, as printed
    # compute: conv/linear/matmul only (FAIR papers, torchvision); all: fvcore total incl. norm
    gflops_convention: Literal["compute", "all"] = "compute"
    note: str = ""  # how the figure was measured, where it differs from the obvious

    @model_validator(mode="after")
    def _figures_parse(self) -> PublishedSpec:
        for value in (self.params, self.gflops):
            if value is not None:
                parse_figure(value)
        return self


class ModelSpec(Node):
    """A whole single-pathway network."""

    name: str = Field(min_length=1, max_length=200)  # zoo name or file stem
    description: str = ""
    clip: ClipSpec
    stem: StemSpec
    stages: tuple[StageSpec, ...] = Field(min_length=1, max_length=64)
    head: HeadSpec
    expansion: ExpansionSpec = ExpansionSpec()
    classes: PositiveInt = 400  # runtime default: number of classes the head predicts
    published: PublishedSpec | None = None

    # Where each key came from (set by the loader; used to point compile errors at lines).
    _origin: Any = PrivateAttr(default=None)

    def architecture(self) -> dict[str, Any]:
        """The fields that define the network (what the spec hash covers)."""
        return self.model_dump(mode="json", include={"clip", "stem", "stages", "head"})
