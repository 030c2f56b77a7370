"""The compiler's bookkeeping: channels, strides and clip extents, without torch.

:func:`plan_network` walks the spec once, position by position (stem, stage 0, stage 1,
...), over every pathway in step, and records what every builder will be given: input and
output widths, strides, the extent and token layout each layer sees, and the frame ratio
(alpha) each lateral connection bridges. Every shape problem (a clip too short for the
network's strides, a pool larger than its input, a frame stride that does not divide the
clip, heads that do not divide a width) is found here and named by its key path, before any
module exists. A single-pathway spec is planned as one pathway whose key paths have no
``pathways.<i>`` prefix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from harness.errors import SpecError, format_key_path
from harness.spec.attention import PatchStemSpec, TokenSelectionSpec, TransformerBlockSpec
from harness.spec.audio import is_audio, reads_audio
from harness.spec.load import is_own_key
from harness.spec.pathways import Connection
from harness.spec.schema import ConvStemSpec, ModelSpec, PathwaySpec, PoolSpec

__all__ = [
    "BlockPlan",
    "Grid",
    "LateralPlan",
    "NetworkPlan",
    "PathwayPlan",
    "SelectionPlan",
    "StagePlan",
    "min_clip",
    "packed_channels",
    "plan_network",
]

Shape = tuple[int, int, int, int]  # (channels, frames, height, width)
Extent = tuple[int, int, int]  # (frames, height, width)
KeyPath = tuple[str | int, ...]
# Layout of what flows between layers: a (B, C, T, H, W) feature ``map``, or (B, N, C)
# tokens on the T x H x W grid with no class token (``patches``), one class token first
# (``cls``), or one class token at the start of every frame (``frame_cls``).
MAP = "map"
_AXES = ("frames", "height", "width")


class _ClipDoesNotFit(SpecError):
    """The clip does not fit the network's strides, pools or frame ratios.

    Where the clip is too small for a layer (rather than of a length the layer cannot
    divide), ``axis`` is the clip axis (frames, height, width) and ``detail`` says how.
    """

    axis: str | None = None
    detail: str = ""


def _too_small(detail: str, axis: str, path: KeyPath) -> _ClipDoesNotFit:
    error = _ClipDoesNotFit(f"clip too short or too small: {detail}", path=path)
    error.axis, error.detail = axis, detail
    return error


@dataclass(frozen=True)
class Grid:
    """The extent and token layout a layer reads."""

    frames: int
    height: int
    width: int
    tokens: str = MAP
    declared: Extent | None = None  # (T, H, W) at the spec's own clip: positional sizes

    @property
    def extent(self) -> Extent:
        return (self.frames, self.height, self.width)


@dataclass(frozen=True)
class BlockPlan:
    spec: Any  # the block's spec node
    path: KeyPath  # key path of the block in the spec
    dim_in: int
    dim_out: int
    dim_inner: int | None
    stride: tuple[int, int]  # (temporal, spatial)
    index: int  # position in the stage
    shape_out: Shape
    grid: Grid = Grid(1, 1, 1)  # extent and layout the block reads


@dataclass(frozen=True)
class SelectionPlan:
    """A stage's token selection: the grid it reads and the smaller one it hands on."""

    spec: TokenSelectionSpec
    path: KeyPath  # key path of the stage's ``token_selection``
    dim: int  # token width
    grid: Grid  # what block ``spec.after - 1`` hands on
    grid_out: Grid  # what block ``spec.after`` (and everything after it) reads


@dataclass(frozen=True)
class StagePlan:
    path: KeyPath
    blocks: tuple[BlockPlan, ...]
    pool: PoolSpec | None
    shape_out: Shape
    tokens: str = MAP  # layout after the stage
    checkpoint: bool = False  # its blocks recompute their activations in backward
    selection: SelectionPlan | None = None  # token selection between two of its blocks

    def child_index(self, block: int) -> int:
        """Position of block ``block`` among the built stage's children: the blocks in
        order, with the token selection (if any) before block ``selection.spec.after``."""
        if self.selection is not None and block >= self.selection.spec.after:
            return block + 1
        return block


