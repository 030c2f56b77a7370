"""Untrimmed real videos and their annotation files: read, write, and name as data.

    ActivityNet JSON + folder of videos --ActivityNetVideos--> windows of frames (PyAV)
    any UntrimmedSource --save_activitynet--> ActivityNet JSON (+ fps per video)
                        --save_thumos14-----> CLASS_val.txt lists (``VIDEO START END``)

A video's file is found by its name in the videos folder, with any video suffix and with
or without ActivityNet's ``v_`` prefix; videos the annotation file lists but the folder
lacks are left out with one warning (ActivityNet's YouTube videos go missing as a rule).
Frames are decoded through :func:`harness.data.video.load_video_frames`, scaled so the
shorter side is the size asked for, and centre-cropped to a square.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import SpecError, warn
from harness.localization._source import UntrimmedSource, UntrimmedVideo, get_subset, save_text
from harness.localization.evaluate import Instance
from harness.localization.formats import load_activitynet
from harness.localization.untrimmed import (
    UNTRIMMED_KIND,
    SyntheticUntrimmed,
    UntrimmedDataSpec,
    is_untrimmed_name,
    load_untrimmed_spec,
)

__all__ = [
    "ANNOTATIONS_NAME",
    "VIDEOS_FOLDER",
    "ActivityNetVideos",
    "load_untrimmed",
    "save_activitynet",
    "save_thumos14",
]

ANNOTATIONS_NAME = "annotations.json"  # the ActivityNet JSON of an exported folder
VIDEOS_FOLDER = "videos"  # where an exported folder keeps its video files
FORMAT_VERSION = "harness-untrimmed-1"  # the ``version`` written into annotation files


def save_activitynet(
    videos: Iterable[UntrimmedVideo], path: Path, *, version: str = FORMAT_VERSION
) -> None:
    """Write ``videos`` (subset, duration, fps, annotations) as an ActivityNet JSON file,
    which :func:`harness.localization.load_activitynet` reads back exactly."""
    database = {
        video.name: {
            "subset": video.subset,
            "duration": video.duration,
            "fps": video.fps,
            "annotations": [
                {"segment": [item.start, item.end], "label": item.label} for item in video.instances
            ],
        }
        for video in videos
    }
    save_text(path, json.dumps({"version": version, "database": database}, indent=1) + "\n")


def save_thumos14(
    videos: Iterable[UntrimmedVideo], folder: Path, *, classes: list[str], subset: str = "val"
) -> list[Path]:
    """Write THUMOS14-style lists ``folder/CLASS_SUBSET.txt`` (``VIDEO START END``, seconds),
    one per class (empty for a class without instances); returns the files written."""
    lines: dict[str, list[str]] = {name: [] for name in classes}
    for video in videos:
        for item in video.instances:
            lines.setdefault(item.label, []).append(f"{video.name} {item.start!r} {item.end!r}")
    files = []
    for label, rows in lines.items():
        file = folder / f"{label}_{subset}.txt"
        save_text(file, "".join(f"{row}\n" for row in rows))
        files.append(file)
    return files


# ---------------------------------------------------------------- real videos


def _subset(path: Path, entry: dict[str, Any], name: str) -> str:
    """The subset of a video's entry, its ``fps`` checked (a positive number, if given)."""
    subset = entry.get("subset", "")
    if not isinstance(subset, str):
        raise SpecError("expected a subset name", path=("database", name, "subset"), file=str(path))
    fps = entry.get("fps")
    if fps is not None and (
        isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps < math.inf
    ):
        raise SpecError(
            f"expected a positive frame rate, got {fps!r}",
            path=("database", name, "fps"),
            file=str(path),
        )
    return subset


def _index_videos(folder: Path) -> dict[str, Path]:
    """Video files of ``folder`` by name: their stem, and their stem without ``v_``."""
    from harness.data.video import VIDEO_SUFFIXES

    files: dict[str, Path] = {}
    for file in sorted(folder.iterdir()):
        if file.suffix.lower() in VIDEO_SUFFIXES and file.is_file():
            files.setdefault(file.stem, file)
            files.setdefault(file.stem.removeprefix("v_"), file)
    return files


