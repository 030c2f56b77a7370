"""Size limits of a realised spec, checked before anything is allocated.

A spec may name any width, depth or clip the schema's ranges allow, and expansion factors
multiply them further; some such networks cannot be built on any machine (a 10^6-wide
convolution is 10^13 weights). :func:`check_limits` rejects them from the spec alone, with
upper-bound estimates that need no torch:

- the input clip at batch 1: frames x size^2 x channels voxels;
- the number of blocks over all pathways;
- the parameters: per convolutional block two k-convolutions at its widest width (at its
  inner width, plus the 1x1x1 projections, for bottlenecks) and a shortcut; per
  transformer block ``(4 x attention scopes + 2 x mlp_ratio) x width^2``;
- the widest feature map: channels x voxels at the resolution a stage reads.

On the zoo the parameter estimate lies between 1x and 40x the real count, and the largest
zoo model stays 18x under the limit: the limits stop absurd specs, not big ones. Attention
matrices are not estimated (memory-efficient attention need not hold them).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from harness.errors import SpecError
from harness.spec.audio import reads_audio
from harness.spec.schema import ModelSpec, PathwaySpec, StageSpec

__all__ = ["MAX_ACTIVATION", "MAX_BLOCKS", "MAX_INPUT", "MAX_PARAMS", "check_limits"]

MAX_INPUT = 2**30  # voxels of one input clip (frames x size^2 x channels)
MAX_BLOCKS = 4096  # blocks over all stages and pathways
MAX_PARAMS = 2**33  # upper-bound estimate of the parameters (32 GiB in fp32)
MAX_ACTIVATION = 2**33  # upper-bound estimate of the widest feature map, in elements

KeyPath = tuple[str | int, ...]
Extent = tuple[int, int, int]  # (frames, height, width)


def _kernel_volume(node: Any) -> int:
    """Largest kernel volume a block or stem uses (temporal x spatial^2, or its triple)."""
    kernel = getattr(node, "kernel", None)
    if isinstance(kernel, tuple) and len(kernel) == 3:
        return math.prod(kernel)
    temporal = getattr(node, "temporal_kernel", 1)
    t = max(temporal) if isinstance(temporal, tuple) else int(temporal)
    k = int(getattr(node, "spatial_kernel", 1))
    return t * k * k


def _block_estimate(stage: StageSpec, block: Any, dim_in: int) -> tuple[int, int, int]:
    """(output width, parameter estimate, widest width inside) of one block of ``stage``."""
    dim_out = stage.out_width(block)
    outer = max(dim_in, dim_out)
    if getattr(block, "layout", "map") == "tokens":
        ratio = getattr(block, "mlp_ratio", 1.0)
        scopes = len(getattr(block, "attention", ("joint",)))
        params = math.ceil((4 * scopes + 2 * ratio) * outer * outer)
        return dim_out, params, math.ceil(max(1.0, ratio) * outer)
    kvol = _kernel_volume(block)
    inner = max(stage.inner(dim_out) or 0, getattr(block, "mid_width", 0) or 0)
    branches = getattr(block, "branches", None)
    if branches is not None:
        inner = max(inner, *branches.model_dump().values())
    if block.uses_inner:  # 1x1x1 in, one or two k-convs inside, 1x1x1 out, shortcut
        params = dim_in * inner + 2 * inner * inner * kvol + inner * dim_out + dim_in * dim_out
    else:  # two k-convs at the widest width, shortcut
        widest = max(outer, inner)
        params = 2 * widest * widest * kvol + dim_in * dim_out
    return dim_out, params, max(outer, inner)


def _block_count(stage: StageSpec) -> int:
    return stage.depth if stage.depth is not None else len(stage.blocks or ())


def _strided(extent: Extent, stride: tuple[int, int, int]) -> Extent:
    return (
        max(1, extent[0] // stride[0]),
        max(1, extent[1] // stride[1]),
        max(1, extent[2] // stride[2]),
    )


def _stem(pathway: PathwaySpec, dim_in: int, extent: Extent) -> tuple[int, int, Extent, int]:
    """(width, parameters, extent after the stem, widest feature map) of a pathway's stem."""
    stem = pathway.stem
    width = getattr(stem, "width", None)
    if width is None:  # no stem: the first stage reads the clip
        return dim_in, 0, extent, dim_in * math.prod(extent)
    widest = max(width, getattr(stem, "mid_width", 0) or 0, dim_in)
    params = 2 * widest * widest * _kernel_volume(stem)
    patch = getattr(stem, "patch", None)
    out = _strided(extent, patch if patch is not None else getattr(stem, "stride", (1, 1, 1)))
    activation = widest * math.prod(out)
    pool = getattr(stem, "pool", None)
    if pool is not None:
        out = _strided(out, pool.stride or pool.kernel)
    if getattr(stem, "pos_embed", "none") == "learned":
        params += width * math.prod(out)
    return width, params, out, activation


