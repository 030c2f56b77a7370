"""Write the untrimmed benchmark out as real video files with their annotations.

    SyntheticUntrimmed --render, a chunk at a time--> frames --PyAV--> DIR/videos/VIDEO.mp4
                       --save_activitynet--> DIR/annotations.json (both splits)
                       --save_thumos14-----> DIR/thumos14/CLASS_val.txt (validation split)

The folder is what :func:`harness.localization.videos.load_untrimmed` reads back (``--data
DIR``), and ``harness evaluate-detections DIR/annotations.json`` or ``DIR/thumos14`` scores
detections against it. Encoding is as ``harness data export``'s (H.264 without B-frames,
or MPEG-4 Part 2): lossy, every frame kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.data.export import check_frame_size, get_video_codec, prepare_folder, write_clip
from harness.localization.untrimmed import SyntheticUntrimmed, UntrimmedDataSpec
from harness.localization.videos import (
    ANNOTATIONS_NAME,
    VIDEOS_FOLDER,
    save_activitynet,
    save_thumos14,
)

__all__ = ["THUMOS_FOLDER", "UntrimmedExport", "export_untrimmed"]

THUMOS_FOLDER = "thumos14"  # the THUMOS14-style lists of an exported folder
CHUNK = 64  # frames rendered at once (a frame is rendered in float32)


@dataclass(frozen=True)
class UntrimmedExport:
    """What :func:`export_untrimmed` wrote."""

    root: Path  # the folder
    videos: dict[str, int]  # files written per split
    frames: int  # frames over all videos
    instances: int  # action instances over all videos
    size: int  # frame width and height, pixels
    fps: int  # frame rate of the files
    codec: str  # the encoder used


def export_untrimmed(spec: UntrimmedDataSpec, root: Path, *, size: int = 64) -> UntrimmedExport:
    """Write ``spec``'s videos under ``root/videos`` with their annotation files.

    Args:
        spec: the untrimmed benchmark (its frame rate is the files').
        root: a new or empty folder.
        size: frame width and height in pixels (even, 16 to 2048).

    Raises:
        SpecError: a bad size, or a folder that cannot be written.
    """
    check_frame_size(size)
    codec = get_video_codec()
    root = root.expanduser()
    prepare_folder(root)
    source = SyntheticUntrimmed(spec)
    folder = root / VIDEOS_FOLDER
    folder.mkdir()
    counts = {}
    for split in ("train", "val"):
        videos = source.list_videos(split)
        for video in videos:
            chunks = [
                source.load_frames(
                    video, np.arange(start, min(start + CHUNK, video.frames)), size=size
                )
                for start in range(0, video.frames, CHUNK)
            ]
            write_clip(
                folder / f"{video.name}.mp4", np.concatenate(chunks), codec=codec, fps=spec.fps
            )
        counts[split] = len(videos)
    every = source.list_videos()
    save_activitynet(every, root / ANNOTATIONS_NAME)
    save_thumos14(source.list_videos("val"), root / THUMOS_FOLDER, classes=source.classes)
    return UntrimmedExport(
        root=root,
        videos=counts,
        frames=sum(v.frames for v in every),
        instances=sum(len(v.instances) for v in every),
        size=size,
        fps=spec.fps,
        codec=codec,
    )
