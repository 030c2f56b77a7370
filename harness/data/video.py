"""Reading frames: video files through PyAV, and folders of pre-extracted images.

Only the frames a clip needs are decoded: the wanted indices are grouped into runs, and
for each run the demuxer seeks to the key frame before it and decodes forward to its last
frame. Frames are converted to RGB and scaled (by libswscale, during the conversion) so
that their shorter side is ``short_side``, which keeps the cost of large sources low.

When ``short_side`` is at most a half of the source's, decoders that can (MPEG-4 Part 2
such as Xvid and DivX, which UCF101 and HMDB51 use; MPEG-1/2, H.263, MJPEG) decode at a
half, a quarter or an eighth of the size directly (FFmpeg's ``lowres``: a smaller inverse
DCT and motion compensation), never below ``short_side``; libswscale scales the rest of
the way. For 32-pixel clips of 320x240 MPEG-4 that takes about a fifth off the cost;
the frames differ from a full decode by a few grey levels on average (``lowres=False``
turns it off). Other decoders (H.264, HEVC, VP9, AV1) ignore it and decode full frames.

Decoders and scalers run single-threaded: the loader's worker processes are the
parallelism, and a thread pool started for every clip costs more than it saves.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from harness.errors import HarnessError

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "DecodeError",
    "VideoInfo",
    "list_frame_files",
    "load_folder_frames",
    "load_video_frames",
    "probe_folder",
    "probe_video",
]

VIDEO_SUFFIXES = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Wanted frames further apart than this are reached by a new seek, not by decoding through.
MAX_DECODE_GAP = 48
# Deepest reduced-resolution decoding asked for (FFmpeg's lowres: size / 2**LOWRES).
MAX_LOWRES = 3
# NOTE: PyAV 17 scales in a thread pool per context by default (threads=0): its start
# costs more than a small frame's conversion, loader workers are the parallelism, and a
# forked child would wait forever on its parent's pool. Older versions take no argument.
_SCALE_THREADS = {"threads": 1} if int(av.__version__.split(".")[0]) >= 17 else {}


class DecodeError(HarnessError):
    """A video or frame folder that cannot be read (missing, corrupt, empty)."""


@dataclass(frozen=True)
class VideoInfo:
    """What sampling needs to know of a video."""

    frames: int  # number of frames
    fps: float  # frames per second (0 when unknown, as for frame folders)


_READ_ERRORS = (av.FFmpegError, OSError, ValueError, IndexError, EOFError)


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count and rate of a video file, from its headers (no decoding).

    Raises:
        DecodeError: the file is missing, not a video, or has no frames.
    """
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            frames = stream.frames
            if frames <= 0:
                if stream.duration is not None and stream.time_base is not None:
                    seconds = float(stream.duration * stream.time_base)
                else:
                    seconds = (container.duration or 0) / av.time_base
                frames = round(seconds * float(rate))
    except _READ_ERRORS as exc:
        raise DecodeError(f"{path}: cannot read video ({exc})") from None
    if frames <= 0:
        raise DecodeError(f"{path}: video has no frames")
    return VideoInfo(frames=int(frames), fps=float(rate))


def _runs(wanted: list[int]) -> list[list[int]]:
    runs: list[list[int]] = [[wanted[0]]]
    for index in wanted[1:]:
        if index - runs[-1][-1] > MAX_DECODE_GAP:
            runs.append([index])
        else:
            runs[-1].append(index)
    return runs