@dataclass(frozen=True)
class LateralPlan:
    spec: Connection  # a LateralSpec, or an audio-visual fusion (harness.spec.audio)
    path: KeyPath  # key path of the lateral in the spec
    position: str | int  # "stem" or a stage index
    source: str  # pathway read
    target: str  # pathway written
    dim_in: int  # source channels
    dim_out: int  # channels the transform produces
    dim_target: int  # target channels before the fusion
    ratio: int  # alpha: source frames / target frames
    shape_out: Shape  # target shape after the fusion


@dataclass(frozen=True)
class PathwayPlan:
    name: str
    path: KeyPath  # () for a single-pathway spec, else ("pathways", i)
    inputs: tuple[str, ...]  # named inputs read (concatenated over channels)
    frame_stride: int
    input_shape: Shape
    stem: Any  # the stem's spec node
    stem_shape: Shape
    stem_tokens: str
    stem_declared: Extent  # stem output extent at the spec's own clip
    stages: tuple[StagePlan, ...]
    shape_out: Shape  # after the last stage and every fusion into this pathway
    tokens_out: str
    # Reads spectrograms: maps are (C, time, 1, frequency) and every layer's height kernel,
    # stride and padding are 1, 1 and 0 (see harness.spec.audio).
    audio: bool = False


@dataclass(frozen=True)
class NetworkPlan:
    input_shape: Shape  # the input, named inputs stacked over channels in declared order
    inputs: tuple[tuple[str, int], ...]  # (name, channels) of every named input
    pathways: tuple[PathwayPlan, ...]
    laterals: tuple[LateralPlan, ...] = ()
    segments: int = 1  # snippets folded into the batch (TSN); 1: none
    # (name, channels, frames, mels) of every spectrogram input; in ``inputs`` and
    # ``input_shape`` each takes the channels that :func:`packed_channels` gives it.
    audio: tuple[tuple[str, int, int, int], ...] = ()

    @property
    def trunk(self) -> PathwayPlan:
        """The pathway with the most stages (the first of them): the one others join."""
        return max(self.pathways, key=lambda p: len(p.stages))

    @property
    def stem_shape(self) -> Shape:
        return self.trunk.stem_shape

    @property
    def stages(self) -> tuple[StagePlan, ...]:
        return self.trunk.stages

    @property
    def output_shape(self) -> Shape:
        return self.trunk.shape_out

    @property
    def tokens_out(self) -> str:
        return self.trunk.tokens_out


@dataclass
class _State:
    """Where one pathway stands during the walk."""

    shape: Shape
    tokens: str
    declared: Extent
    audio: bool = False  # an audio pathway: nothing strides, pools or pads over height


def _flat(triple: tuple[int, int, int], audio: bool, height: int = 1) -> tuple[int, int, int]:
    """``triple`` with its height entry set to ``height`` in an audio pathway."""
    return (triple[0], height, triple[2]) if audio else triple


def _stride(shape: Shape, stride: tuple[int, int, int], paths: tuple[KeyPath, ...]) -> Shape:
    """Extents after a 'same'-padded conv with ``stride``: ceil(n / s).

    ``paths`` names the key that sets the stride of each axis (t, h, w).
    """
    c, *extent = shape
    for axis, n, s, path in zip(_AXES, extent, stride, paths, strict=True):
        if n < s:
            raise _too_small(f"{n} {axis} reach a stride of {s} here", axis, path)
    t, h, w = (math.ceil(n / s) for n, s in zip(extent, stride, strict=True))
    return (c, t, h, w)