class ActivityNetVideos(UntrimmedSource):
    """Untrimmed video files listed in an ActivityNet-format JSON file.

    Args:
        annotations: the JSON file (``database`` -> video -> subset, annotations).
        videos: the folder of video files (default: ``videos/`` beside the JSON file if
            there is one, else the JSON file's folder).

    Raises:
        SpecError: the annotation file is not in the format (file and key path), or the
            videos folder does not exist.
    """

    def __init__(self, annotations: Path, videos: Path | None = None) -> None:
        self.annotations = Path(annotations)
        instances = load_activitynet(self.annotations)  # NOTE: checks the whole format
        if videos is None:
            beside = self.annotations.parent / VIDEOS_FOLDER
            videos = beside if beside.is_dir() else self.annotations.parent
        if not videos.is_dir():
            raise SpecError(f"no such folder: {videos}", path=("--videos",), file="<command line>")
        self.folder = videos
        raw = self.annotations.read_bytes()
        self.key = hashlib.sha256(raw + str(videos.resolve()).encode()).hexdigest()[:16]
        self.origin = str(self.annotations)
        self.classes = sorted({item.label for item in instances})
        by_video: dict[str, list[Instance]] = {}
        for item in instances:
            by_video.setdefault(item.video, []).append(item)
        files = _index_videos(videos)
        database = json.loads(raw)["database"]
        self._entries: list[tuple[str, str, tuple[Instance, ...]]] = []
        self._files: dict[str, Path] = {}
        for name, entry in database.items():
            subset = _subset(self.annotations, entry, name)
            if name in files:
                self._files[name] = files[name]
                self._entries.append((name, subset, tuple(by_video.get(name, ()))))
        if len(self._entries) < len(database):
            first = next(name for name in database if name not in files)
            warn(
                f"{len(database) - len(self._entries)} of the {len(database)} videos of "
                f"{self.annotations} are not in {videos} and are left out (first: {first})"
            )
        self._probed: dict[str, UntrimmedVideo] = {}

    def _video(self, name: str, subset: str, instances: tuple[Instance, ...]) -> UntrimmedVideo:
        from harness.data.video import probe_video

        if name not in self._probed:
            info = probe_video(self._files[name])
            self._probed[name] = UntrimmedVideo(name, subset, info.frames, info.fps, instances)
        return self._probed[name]

    def list_videos(self, split: str | None = None) -> list[UntrimmedVideo]:
        subset = None if split is None else get_subset(split)
        return [
            self._video(name, entry_subset, instances)
            for name, entry_subset, instances in self._entries
            if subset is None or entry_subset == subset
        ]

    def path(self, video: UntrimmedVideo | str) -> Path:
        """The file of ``video``."""
        return self._files[video if isinstance(video, str) else video.name]

    def load_frames(self, video: UntrimmedVideo, indices: np.ndarray, *, size: int) -> np.ndarray:
        from harness.data.video import load_video_frames

        frames = np.clip(np.asarray(indices, dtype=np.int64), 0, video.frames - 1)
        images = load_video_frames(self.path(video), frames, short_side=size)
        height, width = images.shape[1:3]
        top, left = (height - size) // 2, (width - size) // 2
        return np.ascontiguousarray(images[:, top : top + size, left : left + size])


def load_untrimmed(
    data: str | Path | UntrimmedDataSpec | UntrimmedSource, *, videos: Path | None = None
) -> UntrimmedSource:
    """The untrimmed videos named by ``data``.

    Args:
        data: ``synthetic-untrimmed[:tiny|small]`` or its YAML (the built-in benchmark);
            a folder holding ``annotations.json`` (and the videos, or a ``videos/``
            folder: what ``harness data export`` writes); an ActivityNet JSON file.
        videos: the folder of video files, where it is not beside the annotations.

    Raises:
        SpecError: ``data`` names none of these, or its files are not in the format.
    """
    if isinstance(data, UntrimmedSource):
        return data
    text = str(data).strip()
    if isinstance(data, UntrimmedDataSpec) or is_untrimmed_name(text):
        if videos is not None:
            raise SpecError(
                "the built-in benchmark has no video files; --videos goes with an annotation file",
                path=("--videos",),
                file="<command line>",
            )
        return SyntheticUntrimmed(
            load_untrimmed_spec(data if isinstance(data, UntrimmedDataSpec) else text)
        )
    path = Path(text).expanduser()
    annotations = path / ANNOTATIONS_NAME if path.is_dir() else path
    if annotations.suffix != ".json" or not annotations.is_file():
        raise SpecError(
            f"'{text}' is not untrimmed video data: expected {UNTRIMMED_KIND}[:tiny|small] (or "
            f"its YAML), a folder holding {ANNOTATIONS_NAME}, or an ActivityNet JSON file",
            path=("--data",),
            file="<command line>",
        )
    return ActivityNetVideos(annotations, videos)
