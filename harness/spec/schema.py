"""The spec language: typed, frozen descriptions of a video network.

A :class:`ModelSpec` holds the input clip, the stem, the stages, the head and the X3D
expansion factors. It knows nothing of torch: :mod:`harness.compiler` turns it into a
module, :mod:`harness.measure` into costs. Runtime values (number of classes, batch size,
device) stay apart from the architecture and out of the spec hash.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    PrivateAttr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from harness.errors import SpecError
from harness.spec._types import (
    Act,
    KernelTriple,
    Node,
    Norm,
    NotBool,
    Number,
    PadTriple,
    PositiveFloat,
    PositiveInt,
    Triple,
)
from harness.spec.attention import PatchStemSpec, TokenHeadSpec, TokenSelectionSpec
from harness.spec.audio import InputKind, LateralKind, check_audio
from harness.spec.blocks import BlockSpec
from harness.spec.pathways import JoinSpec, SegmentsSpec

__all__ = [
    "ClassifierHeadSpec",
    "ClipSpec",
    "ConvStemSpec",
    "ExpansionSpec",
    "FeaturesHeadSpec",
    "HeadSpec",
    "IdentityStemSpec",
    "ModelSpec",
    "PathwaySpec",
    "PoolSpec",
    "PublishedSpec",
    "StageSpec",
    "StemSpec",
    "check_references",
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

    type: Literal["max", "avg"] = "max"  # max or average pooling
    kernel: Triple  # pooling window (t, h, w), in frames and pixels
    stride: Triple | None = None  # (t, h, w); default: the kernel
    padding: PadTriple = (0, 0, 0)  # zeros added on each side (t, h, w)


class ConvStemSpec(Node):
    """Convolutional stem: one (possibly factorised) conv, norm, act, optional pool.

    Factorisations: ``full`` (t x h x w), ``2plus1d`` (1 x h x w -> t x 1 x 1 with
    ``mid_width``, R(2+1)D), ``separable`` (the same with mid width = width, S3D),
    ``dw_temporal`` (1 x h x w, then a depthwise t x 1 x 1 conv, X3D), ``parallel``
    (t x 1 x 1 + 1 x h x w, summed, AVSlowFast's audio stem).
    """

    type: Literal["conv"] = "conv"
    width: PositiveInt  # output channels
    kernel: KernelTriple  # conv kernel (t, h, w), odd sizes
    stride: Triple = (1, 2, 2)  # conv stride (t, h, w)
    # full: one t x h x w conv; 2plus1d, separable, dw_temporal: a spatial conv, then a
    # temporal one (as described above); parallel: a t x 1 x 1 and a 1 x h x w conv side by
    # side, summed (AVSlowFast's audio stem).
    factorization: Literal["full", "2plus1d", "separable", "dw_temporal", "parallel"] = "full"
    mid_width: PositiveInt | None = None  # 2plus1d only: width between the two convs
    norm: Norm = "batch"  # normalisation after the conv
    act: Act = "relu"  # activation after normalisation
    bias: bool = False  # convolution bias
    pool: PoolSpec | None = None  # pooling after the conv (ResNet's 1x3x3 max pool)


class IdentityStemSpec(Node):
    """No stem: the first stage sees the clip (C3D)."""

    type: Literal["none"] = "none"


StemSpec = Annotated[ConvStemSpec | IdentityStemSpec | PatchStemSpec, Field(discriminator="type")]


class StageSpec(Node):
    """A run of blocks at one resolution; the first block carries the strides."""

    block: BlockSpec | None = None  # the block, repeated ``depth`` times
    # Instead of ``block`` and ``depth``: one spec per block, in order.
    blocks: tuple[BlockSpec, ...] | None = Field(None, min_length=1)
    depth: PositiveInt | None = None  # number of blocks (with ``block``)
    width: PositiveInt | None = None  # output channels (inception modules set their own)
    bottleneck_ratio: PositiveFloat | None = None  # inner width = int(ratio * width)
    inner_width: PositiveInt | None = None  # explicit inner width; overrides the ratio
    temporal_stride: PositiveInt = 1  # stride of the first block over time
    spatial_stride: PositiveInt = 1  # stride of the first block over height and width
    pool: PoolSpec | None = None  # pooling after the last block (C3D, I3D's pool1)
    # Transformer stages: fewer tokens after the first ``after`` blocks (top-k or merge).
    token_selection: TokenSelectionSpec | None = None

    late_keys: ClassVar[frozenset[str]] = frozenset({"token_selection"})

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
    hidden_bias: bool = True  # bias of the hidden fully-connected layers
    norm: Norm = "batch"  # after the pre-pool conv
    act: Act = "relu"  # after the pre-pool conv and each hidden layer
    dropout: Number = Field(0.0, ge=0, lt=1)  # before every fully-connected layer but the first


class FeaturesHeadSpec(Node):
    """Global average pool only: the network returns features, not class scores."""

    type: Literal["features"] = "features"


HeadSpec = Annotated[
    ClassifierHeadSpec | FeaturesHeadSpec | TokenHeadSpec, Field(discriminator="type")
]


def _one_stage_or_many(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    return value


def _factor(name: str, symbol: str, doc: str) -> Any:
    return Field(1.0, gt=0, le=100, validation_alias=AliasChoices(name, symbol), description=doc)


class ExpansionSpec(Node):
    """X3D expansion factors (Feichtenhofer, CVPR 2020); plain keys or the paper's symbols."""

    frames: Number = _factor("frames", "gamma_t", "x frames per clip")
    stride: Number = _factor("stride", "gamma_tau", "x frame rate (divides the sampling stride)")
    size: Number = _factor("size", "gamma_s", "x spatial resolution")
    width: Number = _factor("width", "gamma_w", "x channel widths")
    bottleneck: Number = _factor("bottleneck", "gamma_b", "x inner (bottleneck) widths")
    depth: Number = _factor("depth", "gamma_d", "x blocks per stage")

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
    frames: PositiveInt  # frames per clip of the input at which the figures hold
    size: PositiveInt  # crop side of that input, pixels
    classes: PositiveInt  # classes of the head the figures count
    params: int | float | str | None = None  # as printed: 33371472, "3.8M"
    # all: every parameter; no_norm: without normalisation layers (the X3D paper's count)
    params_convention: Literal["all", "no_norm"] = "all"
    gflops: int | float | str | None = None  # GFLOPs (multiply-adds / 1e9), as printed
    # compute: conv/linear/matmul only (FAIR papers, torchvision); all: fvcore total incl. norm
    gflops_convention: Literal["compute", "all"] = "compute"
    note: str = ""  # how the figure was measured, where it differs from the obvious

    @model_validator(mode="after")
    def _figures_parse(self) -> PublishedSpec:
        for value in (self.params, self.gflops):
            if value is not None:
                parse_figure(value)
        return self


class PathwaySpec(Node):
    """One pathway of a multi-pathway network: its input, sampling, stem and stages."""

    # Unique among the pathways; laterals and the join name pathways by it.
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # Named input(s) read; several are concatenated over channels (early fusion of inputs).
    input: Annotated[
        tuple[str, ...],
        Field(min_length=1, max_length=8),
        WithJsonSchema(
            {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
        ),
    ] = ("rgb",)
    # Reads every n-th frame of its input (SlowFast's slow pathway: n = alpha).
    frame_stride: PositiveInt = 1
    # Multiplies the stem and stage widths written here (SlowFast's beta for the fast
    # pathway); applied when the spec is realised.
    width_ratio: PositiveFloat = 1.0
    stem: StemSpec  # the pathway's stem
    stages: tuple[StageSpec, ...] = Field(min_length=1, max_length=64)  # its stages, in order

    @field_validator("input", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


# Keys a single-pathway spec has always had; the others enter the hash only when set, so
# that adding a key to the language leaves the hash of every existing spec unchanged.
_CORE_KEYS = ("clip", "stem", "stages", "head")
_OPTIONAL_KEYS = ("inputs", "pathways", "laterals", "join", "segments")


class ModelSpec(Node):
    """A whole network: one pathway (``stem`` + ``stages``) or several (``pathways``)."""

    name: str = Field(min_length=1, max_length=200)  # zoo name or file stem (the default)
    description: str = ""  # one line on what the network is
    clip: ClipSpec  # the input clip the network is designed for
    # Named inputs: video clips ({channels}) or spectrograms ({type: audio, ...}); default:
    # one input, rgb, with clip.channels.
    inputs: dict[str, InputKind] | None = None
    stem: StemSpec | None = None  # single pathway: the stem (or list ``pathways``)
    stages: tuple[StageSpec, ...] = Field((), max_length=64)  # single pathway: the stages
    # Several pathways, each with its own stem and stages (instead of ``stem``, ``stages``).
    pathways: tuple[PathwaySpec, ...] | None = Field(None, min_length=1, max_length=8)
    laterals: tuple[LateralKind, ...] = Field((), max_length=64)  # fusions between pathways
    join: JoinSpec | None = None  # how the head reads the pathways; default concat
    head: HeadSpec  # what turns the last features into class scores (or features)
    segments: SegmentsSpec | None = None  # TSN-style snippets with a score consensus
    expansion: ExpansionSpec = ExpansionSpec()  # X3D expansion factors, applied when realised
    classes: PositiveInt = 400  # runtime default: number of classes the head predicts
    # Figures the spec must reproduce (``harness zoo --check``); never inherited by ``base``.
    published: PublishedSpec | None = None
    # Runtime: stages whose blocks recompute their activations in the backward pass instead
    # of keeping them (activation checkpointing): less training memory for one more forward
    # pass, the same outputs and gradients. true: every stage; a list: those stage indices
    # (of every pathway). Not in the spec hash; in a training run's identity.
    activation_checkpoint: Annotated[
        bool | tuple[Annotated[int, Field(ge=0, le=63), NotBool], ...],
        BeforeValidator(_one_stage_or_many),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "boolean"},
                    {"type": "integer", "minimum": 0, "maximum": 63},
                    {
                        "type": "array",
                        "items": {"type": "integer", "minimum": 0, "maximum": 63},
                        "maxItems": 64,
                    },
                ]
            }
        ),
    ] = False

    late_keys: ClassVar[frozenset[str]] = frozenset({"activation_checkpoint"})

    # Where each key came from (set by the loader; used to point compile errors at lines).
    _origin: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_layout(self) -> ModelSpec:
        if self.pathways is None:
            if self.stem is None:
                raise ValueError("missing key 'stem' (or list 'pathways')")
            if not self.stages:
                raise ValueError("missing key 'stages' (or list 'pathways')")
        elif self.stem is not None or self.stages:
            raise ValueError("give either 'stem' and 'stages', or 'pathways', not both")
        return self

    def input_channels(self) -> dict[str, int]:
        """Channels of every named input, in declaration order."""
        if self.inputs is None:
            return {"rgb": self.clip.channels}
        return {name: spec.channels for name, spec in self.inputs.items()}

    def get_pathways(self) -> tuple[PathwaySpec, ...]:
        """The pathways; a single-pathway spec is one pathway named ``main`` reading rgb."""
        if self.pathways is not None:
            return self.pathways
        assert self.stem is not None, "the validator requires a stem without pathways"
        return (
            PathwaySpec(
                name="main", input=tuple(self.input_channels()), stem=self.stem, stages=self.stages
            ),
        )

    def mixes_time(self) -> bool:
        """Whether the network combines frames anywhere (a stem or block with a temporal
        kernel above 1, a temporal shift, attention, a lateral between pathways). One that
        does not is blind to their order: it cannot tell a clip from the clip reversed.
        """
        if self.laterals:
            return True
        for pathway in self.get_pathways():
            stem = pathway.stem
            kernel = getattr(stem, "kernel", None) or getattr(stem, "patch", None) or (1,)
            if kernel[0] > 1 or any(
                block.mixes_time() for stage in pathway.stages for block in stage.block_specs()
            ):
                return True
        return False

    def checkpointed_stages(self) -> frozenset[int]:
        """Indices of the stages whose blocks checkpoint their activations (every pathway's
        stage at that index)."""
        setting = self.activation_checkpoint
        if setting is True:
            return frozenset(range(max(len(p.stages) for p in self.get_pathways())))
        return frozenset(setting or ())

    def architecture(self) -> dict[str, Any]:
        """The fields that define the network (what the spec hash covers)."""
        keys = {k for k in _CORE_KEYS if getattr(self, k) not in (None, ())}
        keys |= {k for k in _OPTIONAL_KEYS if getattr(self, k) not in (None, ())}
        return self.model_dump(mode="json", include=keys)