def _patches(shape: Shape, patch: tuple[int, int, int], path: KeyPath) -> Shape:
    """Extents after a non-overlapping patch embedding: floor(n / p)."""
    c, *extent = shape
    for axis, n, p in zip(_AXES, extent, patch, strict=True):
        if n < p:
            raise _too_small(f"{n} {axis} reach a patch of {p} here", axis, path)
    t, h, w = (n // p for n, p in zip(extent, patch, strict=True))
    return (c, t, h, w)


def _pool(shape: Shape, pool: PoolSpec, path: KeyPath, audio: bool = False) -> Shape:
    c, *extent = shape
    kernel = _flat(pool.kernel, audio)
    stride = _flat(pool.stride or pool.kernel, audio)
    padding = _flat(pool.padding, audio, 0)
    out = []
    for axis, n, k, s, p in zip(_AXES, extent, kernel, stride, padding, strict=True):
        if 2 * p > k:
            raise SpecError(
                f"padding {p} is more than half the kernel {k}", path=(*path, "padding")
            )
        size = (n + 2 * p - k) // s + 1
        if size < 1:
            detail = f"the pool's kernel {k} exceeds the {n} {axis} that reach it"
            raise _too_small(detail, axis, (*path, "kernel"))
        out.append(size)
    return (c, out[0], out[1], out[2])


def _plan_stem(stem: Any, shape: Shape, prefix: KeyPath, audio: bool) -> tuple[Shape, str]:
    path = (*prefix, "stem")
    if isinstance(stem, PatchStemSpec):
        if stem.kernel is None:
            shape = _patches(shape, stem.patch, (*path, "patch"))
        else:
            shape = _stride(shape, stem.patch, ((*path, "patch"),) * 3)
        tokens = {"none": "patches", "global": "cls", "frame": "frame_cls"}[stem.cls_token]
        return (stem.width, *shape[1:]), tokens
    if not isinstance(stem, ConvStemSpec):
        return shape, MAP
    shape = _stride(shape, _flat(stem.stride, audio), ((*path, "stride"),) * 3)
    shape = (stem.width, *shape[1:])
    if stem.pool is not None:
        shape = _pool(shape, stem.pool, (*path, "pool"), audio)
    return shape, MAP


def _check_heads(heads: int, width: int, path: KeyPath) -> None:
    if width % heads:
        raise SpecError(f"{heads} heads do not divide the width {width}", path=(*path, "heads"))


def _check_groups(block: Any, inner: int | None, path: KeyPath) -> None:
    """A grouped conv (ResNeXt) splits the inner width into ``groups`` equal parts."""
    groups = getattr(block, "groups", 1)
    if inner is not None and inner % groups:
        raise SpecError(
            f"{groups} groups do not divide the inner width {inner} of the block",
            path=(*path, "groups"),
        )


def _keep(block: Any, state: _State, stride: tuple[int, int], dim_out: int, path: KeyPath) -> None:
    """Blocks that neither stride nor change the width (transformer, frame tokens)."""
    stage_path = path[: path.index("stages") + 2]
    if stride != (1, 1):
        raise SpecError(
            f"block type '{block.type}' does not stride", path=(*stage_path, "spatial_stride")
        )
    if dim_out != state.shape[0]:
        raise SpecError(
            f"block type '{block.type}' keeps its width {state.shape[0]}; the stage asks for "
            f"{dim_out}",
            path=(*stage_path, "width"),
        )


def _plan_transformer(
    block: Any, state: _State, stride: tuple[int, int], out: Shape, path: KeyPath
) -> _State:
    _keep(block, state, stride, out[0], path)
    _check_heads(block.heads, out[0], path)
    return _State(out, state.tokens, state.declared)


def _plan_frame_tokens(
    block: Any, state: _State, stride: tuple[int, int], out: Shape, path: KeyPath
) -> _State:
    _keep(block, state, stride, out[0], path)
    if block.pool == "cls" and state.tokens != "frame_cls":
        raise SpecError(
            "pool 'cls' reads each frame's class token: the stem needs cls_token: frame",
            path=(*path, "pool"),
        )
    tokens = "cls" if block.cls_token else "patches"
    return _State((out[0], out[1], 1, 1), tokens, (state.declared[0], 1, 1))


def _plan_mvit(
    block: Any, state: _State, stride: tuple[int, int], out: Shape, path: KeyPath
) -> _State:
    if state.tokens not in ("cls", "patches"):
        raise SpecError("mvit blocks take one clip class token or none", path=(*path, "type"))
    attention_dim = state.shape[0] if block.dim_change == "mlp" else out[0]
    _check_heads(block.heads, attention_dim, path)
    for axis, n, s in zip(_AXES, state.shape[1:], block.kv_stride, strict=True):
        if s > n:
            raise _ClipDoesNotFit(
                f"key/value pooling stride {s} is larger than the {n} {axis} of the token grid",
                path=(*path, "kv_stride"),
            )
    return _State(out, state.tokens, state.declared)


# Shape rules of the token blocks, by block type (conv blocks keep the map layout).
_TOKEN_RULES = {
    "transformer": _plan_transformer,
    "frame_tokens": _plan_frame_tokens,
    "mvit": _plan_mvit,
}


def _plan_block(
    block: Any,
    state: _State,
    stride: tuple[int, int],
    dim_out: int,
    path: KeyPath,
    stage_path: KeyPath,
) -> _State:
    layout = getattr(block, "layout", MAP)
    if (layout == MAP) != (state.tokens == MAP):
        needs = "a feature map (a conv stem)" if layout == MAP else "tokens (a patch stem)"
        raise SpecError(f"block type '{block.type}' needs {needs}", path=(*path, "type"))
    keys = (
        (*stage_path, "temporal_stride"),
        (*stage_path, "spatial_stride"),
        (*stage_path, "spatial_stride"),
    )
    out = _stride(state.shape, _flat((stride[0], stride[1], stride[1]), state.audio), keys)
    out = (dim_out, *out[1:])
    if layout == MAP:
        return _State(out, MAP, state.declared, state.audio)
    return _TOKEN_RULES[block.type](block, state, stride, out, path)


def _plan_stage(
    stages: tuple[Any, ...], index: int, state: _State, prefix: KeyPath, declared: StagePlan | None
) -> tuple[StagePlan, _State]:
    stage = stages[index]
    path: KeyPath = (*prefix, "stages", index)
    blocks = []
    selection = None
    _check_selection(stage, path)

    def known(j: int) -> Extent:
        _, t, h, w = state.shape
        return declared.blocks[j].grid.extent if declared else (t, h, w)

    for j, block in enumerate(stage.block_specs()):
        dim_out = stage.out_width(block)
        stride = (stage.temporal_stride, stage.spatial_stride) if j == 0 else (1, 1)
        block_path = (*path, "blocks", j) if stage.blocks is not None else (*path, "block")
        new = _plan_block(block, state, stride, dim_out, block_path, path)
        _check_groups(block, stage.inner(dim_out), block_path)
        blocks.append(
            BlockPlan(
                spec=block,
                path=block_path,
                dim_in=state.shape[0],
                dim_out=dim_out,
                dim_inner=stage.inner(dim_out),
                stride=stride,
                index=j,
                shape_out=new.shape,
                grid=Grid(*state.shape[1:], state.tokens, known(j)),
            )
        )
        state = new
        if stage.token_selection is not None and j + 1 == stage.token_selection.after:
            selection, state = _plan_selection(stage.token_selection, state, path, declared)
    if stage.pool is not None:
        if state.tokens != MAP:
            raise SpecError("a stage of token blocks has no pool", path=(*path, "pool"))
        shape = _pool(state.shape, stage.pool, (*path, "pool"), state.audio)
        state = _State(shape, MAP, state.declared, state.audio)
    plan = StagePlan(
        path=path,
        blocks=tuple(blocks),
        pool=stage.pool,
        shape_out=state.shape,
        tokens=state.tokens,
        selection=selection,
    )
    return plan, state


def _check_selection(stage: Any, path: KeyPath) -> None:
    """A token selection sits between two transformer blocks of its stage."""
    spec = stage.token_selection
    if spec is None:
        return
    specs = stage.block_specs()
    kinds = {block.type for block in specs if not isinstance(block, TransformerBlockSpec)}
    if kinds:
        raise SpecError(
            f"token_selection needs a stage of transformer blocks; this one has "
            f"{', '.join(sorted(kinds))} blocks",
            path=(*path, "token_selection"),
        )
    if spec.after >= len(specs):
        raise SpecError(
            f"after {spec.after} blocks: the stage has {len(specs)}, so 'after' is 1 to "
            f"{len(specs) - 1} (a block must follow the selection)",
            path=(*path, "token_selection", "after"),
        )


def _plan_selection(
    spec: TokenSelectionSpec, state: _State, path: KeyPath, declared: StagePlan | None
) -> tuple[SelectionPlan, _State]:
    """The selection's plan and what the blocks after it read: fewer locations or frames."""
    c, t, h, w = state.shape
    kept = spec.kept((t, h, w))
    known = declared.selection if declared is not None else None
    grid = Grid(t, h, w, state.tokens, known.grid.extent if known else (t, h, w))
    grid_out = Grid(*kept, state.tokens, known.grid_out.extent if known else kept)
    plan = SelectionPlan(spec, (*path, "token_selection"), c, grid, grid_out)
    return plan, _State((c, *kept), state.tokens, grid_out.declared or kept)


def _plan_lateral(
    spec: Connection, path: KeyPath, position: str | int, states: dict[str, _State]
) -> LateralPlan:
    source, target = states[spec.source], states[spec.target]
    if source.tokens != MAP or target.tokens != MAP:
        raise SpecError("laterals connect feature maps, not tokens", path=(*path, "after"))
    (c_s, t_s, *hw_s), (c_t, t_t, *hw_t) = source.shape, target.shape
    if spec.same_space and hw_s != hw_t:
        raise SpecError(
            f"pathway '{spec.source}' is {hw_s[0]}x{hw_s[1]} here and '{spec.target}' "
            f"{hw_t[0]}x{hw_t[1]}: a lateral needs the same height and width",
            path=(*path, "after"),
        )
    if spec.same_time and t_s % t_t:
        raise _ClipDoesNotFit(
            f"pathway '{spec.source}' has {t_s} frames here, not a multiple of "
            f"'{spec.target}''s {t_t}: alpha must divide the frame count",
            path=(*path, "after"),
        )
    ratio = max(1, t_s // t_t)
    dim_out = spec.out_channels(c_s, ratio, c_t)
    if spec.combine != "concat" and dim_out != c_t:
        raise SpecError(
            f"'{spec.combine}' needs {c_t} channels from the lateral; '{spec.type}' gives "
            f"{dim_out} (use concat, or time_strided_conv)",
            path=(*path, "combine"),
        )
    fused = c_t + dim_out if spec.combine == "concat" else c_t
    shape_out = (fused, *target.shape[1:])
    states[spec.target] = replace(target, shape=shape_out)
    return LateralPlan(
        spec, path, position, spec.source, spec.target, c_s, dim_out, c_t, ratio, shape_out
    )


def _fuse(spec: ModelSpec, position: str | int, states: dict[str, _State]) -> list[LateralPlan]:
    return [
        _plan_lateral(lateral, ("laterals", i), position, states)
        for i, lateral in enumerate(spec.laterals)
        if position in lateral.after
    ]


def _input_shape(
    spec: ModelSpec, pathway: PathwaySpec, index: int, frames: int, size: int, prefix: KeyPath
) -> Shape:
    channels = spec.input_channels()
    if reads_audio(spec, pathway):
        # a spectrogram's own frames, whatever the clip's: (C, time, 1, frequency)
        assert spec.inputs is not None, "an audio pathway reads a declared input"
        audio = spec.inputs[pathway.input[0]]
        frames, size = audio.frames, audio.mels  # type: ignore[union-attr]
    if frames % pathway.frame_stride:
        raise _ClipDoesNotFit(
            f"frame stride (alpha) {pathway.frame_stride} does not divide the {frames} frames "
            "the pathway reads",
            path=(*prefix, "frame_stride"),
        )
    c = sum(channels[n] for n in pathway.input)
    if reads_audio(spec, pathway):
        return (c, frames // pathway.frame_stride, 1, size)
    return (c, frames // pathway.frame_stride, size, size)


def packed_channels(elements: int, frames: int, size: int) -> int:
    """Channels of a ``frames x size x size`` clip that hold ``elements`` values.

    NOTE: the cost tools feed one tensor of ``NetworkPlan.input_shape``; a spectrogram
    rides in it as this many extra channels, flattened and zero-padded (the model's
    ``Inputs`` unpacks it). A mapping of named inputs carries it as it is.
    """
    return -(-elements // (frames * size * size))


def _inputs(spec: ModelSpec, frames: int, size: int) -> tuple[tuple[str, int], ...]:
    """(name, channels) of every input in the stacked tensor: spectrograms packed."""
    if spec.inputs is None:
        return (("rgb", spec.clip.channels),)
    out = []
    for name, value in spec.inputs.items():
        channels = value.channels
        if is_audio(value):
            elements = channels * value.frames * value.mels  # type: ignore[union-attr]
            channels = packed_channels(elements, frames, size)
        out.append((name, channels))
    return tuple(out)


def _plan(
    spec: ModelSpec, frames: int, size: int, declared: NetworkPlan | None = None
) -> NetworkPlan:
    segments = spec.segments.count if spec.segments else 1
    if frames % segments:
        raise _ClipDoesNotFit(
            f"{segments} segments do not divide the {frames} frames",
            path=("segments", "count"),
        )
    pathways = spec.get_pathways()
    multi = spec.pathways is not None
    prefixes: list[KeyPath] = [("pathways", j) if multi else () for j in range(len(pathways))]
    states: dict[str, _State] = {}
    firsts: dict[str, tuple[Shape, Shape, str, Extent]] = {}
    for j, (pathway, prefix) in enumerate(zip(pathways, prefixes, strict=True)):
        shape_in = _input_shape(spec, pathway, j, frames // segments, size, prefix)
        audio = reads_audio(spec, pathway)
        shape, tokens = _plan_stem(pathway.stem, shape_in, prefix, audio)
        extent: Extent = (shape[1], shape[2], shape[3])
        known = declared.pathways[j].stem_declared if declared else extent
        states[pathway.name] = _State(shape, tokens, known, audio)
        firsts[pathway.name] = (shape_in, shape, tokens, known)
    laterals = _fuse(spec, "stem", states)
    stage_plans: dict[str, list[StagePlan]] = {p.name: [] for p in pathways}
    checkpointed = spec.checkpointed_stages()
    for i in range(max(len(p.stages) for p in pathways)):
        for j, (pathway, prefix) in enumerate(zip(pathways, prefixes, strict=True)):
            if i < len(pathway.stages):
                same = declared.pathways[j].stages[i] if declared else None
                plan, states[pathway.name] = _plan_stage(
                    pathway.stages, i, states[pathway.name], prefix, same
                )
                if i in checkpointed:
                    plan = replace(plan, checkpoint=True)
                stage_plans[pathway.name].append(plan)
        laterals += _fuse(spec, i, states)
    plans = tuple(
        PathwayPlan(
            name=p.name,
            path=prefix,
            inputs=p.input,
            frame_stride=p.frame_stride,
            input_shape=firsts[p.name][0],
            stem=p.stem,
            stem_shape=firsts[p.name][1],
            stem_tokens=firsts[p.name][2],
            stem_declared=firsts[p.name][3],
            stages=tuple(stage_plans[p.name]),
            shape_out=states[p.name].shape,
            tokens_out=states[p.name].tokens,
            audio=states[p.name].audio,
        )
        for p, prefix in zip(pathways, prefixes, strict=True)
    )
    inputs = _inputs(spec, frames, size)
    spectrograms = tuple(
        (name, value.channels, value.frames, value.mels)  # type: ignore[union-attr]
        for name, value in (spec.inputs or {}).items()
        if is_audio(value)
    )
    return NetworkPlan(
        input_shape=(sum(c for _, c in inputs), frames, size, size),
        inputs=inputs,
        pathways=plans,
        laterals=tuple(laterals),
        segments=segments,
        audio=spectrograms,
    )


def plan_network(spec: ModelSpec, *, frames: int, size: int) -> NetworkPlan:
    """Walk ``spec`` (already realised) for a ``frames`` x ``size`` x ``size`` clip.

    Positional encodings are sized for the spec's own clip, so that clip is planned too.

    Raises:
        SpecError: naming the key path of the first layer the clip does not fit, and the
            smallest clip the network accepts.
    """
    try:
        declared = None
        patch_stems = any(isinstance(p.stem, PatchStemSpec) for p in spec.get_pathways())
        if patch_stems and (frames, size) != (spec.clip.frames, spec.clip.size):
            declared = _plan(spec, spec.clip.frames, spec.clip.size)
        return _plan(spec, frames, size, declared)
    except _ClipDoesNotFit as exc:
        raise _clip_error(spec, exc, frames, size) from None


def _clip_error(spec: ModelSpec, exc: _ClipDoesNotFit, frames: int, size: int) -> SpecError:
    """The error of a clip that does not fit, at the key that is most likely the mistake: the
    layer's, or the clip's own where the spec's file set its clip and inherited the layer."""
    need_frames, need_size = min_clip(spec)
    if max(need_frames, need_size) >= CLIP_LIMIT:  # no clip fits: the clip is not the cause
        return SpecError(exc.message, path=exc.path)  # (a spectrogram's frames or mels are)
    key = "frames" if exc.axis == "frames" else "size"
    clip = ("clip", key)
    if (
        exc.axis is not None
        and (frames, size) == (spec.clip.frames, spec.clip.size)
        and is_own_key(spec, clip)
        and not is_own_key(spec, exc.path)
    ):
        few = f"{frames} frames are too few" if key == "frames" else f"{size} is too small"
        need = need_frames if key == "frames" else f"{need_size}x{need_size}"
        return SpecError(
            f"{few} for this network (it needs at least {need}): at "
            f"{format_key_path(exc.path)}, {exc.detail}",
            path=clip,
        )
    return SpecError(
        f"{exc.message} (a {frames}x{size}x{size} clip; this network needs at least "
        f"{need_frames} frame{'' if need_frames == 1 else 's'} of {need_size}x{need_size})",
        path=exc.path,
    )


def _fits(spec: ModelSpec, frames: int, size: int) -> bool:
    try:
        _plan(spec, frames, size)
    except _ClipDoesNotFit:
        return False
    return True


CLIP_LIMIT = 4096  # the longest and widest clip min_clip tries


def min_clip(spec: ModelSpec, limit: int = CLIP_LIMIT) -> tuple[int, int]:
    """The smallest (frames, size) the network accepts (strides and pools permitting)."""
    # NOTE: the long clip the sizes are tried with must split into the segments
    segments = spec.segments.count if spec.segments else 1
    long = limit - limit % segments
    # NOTE: a spectrogram keeps its own length, so an audio-visual network may take only
    # clips whose frames divide it: sizes are then tried at the spec's own clip length.
    probe = long if _fits(spec, long, limit - 1) else spec.clip.frames
    size = next((s for s in range(1, limit) if _fits(spec, probe, s)), limit)
    frames = next((t for t in range(1, limit) if _fits(spec, t, size)), limit)
    return frames, size
