"""The compiler's bookkeeping: channels, strides and clip extents, without torch.

:func:`plan_network` walks the spec once, layer by layer, and records what every builder
will be given (input and output widths, strides, the extent each layer sees). Every shape
problem (a clip too short for the network's strides, a pool larger than its input) is
found here and named by its key path, before any module exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from harness.errors import SpecError
from harness.spec.schema import ConvStemSpec, ModelSpec, PoolSpec

__all__ = ["BlockPlan", "NetworkPlan", "StagePlan", "min_clip", "plan_network"]

Shape = tuple[int, int, int, int]  # (channels, frames, height, width)
KeyPath = tuple[str | int, ...]
_AXES = ("frames", "height", "width")


class _ClipTooSmall(SpecError):
    """The clip does not fit the network's strides or pools."""


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


@dataclass(frozen=True)
class StagePlan:
    path: KeyPath
    blocks: tuple[BlockPlan, ...]
    pool: PoolSpec | None
    shape_out: Shape


@dataclass(frozen=True)
class NetworkPlan:
    input_shape: Shape
    stem_shape: Shape
    stages: tuple[StagePlan, ...]

    @property
    def output_shape(self) -> Shape:
        return self.stages[-1].shape_out


def _stride(shape: Shape, stride: tuple[int, int, int], paths: tuple[KeyPath, ...]) -> Shape:
    """Extents after a 'same'-padded conv with ``stride``: ceil(n / s).

    ``paths`` names the key that sets the stride of each axis (t, h, w).
    """
    c, *extent = shape
    for axis, n, s, path in zip(_AXES, extent, stride, paths, strict=True):
        if n < s:
            raise _ClipTooSmall(
                f"clip too short or too small: {n} {axis} reach a stride of {s} here",
                path=path,
            )
    t, h, w = (math.ceil(n / s) for n, s in zip(extent, stride, strict=True))
    return (c, t, h, w)


def _pool(shape: Shape, pool: PoolSpec, path: KeyPath) -> Shape:
    c, *extent = shape
    stride = pool.stride or pool.kernel
    out = []
    for axis, n, k, s, p in zip(_AXES, extent, pool.kernel, stride, pool.padding, strict=True):
        if 2 * p > k:
            raise SpecError(
                f"padding {p} is more than half the kernel {k}", path=(*path, "padding")
            )
        size = (n + 2 * p - k) // s + 1
        if size < 1:
            raise _ClipTooSmall(
                f"clip too short or too small: the pool's kernel {k} exceeds the {n} {axis} "
                "that reach it",
                path=(*path, "kernel"),
            )
        out.append(size)
    return (c, out[0], out[1], out[2])


def _plan_stem(spec: ModelSpec, shape: Shape) -> Shape:
    stem = spec.stem
    if not isinstance(stem, ConvStemSpec):
        return shape
    shape = _stride(shape, stem.stride, (("stem", "stride"),) * 3)
    shape = (stem.width, *shape[1:])
    if stem.pool is not None:
        shape = _pool(shape, stem.pool, ("stem", "pool"))
    return shape


def _plan_stage(spec: ModelSpec, index: int, shape: Shape) -> StagePlan:
    stage = spec.stages[index]
    path: KeyPath = ("stages", index)
    blocks = []
    for j, block in enumerate(stage.block_specs()):
        dim_out = stage.out_width(block)
        stride = (stage.temporal_stride, stage.spatial_stride) if j == 0 else (1, 1)
        keys = ((*path, "temporal_stride"), (*path, "spatial_stride"), (*path, "spatial_stride"))
        out = _stride(shape, (stride[0], stride[1], stride[1]), keys)
        block_path = (*path, "blocks", j) if stage.blocks is not None else (*path, "block")
        blocks.append(
            BlockPlan(
                spec=block,
                path=block_path,
                dim_in=shape[0],
                dim_out=dim_out,
                dim_inner=stage.inner(dim_out),
                stride=stride,
                index=j,
                shape_out=(dim_out, *out[1:]),
            )
        )
        shape = (dim_out, *out[1:])
    if stage.pool is not None:
        shape = _pool(shape, stage.pool, (*path, "pool"))
    return StagePlan(path=path, blocks=tuple(blocks), pool=stage.pool, shape_out=shape)


def plan_network(spec: ModelSpec, *, frames: int, size: int) -> NetworkPlan:
    """Walk ``spec`` (already realised) for a ``frames`` x ``size`` x ``size`` clip.

    Raises:
        SpecError: naming the key path of the first layer the clip does not fit, and the
            smallest clip the network accepts.
    """
    try:
        return _plan(spec, frames, size)
    except _ClipTooSmall as exc:
        need_frames, need_size = min_clip(spec)
        raise SpecError(
            f"{exc.message} (a {frames}x{size}x{size} clip; this network needs at least "
            f"{need_frames} frames of {need_size}x{need_size})",
            path=exc.path,
        ) from None


def _plan(spec: ModelSpec, frames: int, size: int) -> NetworkPlan:
    shape: Shape = (spec.clip.channels, frames, size, size)
    stem_shape = _plan_stem(spec, shape)
    stages, shape = [], stem_shape
    for i in range(len(spec.stages)):
        stage = _plan_stage(spec, i, shape)
        stages.append(stage)
        shape = stage.shape_out
    return NetworkPlan(
        input_shape=(spec.clip.channels, frames, size, size),
        stem_shape=stem_shape,
        stages=tuple(stages),
    )


def _fits(spec: ModelSpec, frames: int, size: int) -> bool:
    try:
        _plan(spec, frames, size)
    except _ClipTooSmall:
        return False
    return True


def min_clip(spec: ModelSpec, limit: int = 4096) -> tuple[int, int]:
    """The smallest (frames, size) the network accepts (strides and pools permitting)."""
    size = next((s for s in range(1, limit) if _fits(spec, limit, s)), limit)
    frames = next((t for t in range(1, limit) if _fits(spec, t, size)), limit)
    return frames, size
