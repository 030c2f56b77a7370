"""What every source of untrimmed videos offers: its videos, their frames, their truth.

Two sources implement :class:`UntrimmedSource`: the built-in benchmark
(:class:`harness.localization.untrimmed.SyntheticUntrimmed`, rendered on demand) and real
video files listed in an ActivityNet-format JSON
(:class:`harness.localization.videos.ActivityNetVideos`, decoded through PyAV). Feature
extraction and export read both through this interface only.

Time convention: frame ``f`` of a video at ``fps`` frames per second covers the seconds
``[f / fps, (f + 1) / fps)``; an action over frames ``[start, end)`` is the segment
``[start / fps, end / fps]`` in seconds.
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.localization.evaluate import Instance

__all__ = ["SUBSETS", "UntrimmedSource", "UntrimmedVideo", "get_subset", "save_text"]

# Split names of harness -> ActivityNet's subset names (what annotation files say).
SUBSETS = {"train": "training", "val": "validation"}


def get_subset(split: str) -> str:
    """ActivityNet's subset name for ``split`` (``train`` -> ``training``); other names
    (``training``, ``testing``) stand for themselves."""
    return SUBSETS.get(split, split)


def save_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass(frozen=True)
class UntrimmedVideo:
    """One untrimmed video: its name, subset, length and ground-truth actions."""

    name: str  # video id: the annotation file's key, the file's stem
    subset: str  # ActivityNet subset: training, validation (or testing)
    frames: int  # number of frames
    fps: float  # frames per second
    instances: tuple[Instance, ...] = ()  # ground-truth actions, seconds

    @property
    def duration(self) -> float:
        """Length in seconds (``frames / fps``)."""
        return self.frames / self.fps


class UntrimmedSource(ABC):
    """A set of untrimmed videos whose frames can be read a window at a time."""

    key: str  # identity of the data (every pixel and annotation), for caches
    origin: str  # where the videos come from (a data name, an annotation file), for errors
    classes: list[str]  # action names, in label order

    @abstractmethod
    def list_videos(self, split: str | None = None) -> list[UntrimmedVideo]:
        """The videos of ``split`` (``train``, ``val`` or an ActivityNet subset; None: all)."""

    @abstractmethod
    def load_frames(self, video: UntrimmedVideo, indices: np.ndarray, *, size: int) -> np.ndarray:
        """Frames ``indices`` of ``video`` as ``(T, size, size, 3)`` uint8 RGB.

        Indices past either end read the first or last frame.
        """

    def ground_truth(self, split: str | None = None) -> list[Instance]:
        """The action instances of ``split``'s videos, in seconds."""
        return [item for video in self.list_videos(split) for item in video.instances]

    def load_window(
        self, video: UntrimmedVideo, start: int, frames: int, *, size: int
    ) -> np.ndarray:
        """``frames`` consecutive frames from ``start`` (``(frames, size, size, 3)`` uint8)."""
        return self.load_frames(video, np.arange(start, start + frames), size=size)