def _scaled(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    if short_side is None:
        return width, height
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _lowres(width: int, height: int, short_side: int | None) -> int:
    """The deepest reduced-resolution level whose frames are still ``short_side`` or more."""
    if short_side is None:
        return 0
    level = 0
    while level < MAX_LOWRES and min(width, height) >> (level + 1) >= short_side:
        level += 1
    return level


_LOCAL = threading.local()


def _reformatter() -> av.video.reformatter.VideoReformatter:
    """This thread's libswscale context holder, kept from one video to the next.

    NOTE: a scaling context costs about as much to build as converting a few small
    frames; ``frame.to_ndarray(width=...)`` builds one for every frame, and a reformatter
    per video one per clip. Videos of one data set mostly share their size, so one
    reformatter per thread (per loader worker) mostly keeps its context for good. It is
    rebuilt after a fork: a child must not use its parent's.
    """
    pid = os.getpid()
    if getattr(_LOCAL, "pid", None) != pid:
        _LOCAL.pid, _LOCAL.reformatter = pid, av.video.reformatter.VideoReformatter()
    return _LOCAL.reformatter


class _Converter:
    """Frames -> RGB arrays of one size, through the thread's libswscale context.

    The size follows from the coded (full) frame size, once per video, so that it does not
    depend on the level the decoder worked at (from the first frame when the container
    does not say).
    """

    def __init__(self, width: int, height: int, short_side: int | None) -> None:
        self.short_side = short_side
        self.size = _scaled(width, height, short_side) if width and height else None
        self.reformatter = _reformatter()

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        if self.size is None:
            self.size = _scaled(frame.width, frame.height, self.short_side)
        width, height = self.size
        rgb = self.reformatter.reformat(
            frame,
            width=width,
            height=height,
            format="rgb24",
            interpolation="AREA",
            **_SCALE_THREADS,
        )
        return rgb.to_ndarray()


def _open_stream(
    container: av.container.InputContainer, short_side: int | None, lowres: bool
) -> tuple[av.video.stream.VideoStream, _Converter]:
    """The first video stream, set to decode at the lowest useful resolution."""
    stream = container.streams.video[0]
    codec = stream.codec_context
    codec.thread_count = 1  # NOTE: as for scaling: a decoder thread pool per clip costs more
    width, height = codec.width, codec.height  # NOTE: read before the decoder opens
    level = _lowres(width, height, short_side) if lowres and width and height else 0
    if level:
        codec.options = {**codec.options, "lowres": str(level)}  # ignored where unsupported
    return stream, _Converter(width, height, short_side)


def _decode_run(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    run: list[int],
    convert: _Converter,
    out: dict[int, np.ndarray],
) -> None:
    fps = float(stream.average_rate or stream.guessed_rate or 25)
    base = stream.time_base or Fraction(1, 1)
    start = stream.start_time or 0
    container.seek(start + int(run[0] / fps / base), stream=stream, backward=True)
    pending = list(run)
    last = None
    frames_per_tick = float(base) * fps  # NOTE: floats, not Fractions, in the frame loop
    for position, frame in enumerate(container.decode(stream)):
        pts = frame.pts
        index = round((pts - start) * frames_per_tick) if pts is not None else position
        if index < pending[0]:
            last = frame
            continue
        image = convert(frame)
        while pending and pending[0] <= index:
            out[pending.pop(0)] = image
        if not pending:
            return
        last = frame
    if last is None:
        raise DecodeError("no frame could be decoded")
    image = convert(last)
    for index in pending:  # past the end of the stream: repeat its last frame
        out[index] = image


def load_video_frames(
    path: str | Path,
    indices: np.ndarray,
    *,
    short_side: int | None = None,
    lowres: bool = True,
) -> np.ndarray:
    """Decode frames ``indices`` of a video as a ``(T, H, W, 3)`` uint8 RGB array.

    Args:
        path: the video file.
        indices: frame numbers (0 = first frame), in any order, repeats allowed.
        short_side: scale frames so that their shorter side has this many pixels.
        lowres: let decoders that can work at a reduced size (see the module docstring);
            the output size is the same either way, the pixels differ by a few levels.

    Raises:
        DecodeError: the file cannot be opened or decoded.
    """
    wanted = sorted({int(i) for i in indices})
    decoded: dict[int, np.ndarray] = {}
    try:
        with av.open(str(path)) as container:
            stream, convert = _open_stream(container, short_side, lowres)
            for run in _runs(wanted):
                _decode_run(container, stream, run, convert, decoded)
    except _READ_ERRORS as exc:
        raise DecodeError(f"{path}: cannot decode ({exc})") from None
    except DecodeError as exc:
        raise DecodeError(f"{path}: {exc}") from None
    return np.stack([decoded[int(i)] for i in indices])


def _natural_key(path: Path) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def list_frame_files(folder: str | Path) -> list[Path]:
    """The image files of a frame folder, in natural order (img_2 before img_10)."""
    files = [p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=_natural_key)


# The first bytes of the image formats of IMAGE_SUFFIXES (WebP: RIFF, 4 bytes of size, WEBP).
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"RIFF")


def _is_image(path: Path) -> bool:
    """Whether ``path`` starts as an image of a known format does (no decoding)."""
    with path.open("rb") as handle:
        head = handle.read(12)
    if head.startswith(b"RIFF"):
        return head[8:12] == b"WEBP"
    return head.startswith(_IMAGE_MAGIC)


def probe_folder(folder: str | Path) -> VideoInfo:
    """Frame count of a folder of pre-extracted frames (its first file checked to be an
    image, by its first bytes)."""
    try:
        files = list_frame_files(folder)
        if files and not _is_image(files[0]):
            raise DecodeError(f"{files[0]}: not an image")
    except OSError as exc:
        raise DecodeError(f"{folder}: cannot list frames ({exc})") from None
    if not files:
        raise DecodeError(f"{folder}: no image files")
    return VideoInfo(frames=len(files), fps=0.0)


def load_folder_frames(
    folder: str | Path, indices: np.ndarray, *, short_side: int | None = None
) -> np.ndarray:
    """Read frames ``indices`` of a frame folder as a ``(T, H, W, 3)`` uint8 RGB array.

    Raises:
        DecodeError: an image cannot be read.
    """
    import cv2
    from cv2.utils import logging as cv2_logging

    # NOTE: OpenCV logs a broken image on stderr itself; the DecodeError says it, once
    cv2_logging.setLogLevel(cv2_logging.LOG_LEVEL_FATAL)

    files = list_frame_files(folder)
    images: dict[int, np.ndarray] = {}
    for index in sorted({int(i) for i in indices}):
        image = cv2.imread(str(files[min(index, len(files) - 1)]), cv2.IMREAD_COLOR)
        if image is None:
            raise DecodeError(f"{files[min(index, len(files) - 1)]}: cannot read image")
        height, width = image.shape[:2]
        size = _scaled(width, height, short_side)
        if size != (width, height):
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        images[index] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return np.stack([images[int(i)] for i in indices])
