"""Write the built-in synthetic benchmark out as real video files.

A newcomer without a video data set can still try the real-video path end to end:

    synthetic spec --SyntheticVideos.render--> frames (T, S, S, 3) uint8 --PyAV--> .mp4

in the class-folder layout that :mod:`harness.data.layouts` reads back (``folder``):

    DIR/train/CLASS/CLASS_0000.mp4 ...
    DIR/val/CLASS/CLASS_0000.mp4 ...

Every pixel follows from the spec's seed, as in the synthetic benchmark itself: the
``i``-th train clip of class ``c`` is synthetic video ``i * classes + c`` of the train split.
Frames are encoded lossily (H.264, or MPEG-4 Part 2 where PyAV lacks an H.264 encoder),
so the decoded pixels are close to, not equal to, the rendered ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import av
import numpy as np
from av.video.stream import VideoStream

from harness.data.spec import SyntheticDataSpec
from harness.data.synthetic import SyntheticVideos, list_synthetic_classes
from harness.errors import SpecError

__all__ = [
    "ExportSummary",
    "check_frame_size",
    "export_synthetic",
    "get_video_codec",
    "prepare_folder",
]

CODECS = ("h264", "mpeg4")  # in order of preference; both take yuv420p
SPLIT_FOLDERS = ("train", "val")  # the folder layout's split names


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_synthetic` wrote."""

    root: Path  # the folder holding train/ and val/
    classes: list[str]  # class folder names, in label order
    videos: dict[str, int]  # files written per split
    frames: int  # frames per video
    size: int  # frame width and height, pixels
    codec: str  # the encoder used


def get_video_codec() -> str:
    """The first encoder of :data:`CODECS` this PyAV build has."""
    for name in CODECS:
        try:
            av.codec.Codec(name, "w")
        except (av.codec.codec.UnknownCodecError, ValueError):
            continue
        return name
    raise SpecError(f"this PyAV build has none of the encoders {', '.join(CODECS)}")


MAX_SIZE = 2048  # frame width and height, pixels: a frame is rendered whole, in float32
MAX_FPS = 1000  # frame rate: FFmpeg's time bases are 32-bit fractions


def _check(clips: int, val_clips: int, size: int, fps: int) -> None:
    limits = {  # option: (value, least, most)
        "--clips": (clips, 1, None),
        "--val-clips": (val_clips, 1, None),
        "--fps": (fps, 1, MAX_FPS),
    }
    for option, (value, low, high) in limits.items():
        _check_range(option, value, low, high)
    check_frame_size(size)


def _check_range(option: str, value: int, low: int, high: int | None) -> None:
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if value < low else f"at most {high}"
        raise SpecError(f"must be {bound}, got {value}", path=(option,), file="<command line>")


def check_frame_size(size: int) -> None:
    """``--size`` of an export: 16 to MAX_SIZE pixels, even (yuv420p halves the colour
    planes); a one-line SpecError otherwise."""
    _check_range("--size", size, 16, MAX_SIZE)
    if size % 2:
        raise SpecError(
            f"must be even (yuv420p halves the colour planes), got {size}",
            path=("--size",),
            file="<command line>",
        )


def prepare_folder(root: Path) -> None:
    """Create ``root`` (an empty or new folder), as a one-line error when it cannot be."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        if any(root.iterdir()):
            raise SpecError(
                f"{root} is not empty; export into a new or empty folder",
                path=("DIR",),
                file="<command line>",
            )
        probe = root / ".harness-write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise SpecError(
            f"cannot write to {root}: {exc.strerror or exc}", path=("DIR",), file="<command line>"
        ) from None


def write_clip(path: Path, frames: np.ndarray, *, codec: str, fps: int) -> None:
    """Encode ``frames`` ((T, H, W, 3) uint8 RGB, even H and W) as one video file."""
    height, width = frames.shape[1:3]
    with av.open(str(path), "w") as container:
        stream = cast(VideoStream, container.add_stream(codec, rate=fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "h264":
            # NOTE: near-lossless and without B-frames: small clips, exact frame counts.
            stream.options = {"crf": "12", "bf": "0"}
        else:
            stream.bit_rate = 40 * width * height * fps // 8
        for image in frames:
            container.mux(stream.encode(_yuv420p(image)))
        container.mux(stream.encode())


def _yuv420p(image: np.ndarray) -> av.VideoFrame:
    """``image`` ((H, W, 3) uint8 RGB) as a yuv420p frame whose rows' padding is zero.

    NOTE: FFmpeg leaves the padding at the end of each row of a frame it allocates
    uninitialised, and libx264 reads it: encoding the same frames gave different files now
    and then (7 exports in 150 at 32 x 32), so the padding is cleared here.
    """
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    frame = frame.reformat(format="yuv420p")
    for plane in frame.planes:
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
        clean = np.zeros_like(rows)
        clean[:, : plane.width] = rows[:, : plane.width]
        plane.update(clean.tobytes())
    return frame


def export_synthetic(
    spec: SyntheticDataSpec,
    root: Path,
    *,
    clips: int = 16,
    val_clips: int | None = None,
    classes: int | None = None,
    size: int = 64,
    fps: int = 25,
) -> ExportSummary:
    """Write ``spec``'s videos under ``root`` as ``{train,val}/CLASS/CLASS_NNNN.mp4``.

    Args:
        spec: the synthetic benchmark (its seed, length, noise and so on).
        root: a new or empty folder.
        clips: training videos per class.
        val_clips: validation videos per class (default: a quarter of ``clips``, at least 1).
        classes: the first this many classes of the benchmark (default: the spec's).
        size: frame width and height in pixels (even).
        fps: frame rate written into the files.

    Raises:
        SpecError: a bad count or size, or a folder that cannot be written.
    """
    val_clips = max(1, clips // 4) if val_clips is None else val_clips
    _check(clips, val_clips, size, fps)
    classes = spec.classes if classes is None else classes
    if not 2 <= classes <= spec.classes:
        raise SpecError(
            f"must be between 2 and {spec.classes} (the benchmark's classes), got {classes}",
            path=("--classes",),
            file="<command line>",
        )
    codec = get_video_codec()
    root = root.expanduser()
    prepare_folder(root)
    spec = spec.model_copy(update={"classes": classes, "cache_dir": None})
    names = list_synthetic_classes(classes)
    counts = dict(zip(SPLIT_FOLDERS, (clips, val_clips), strict=True))
    every = np.arange(spec.video_frames)
    for split, per_class in counts.items():
        videos = SyntheticVideos(spec, split)
        for label, name in enumerate(names):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                frames = videos.render(i * classes + label, every, size)
                write_clip(folder / f"{name}_{i:04d}.mp4", frames, codec=codec, fps=fps)
    videos_written = {split: n * classes for split, n in counts.items()}
    return ExportSummary(root, names, videos_written, spec.video_frames, size, codec)