def _check_checkpoint(spec: ModelSpec) -> None:
    setting = spec.activation_checkpoint
    if isinstance(setting, bool):
        return
    count = max(len(p.stages) for p in spec.get_pathways())
    for j, index in enumerate(setting):
        if index >= count:
            raise SpecError(
                f"stage {index} does not exist (stages 0..{count - 1})",
                path=("activation_checkpoint", j),
            )


def _check_pathway(spec: ModelSpec, index: int, names: set[str]) -> None:
    pathway = spec.get_pathways()[index]
    path: tuple[str | int, ...] = ("pathways", index)
    if pathway.name in names:
        raise SpecError(f"pathway name '{pathway.name}' is used twice", path=(*path, "name"))
    names.add(pathway.name)
    known = spec.input_channels()
    for name in pathway.input:
        if name not in known:
            raise SpecError(
                f"no input named '{name}'; inputs: {', '.join(known)}", path=(*path, "input")
            )


def _check_lateral(spec: ModelSpec, index: int) -> None:
    lateral = spec.laterals[index]
    path: tuple[str | int, ...] = ("laterals", index)
    by_name = {p.name: p for p in spec.get_pathways()}
    for key, name in (("from", lateral.source), ("to", lateral.target)):
        if name not in by_name:
            raise SpecError(
                f"no pathway named '{name}'; pathways: {', '.join(by_name)}", path=(*path, key)
            )
    if lateral.source == lateral.target:
        raise SpecError("a lateral connects two different pathways", path=(*path, "to"))
    problem = lateral.invalid()
    if problem is not None:
        raise SpecError(problem[1], path=(*path, problem[0]))
    for j, position in enumerate(lateral.after):
        if position == "stem":
            continue
        for name in (lateral.source, lateral.target):
            count = len(by_name[name].stages)
            if not isinstance(position, int) or position >= count:
                raise SpecError(
                    f"position {position!r} names no stage of pathway '{name}' "
                    f"(it has stages 0..{count - 1}; or 'stem')",
                    path=(*path, "after", j),
                )


