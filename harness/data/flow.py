"""Optical flow for two-stream models, computed with OpenCV and cached to disk.

Flow between consecutive frames is computed on grey frames with OpenCV's DIS (Kroeger et
al. 2016, the default) or Farneback's algorithm, clipped to [-20, 20] pixels and stored
as uint8 with ``(flow + 20) * 255 / 40``: the convention of the TSN and I3D flow streams.
The data pipeline divides by 255 and normalises with mean 0.5 and std 0.5, so the network
sees ``flow / 20`` in [-1, 1]. Channel 0 is the horizontal component (negated by flips).

A video's flow is computed once, for all of its frames, and kept in ``cache_dir`` as a
``.npy`` file keyed by the video's path, size, modification time, algorithm and scale.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness.data._io import cache_file, save_array
from harness.registry import Registry

__all__ = [
    "FLOW_BOUND",
    "FLOW_MEAN",
    "FLOW_STD",
    "compute_flow",
    "list_flow_algorithms",
    "load_flow",
    "quantize_flow",
    "register_flow_algorithm",
]

FLOW_BOUND = 20.0  # pixels; larger displacements are clipped
FLOW_MEAN = (0.5, 0.5)  # of the uint8 encoding / 255: (flow / 20) lands in [-1, 1]
FLOW_STD = (0.5, 0.5)

FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (grey a, grey b) -> (H, W, 2)
FLOW: Registry[Callable[[], FlowFn]] = Registry("flow algorithm")


def register_flow_algorithm(name: str) -> Callable[[Callable[[], FlowFn]], Callable[[], FlowFn]]:
    """Decorator registering a factory of a two-frame flow function under ``name``."""
    return FLOW.register(name)


def list_flow_algorithms() -> list[str]:
    """Registered optical-flow algorithms, sorted."""
    return FLOW.names()


@register_flow_algorithm("dis")
def _create_dis() -> FlowFn:
    import cv2

    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return lambda a, b: np.asarray(dis.calc(a, b, np.empty((0,), np.float32)))


@register_flow_algorithm("farneback")
def _create_farneback() -> FlowFn:
    import cv2

    # OpenCV's documented example parameters (pyramid 0.5, 3 levels, window 15).
    def farneback(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        empty = np.empty((0,), np.float32)
        return np.asarray(cv2.calcOpticalFlowFarneback(a, b, empty, 0.5, 3, 15, 3, 5, 1.2, 0))

    return farneback


def _grey(frames: np.ndarray) -> np.ndarray:
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(frames.astype(np.float32) @ weights, 0, 255).astype(np.uint8)


def compute_flow(frames: np.ndarray, algorithm: str = "dis", *, pairs: bool = False) -> np.ndarray:
    """Optical flow of a ``(N, H, W, 3)`` uint8 clip, as ``(N, H, W, 2)`` float32 pixels.

    Args:
        frames: RGB frames.
        algorithm: a registered algorithm (``dis`` or ``farneback``).
        pairs: frames hold N/2 (first, second) pairs interleaved; flow of each pair is
            returned once per pair. Otherwise flow runs from frame i to i + 1 and the last
            frame repeats the flow before it.
    """
    flow_fn = FLOW.get(algorithm)()
    grey = _grey(frames)
    if pairs:
        return np.stack([flow_fn(grey[i], grey[i + 1]) for i in range(0, len(grey), 2)])
    if len(grey) == 1:
        return np.zeros((*grey.shape, 2), dtype=np.float32)
    flows = [flow_fn(grey[i], grey[i + 1]) for i in range(len(grey) - 1)]
    flows.append(flows[-1])
    return np.stack(flows).astype(np.float32)


def quantize_flow(flow: np.ndarray) -> np.ndarray:
    """Clip to [-20, 20] pixels and map linearly onto uint8 [0, 255]."""
    clipped = np.clip(flow, -FLOW_BOUND, FLOW_BOUND)
    return np.round((clipped + FLOW_BOUND) * (255.0 / (2 * FLOW_BOUND))).astype(np.uint8)


def load_flow(
    path: str | Path,
    indices: np.ndarray,
    *,
    num_frames: int,
    read_frames: Callable[[np.ndarray], np.ndarray],
    algorithm: str,
    short_side: int | None,
    cache_dir: Path,
) -> np.ndarray:
    """Quantised flow at frames ``indices`` of a video, ``(T, H, W, 2)`` uint8.

    Computes (and caches) the flow of the whole video on first use.

    Args:
        path: the video (or frame folder); its identity keys the cache.
        indices: frame numbers.
        num_frames: frames in the video.
        read_frames: decodes frame numbers into ``(N, H, W, 3)`` uint8 RGB.
        algorithm: a registered algorithm.
        short_side: the frame scale the flow is computed at (part of the cache key).
        cache_dir: where cached flow lives.
    """
    target = cache_file(Path(path), "flow", algorithm, short_side, cache_dir=cache_dir)
    if not target.is_file():
        frames = read_frames(np.arange(num_frames))
        save_array(quantize_flow(compute_flow(frames, algorithm)), target)
    cached = np.load(target, mmap_mode="r")
    return np.ascontiguousarray(cached[np.clip(indices, 0, len(cached) - 1)])
