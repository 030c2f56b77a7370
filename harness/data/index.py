"""The checked list of videos of one split: what the layout names, minus what cannot be used.

Every entry a layout lists is checked before training starts: its file must lie inside the
data set's folders (:func:`~harness.data.layouts.data_roots`, links followed; a frame
folder may hold no link that leads out), its label must be in the class list, its file
must exist, and its headers must open with PyAV (frame folders must
hold images). Entries that fail are skipped and counted, with one warning per split
naming the reasons; a split with nothing left is a :class:`~harness.errors.SpecError`.
Header probes are cached (keyed by path, size and modification time), so a large data set
is probed once.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.data.layouts import Entry, Layout, Listing, data_roots, get_layout, within
from harness.data.video import DecodeError, VideoInfo, probe_folder, probe_video
from harness.errors import SpecError

if TYPE_CHECKING:
    from harness.data.spec import VideoDataSpec

__all__ = ["DataWarning", "VideoIndex", "VideoRecord", "get_cache_dir", "load_video_index"]

PROBE_THREADS = 8


class DataWarning(UserWarning):
    """Some videos of a data set were skipped (missing, unreadable, unknown label)."""


@dataclass(frozen=True)
class VideoRecord:
    """One usable video (or segment of one)."""

    path: str  # video file or frame folder
    label: int  # index into the class list
    first: int  # first frame of the segment
    frames: int  # frames in the segment
    fps: float  # frames per second (0: unknown)
    folder: bool  # a folder of frames rather than a video file


@dataclass(frozen=True)
class VideoIndex:
    """The classes and usable videos of one split, and what was skipped and why."""

    classes: tuple[str, ...]
    records: tuple[VideoRecord, ...]
    skipped: dict[str, int]  # reason -> number of entries


def get_cache_dir(cache_dir: str | None) -> Path:
    """``cache_dir``, else ``$HARNESS_DATA_CACHE``, else ``~/.cache/harness``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("HARNESS_DATA_CACHE", "~/.cache/harness")).expanduser()


def _probe_key(path: Path) -> str:
    stat = path.stat()
    return f"{path}|{stat.st_size}|{stat.st_mtime_ns}"


class _ProbeCache:
    def __init__(self, file: Path) -> None:
        self.file = file
        self.entries: dict[str, list[float]] = {}
        self.dirty = False
        try:
            self.entries = json.loads(file.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def probe(self, path: Path, folder: bool) -> VideoInfo:
        if folder:
            return probe_folder(path)
        try:
            key = _probe_key(path)
        except OSError as exc:
            raise DecodeError(f"{path}: {exc}") from None
        if key in self.entries:
            frames, fps = self.entries[key]
            return VideoInfo(frames=int(frames), fps=fps)
        info = probe_video(path)
        self.entries[key] = [info.frames, info.fps]
        self.dirty = True
        return info

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.entries))
            os.replace(tmp, self.file)
        except OSError:
            pass  # NOTE: a read-only cache only costs a new probe next time


def _segment(entry: Entry, info: VideoInfo) -> tuple[int, int]:
    """(first frame, frames) of the entry's segment within the video."""
    if entry.start is None or info.fps <= 0:
        return 0, info.frames
    first = max(0, math.floor(entry.start * info.fps))
    last = info.frames if entry.end is None else min(info.frames, math.ceil(entry.end * info.fps))
    return first, last - first


OUTSIDE = "outside the data root"


def _escapes(path: Path, roots: tuple[Path, ...], folder: bool) -> bool:
    """Whether ``path`` (or, for a frame folder, a link inside it) leads out of ``roots``."""
    if not within(path, roots):
        return True
    if not folder or not path.is_dir():
        return False
    with os.scandir(path) as items:
        return any(item.is_symlink() and not within(Path(item.path), roots) for item in items)


def _check(
    entry: Entry,
    classes: dict[str, int],
    cache: _ProbeCache,
    folder: bool,
    roots: tuple[Path, ...],
) -> VideoRecord | str:
    """A record for ``entry``, or the reason it is skipped."""
    # NOTE: first, so that nothing outside the data set is ever opened.
    if entry.path is not None and _escapes(entry.path, roots, folder):
        return OUTSIDE
    if entry.label not in classes:
        return "label not in the class list"
    if entry.path is None or not entry.path.exists():
        return "missing file"
    try:
        info = cache.probe(entry.path, folder)
    except DecodeError:
        return "unreadable or corrupt"
    first, frames = _segment(entry, info)
    if frames <= 0:
        return "empty segment"
    return VideoRecord(
        path=str(entry.path),
        label=classes[entry.label],
        first=first,
        frames=frames,
        fps=info.fps,
        folder=folder,
    )


def _summary(skipped: dict[str, list[str]]) -> str:
    parts = []
    for reason, names in sorted(skipped.items()):
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        parts.append(f"{len(names)} {reason} ({shown})")
    return "; ".join(parts)


def _list(spec: VideoDataSpec, layout: Layout, split: str) -> Listing:
    """The layout's listing of ``split``; a root it cannot read is a SpecError."""
    root = Path(spec.root).expanduser()
    if not layout.root_file and not root.is_dir():
        what = "a file" if root.is_file() else "not a folder"
        raise SpecError(
            f"{root} is {what}; the '{spec.layout}' layout reads a folder", path=("data", "root")
        )
    try:
        return layout.list_split(spec, split)
    except OSError as exc:
        where = exc.filename if exc.filename is not None else root
        raise SpecError(
            f"cannot read {where}: {exc.strerror or exc}", path=("data", "root")
        ) from None


def load_video_index(spec: VideoDataSpec, split: str) -> VideoIndex:
    """List, check and probe the videos of ``split`` (``"train"`` or ``"val"``).

    Raises:
        SpecError: the annotations cannot be read, there are no classes, or no video of
            the split is usable.
    """
    layout = get_layout(spec.layout)
    root = Path(spec.root).expanduser()
    listing = _list(spec, layout, split)
    if not listing.classes:
        raise SpecError(f"no classes found in {root}", path=("data", "root"))
    classes = {name: i for i, name in enumerate(listing.classes)}
    digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    cache = _ProbeCache(get_cache_dir(spec.cache_dir) / "probe" / f"{digest}.json")
    roots = data_roots(spec)
    with ThreadPoolExecutor(PROBE_THREADS) as pool:
        checked = list(
            pool.map(lambda e: _check(e, classes, cache, layout.frames, roots), listing.entries)
        )
    cache.save()
    records = [c for c in checked if isinstance(c, VideoRecord)]
    skipped: dict[str, list[str]] = defaultdict(list)
    for entry, result in zip(listing.entries, checked, strict=True):
        if isinstance(result, str):
            skipped[result].append(entry.name)
    if skipped:
        total = sum(len(v) for v in skipped.values())
        warnings.warn(
            f"{root}: skipped {total} of {len(checked)} videos of the '{split}' split: "
            f"{_summary(skipped)}",
            DataWarning,
            stacklevel=2,
        )
    if not records:
        detail = f" (skipped: {_summary(skipped)})" if skipped else ""
        raise SpecError(
            f"the '{split}' split of {root} has no usable videos{detail}", path=("data", "root")
        )
    counts = {reason: len(names) for reason, names in skipped.items()}
    return VideoIndex(classes=tuple(listing.classes), records=tuple(records), skipped=counts)