def _check_pathway(
    pathway: PathwaySpec, dim_in: int, extent: Extent, prefix: KeyPath
) -> tuple[dict[KeyPath, int], int]:
    """Check one pathway's feature maps; returns ({key path: parameter estimate}, width)."""
    width, stem_params, extent, activation = _stem(pathway, dim_in, extent)
    _check_activation(activation, (*prefix, "stem"))
    params = {(*prefix, "stem"): stem_params}
    for i, stage in enumerate(pathway.stages):
        path = (*prefix, "stages", i)
        count = _block_count(stage)
        kinds = [stage.block] if stage.block is not None else list(stage.blocks or ())
        widest_stage = width
        params[path] = 0
        for block in kinds:
            # NOTE: a repeated block reads its own output width from the second copy on.
            dim_in = width if stage.block is None else max(width, stage.out_width(block))
            dim_out, block_params, widest = _block_estimate(stage, block, dim_in)
            params[path] += block_params * (count if stage.block is not None else 1)
            widest_stage = max(widest_stage, widest)
            width = dim_out
        _check_activation(widest_stage * math.prod(extent), path)
        strides = (stage.temporal_stride, stage.spatial_stride, stage.spatial_stride)
        extent = _strided(extent, strides)
        if stage.pool is not None:
            extent = _strided(extent, stage.pool.stride or stage.pool.kernel)
    return params, width


def _check_activation(elements: int, path: KeyPath) -> None:
    if elements > MAX_ACTIVATION:
        raise SpecError(
            f"its feature maps would hold about {elements:.3g} values per clip "
            f"(limit {MAX_ACTIVATION:.3g}); reduce the widths or the clip",
            path=path,
        )


def _head_params(spec: ModelSpec, width: int) -> int:
    """Weights of the head's convolution and fully-connected layers, reading ``width``."""
    widths = [width]
    conv_ratio = getattr(spec.head, "conv_ratio", None)
    if conv_ratio is not None:
        widths.append(math.ceil(conv_ratio * width))
    widths += [*getattr(spec.head, "hidden", ()), spec.classes]
    return sum(a * b for a, b in itertools.pairwise(widths))


def _check_counts(spec: ModelSpec, frames: int, size: int) -> None:
    voxels = frames * size * size * sum(spec.input_channels().values())
    if voxels > MAX_INPUT:
        raise SpecError(
            f"an input clip of {frames} x {size} x {size} would hold {voxels:.3g} values "
            f"(limit {MAX_INPUT:.3g})",
            path=("clip",),
        )
    blocks = 0
    for p, pathway in enumerate(spec.get_pathways()):
        for i, stage in enumerate(pathway.stages):
            blocks += _block_count(stage)
            if blocks > MAX_BLOCKS:
                prefix: KeyPath = ("pathways", p) if spec.pathways is not None else ()
                raise SpecError(
                    f"the network would have more than {MAX_BLOCKS} blocks",
                    path=(*prefix, "stages", i, "depth"),
                )


def check_limits(spec: ModelSpec, *, frames: int | None = None, size: int | None = None) -> None:
    """Reject a realised spec too large to build (see the module docstring for the limits).

    Args:
        spec: a realised spec (:func:`harness.spec.realise`).
        frames: clip length it is built for (default: the spec's).
        size: crop size it is built for (default: the spec's).

    Raises:
        SpecError: naming the key path where the limit is crossed.
    """
    frames = frames or spec.clip.frames
    size = size or spec.clip.size
    _check_counts(spec, frames, size)
    channels = spec.input_channels()
    params: dict[KeyPath, int] = {}
    width = 0
    for p, pathway in enumerate(spec.get_pathways()):
        prefix: KeyPath = ("pathways", p) if spec.pathways is not None else ()
        dim_in = sum(channels.get(name, 0) for name in pathway.input)
        extent = (max(1, frames // pathway.frame_stride), size, size)
        if reads_audio(spec, pathway):  # a spectrogram's own time and frequency
            audio = spec.inputs[pathway.input[0]]  # type: ignore[index]
            frames_a, mels = audio.frames, audio.mels  # type: ignore[union-attr]
            extent = (max(1, frames_a // pathway.frame_stride), 1, mels)
        pathway_params, pathway_width = _check_pathway(pathway, dim_in, extent, prefix)
        params.update(pathway_params)
        width += pathway_width  # the default join concatenates the pathways
    params[("head",)] = _head_params(spec, width)
    total = sum(params.values())
    if total > MAX_PARAMS:
        largest = max(params, key=lambda path: params[path])
        raise SpecError(
            f"the network would have about {total:.3g} parameters "
            f"(limit {MAX_PARAMS:.3g}), most of them here; reduce its widths or depths",
            path=largest,
        )
