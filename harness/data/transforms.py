"""Clip transforms: resize, crops, flip and normalisation, on whole clips.

A transform takes a ``(T, C, H, W)`` float clip with intensities in [0, 1] and the item's
random generator (``None`` in evaluation) and returns a clip. Every frame of a clip gets
the same crop and the same flip, so motion is left intact. Transforms are registered by
name and built with :func:`create_transform`; :func:`create_train_transform` and
:func:`create_test_transform` compose the standard pipelines:

    train: random resized crop -> [horizontal flip] -> normalise
    test:  centre crop (one view) | short-side resize -> crop ``view`` of ``views`` -> normalise
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from harness.registry import Registry

__all__ = [
    "ClipTransform",
    "create_test_transform",
    "create_train_transform",
    "create_transform",
    "list_transforms",
    "register_transform",
]

ClipTransform = Callable[[torch.Tensor, np.random.Generator | None], torch.Tensor]
TRANSFORMS: Registry[Callable[..., ClipTransform]] = Registry("transform")


def register_transform(
    name: str,
) -> Callable[[Callable[..., ClipTransform]], Callable[..., ClipTransform]]:
    """Decorator registering a transform factory under ``name``."""
    return TRANSFORMS.register(name)


def create_transform(name: str, **kwargs: Any) -> ClipTransform:
    """Build the transform registered as ``name`` with keyword arguments ``kwargs``."""
    return TRANSFORMS.get(name)(**kwargs)


def list_transforms() -> list[str]:
    """Registered transform names, sorted."""
    return TRANSFORMS.names()


def _resize(clip: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if clip.shape[-2:] == (height, width):
        return clip
    down = height < clip.shape[-2]
    return F.interpolate(
        clip, size=(height, width), mode="bilinear", align_corners=False, antialias=down
    )


@register_transform("short_side_resize")
def create_short_side_resize(*, size: int) -> ClipTransform:
    """Scale so that the shorter side is ``size`` pixels, keeping the aspect ratio."""

    def apply(clip: torch.Tensor, rng: np.random.Generator | None) -> torch.Tensor:
        h, w = clip.shape[-2:]
        scale = size / min(h, w)
        return _resize(clip, max(size, round(h * scale)), max(size, round(w * scale)))

    return apply


def _crop_box(
    h: int, w: int, scale: tuple[float, float], ratio: tuple[float, float], rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box: (top, left, height, width)."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        cw = round(math.sqrt(target * aspect))
        ch = round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    side = min(h, w)  # fall back to the centre square
    return (h - side) // 2, (w - side) // 2, side, side


@register_transform("random_resized_crop")
def create_random_resized_crop(
    *,
    size: int,
    scale: tuple[float, float] = (0.25, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> ClipTransform:
    """Crop a random area fraction ``scale`` and aspect ``ratio``; resize to ``size``."""

    def apply(clip: torch.Tensor, rng: np.random.Generator | None) -> torch.Tensor:
        h, w = clip.shape[-2:]
        if rng is None:
            return create_center_crop(size=size)(clip, None)
        top, left, ch, cw = _crop_box(h, w, scale, ratio, rng)
        return _resize(clip[..., top : top + ch, left : left + cw], size, size)

    return apply


@register_transform("center_crop")
def create_center_crop(*, size: int) -> ClipTransform:
    """The central ``size`` x ``size`` square (upscaled first if the clip is smaller)."""
    return create_spatial_crop(size=size, view=0, views=1)


@register_transform("spatial_crop")
def create_spatial_crop(*, size: int, view: int, views: int) -> ClipTransform:
    """Crop ``view`` of ``views`` squares spread along the long side (3: three-crop)."""

    def apply(clip: torch.Tensor, rng: np.random.Generator | None) -> torch.Tensor:
        h, w = clip.shape[-2:]
        if min(h, w) < size:
            clip = create_short_side_resize(size=size)(clip, rng)
            h, w = clip.shape[-2:]
        where = 0.5 if views == 1 else view / (views - 1)
        top = round((h - size) * (where if h > w else 0.5))
        left = round((w - size) * (where if w >= h else 0.5))
        return clip[..., top : top + size, left : left + size]

    return apply


@register_transform("flip")
def create_flip(*, p: float = 0.5, negate_channels: Sequence[int] = ()) -> ClipTransform:
    """Mirror left-right with probability ``p``; ``negate_channels`` hold x-flow (1 - x)."""

    def apply(clip: torch.Tensor, rng: np.random.Generator | None) -> torch.Tensor:
        if rng is None or rng.random() >= p:
            return clip
        clip = clip.flip(-1)
        if negate_channels:
            clip = clip.clone()
            for channel in negate_channels:
                clip[:, channel] = 1.0 - clip[:, channel]
        return clip

    return apply


@register_transform("normalize")
def create_normalize(*, mean: Sequence[float], std: Sequence[float]) -> ClipTransform:
    """(x - mean) / std per channel, on [0, 1] intensities."""
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def apply(clip: torch.Tensor, rng: np.random.Generator | None) -> torch.Tensor:
        return (clip - mean_t) / std_t

    return apply


def _compose(steps: list[ClipTransform]) -> ClipTransform:
    def apply(clip: torch.Tensor, rng: np.random.Generator | None) -> torch.Tensor:
        for step in steps:
            clip = step(clip, rng)
        return clip

    return apply


def create_train_transform(
    *,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    crop: bool = True,
    scale: tuple[float, float] = (0.25, 1.0),
    flip: bool = True,
    negate_channels: Sequence[int] = (),
) -> ClipTransform:
    """Random resized crop (when ``crop``), optional flip, then normalisation."""
    steps = []
    if crop:
        steps.append(create_transform("random_resized_crop", size=size, scale=scale))
    if flip:
        steps.append(create_transform("flip", negate_channels=negate_channels))
    steps.append(create_transform("normalize", mean=mean, std=std))
    return _compose(steps)


def create_test_transform(
    *,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    view: int = 0,
    views: int = 1,
) -> ClipTransform:
    """One view: centre crop. Several: resize the short side to ``size``, crop ``view``."""
    steps = []
    if views > 1:
        steps.append(create_transform("short_side_resize", size=size))
    steps.append(create_transform("spatial_crop", size=size, view=view, views=views))
    steps.append(create_transform("normalize", mean=mean, std=std))
    return _compose(steps)
