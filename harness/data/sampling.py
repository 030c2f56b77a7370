"""Clip samplers: which source frames of a video make one clip.

A sampler maps a video of ``num_frames`` source frames to ``frames`` frame indices. In
training it draws from ``rng``; in evaluation (``rng is None``) it is deterministic and
``view`` of ``views`` picks one of several evenly spread temporal clips (multi-view
testing: the scores of every view are averaged).

    dense     ``frames`` consecutive frames from a random (train) or centred (test) start
    strided   ``frames`` frames ``stride`` apart (the spec's sampling rate), same starts
    uniform   ``frames`` frames evenly spread over the whole video, common random offset
    tsn       TSN segments: the video cut into ``frames`` segments, one frame from each
              (random in training, the centre in testing)

Indices past either end are clamped, so a short video repeats its first or last frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from harness.registry import Registry

__all__ = ["Sampler", "get_sampler", "list_samplers", "register_sampler", "sample_clip"]


class Sampler(Protocol):
    def __call__(
        self,
        num_frames: int,
        *,
        frames: int,
        stride: int,
        rng: np.random.Generator | None,
        view: int,
        views: int,
    ) -> np.ndarray: ...


SAMPLERS: Registry[Sampler] = Registry("sampler")


def register_sampler(name: str) -> Callable[[Sampler], Sampler]:
    """Decorator registering a sampler under ``name``."""
    return SAMPLERS.register(name)


def get_sampler(name: str) -> Sampler:
    """The sampler registered as ``name``; a SpecError listing the known ones otherwise."""
    return SAMPLERS.get(name)


def list_samplers() -> list[str]:
    """Registered sampler names, sorted."""
    return SAMPLERS.names()


def _start(
    span: int, num_frames: int, rng: np.random.Generator | None, view: int, views: int
) -> int:
    """First index of a window of ``span`` frames: random, centred, or view ``view``."""
    slack = max(num_frames - span, 0)
    if rng is not None:
        return int(rng.integers(0, slack + 1))
    if views == 1:
        return slack // 2
    return round(slack * view / (views - 1))


def _clamp(indices: np.ndarray, num_frames: int) -> np.ndarray:
    return np.clip(indices, 0, num_frames - 1).astype(np.int64)


@register_sampler("strided")
def sample_strided(
    num_frames: int,
    *,
    frames: int,
    stride: int,
    rng: np.random.Generator | None,
    view: int = 0,
    views: int = 1,
) -> np.ndarray:
    """``frames`` frames ``stride`` apart, from a random, centred or per-view start."""
    span = (frames - 1) * stride + 1
    start = _start(span, num_frames, rng, view, views)
    return _clamp(start + stride * np.arange(frames), num_frames)


@register_sampler("dense")
def sample_dense(
    num_frames: int,
    *,
    frames: int,
    stride: int,
    rng: np.random.Generator | None,
    view: int = 0,
    views: int = 1,
) -> np.ndarray:
    """``frames`` consecutive frames (the stride is ignored)."""
    return sample_strided(num_frames, frames=frames, stride=1, rng=rng, view=view, views=views)


@register_sampler("uniform")
def sample_uniform(
    num_frames: int,
    *,
    frames: int,
    stride: int,
    rng: np.random.Generator | None,
    view: int = 0,
    views: int = 1,
) -> np.ndarray:
    """``frames`` frames evenly spread over the video, shifted together by one offset."""
    step = num_frames / frames
    offset = rng.random() if rng is not None else (view + 0.5) / views
    return _clamp(np.floor((np.arange(frames) + offset) * step), num_frames)


@register_sampler("tsn")
def sample_tsn(
    num_frames: int,
    *,
    frames: int,
    stride: int,
    rng: np.random.Generator | None,
    view: int = 0,
    views: int = 1,
) -> np.ndarray:
    """TSN (Wang et al. 2016): one frame from each of ``frames`` equal segments."""
    step = num_frames / frames
    centre = (view + 0.5) / views
    offsets = rng.random(frames) if rng is not None else np.full(frames, centre)
    return _clamp(np.floor((np.arange(frames) + offsets) * step), num_frames)


def sample_clip(
    name: str,
    num_frames: int,
    *,
    frames: int,
    stride: int,
    rng: np.random.Generator | None = None,
    view: int = 0,
    views: int = 1,
) -> np.ndarray:
    """Frame indices of one clip with the sampler ``name`` (see the module docstring)."""
    if num_frames < 1:
        raise ValueError("a video needs at least one frame")
    sampler = get_sampler(name)
    return sampler(num_frames, frames=frames, stride=stride, rng=rng, view=view, views=views)