def _check_join(spec: ModelSpec) -> None:
    join = spec.join
    if join is None:
        return
    names = [p.name for p in spec.get_pathways()]
    chosen = join.pathways if join.pathways is not None else tuple(names)
    for j, name in enumerate(chosen):
        if name not in names:
            raise SpecError(
                f"no pathway named '{name}'; pathways: {', '.join(names)}",
                path=("join", "pathways", j),
            )
    weights = getattr(join, "weights", None)
    if weights is not None and len(weights) != len(chosen):
        raise SpecError(
            f"{len(weights)} weights for {len(chosen)} pathways", path=("join", "weights")
        )
    if weights is not None and getattr(join, "learned", False) and min(weights) == 0:
        # NOTE: a learned weight starts as the log of the given one: log 0 never learns.
        raise SpecError(
            "learned weights start from the given ones: each must be above 0",
            path=("join", "weights", weights.index(0)),
        )


def check_references(spec: ModelSpec) -> None:
    """Check the names that tie a spec together: inputs, pathways, laterals, join.

    Raises:
        SpecError: naming the key path of the first dangling or duplicate name.
    """
    if spec.pathways is None and (spec.laterals or spec.join is not None):
        key = "laterals" if spec.laterals else "join"
        raise SpecError(f"'{key}' needs 'pathways' (this spec has one stem)", path=(key,))
    names: set[str] = set()
    for i in range(len(spec.get_pathways())):
        _check_pathway(spec, i, names)
    for i in range(len(spec.laterals)):
        _check_lateral(spec, i)
    check_audio(spec)
    _check_join(spec)
    _check_checkpoint(spec)
