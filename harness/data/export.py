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

The audio-visual benchmark (``synthetic-av``, ``sound: true``) is written with its sound:
a mono track, rendered at the files' frame rate (so that it stays aligned with the
frames) and encoded as AAC in ``.mp4`` files, or as 16-bit PCM in ``.mkv`` files where
PyAV has no AAC encoder. The class folders are then named ``MOTION+SOUND``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from av.audio.stream import AudioStream
from av.video.stream import VideoStream

from harness.data.spec import SyntheticDataSpec
from harness.data.synthetic import SyntheticVideos
from harness.data.synthetic_av import SyntheticAVVideos, create_synthetic_videos
from harness.errors import SpecError

__all__ = [
    "ExportSummary",
    "check_frame_size",
    "export_synthetic",
    "get_audio_codec",
    "get_video_codec",
    "prepare_folder",
]

CODECS = ("h264", "mpeg4")  # in order of preference; both take yuv420p
AUDIO_CODECS = (("aac", ".mp4"), ("pcm_s16le", ".mkv"))  # (encoder, file suffix), preferred first
AUDIO_BIT_RATE = 96_000  # bits per second of AAC: transparent for 16 kHz mono
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
    audio_codec: str | None = None  # the sound's encoder (None: no sound)
    sample_rate: int | None = None  # Hz of the sound


def _has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False
    return True


def get_video_codec() -> str:
    """The first encoder of :data:`CODECS` this PyAV build has."""
    for name in CODECS:
        if _has_encoder(name):
            return name
    raise SpecError(f"this PyAV build has none of the encoders {', '.join(CODECS)}")


def get_audio_codec() -> tuple[str, str]:
    """The first ``(encoder, file suffix)`` of :data:`AUDIO_CODECS` this PyAV build has."""
    for name, suffix in AUDIO_CODECS:
        if _has_encoder(name):
            return name, suffix
    names = ", ".join(name for name, _ in AUDIO_CODECS)
    raise SpecError(f"this PyAV build has none of the audio encoders {names}")


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


def write_clip(
    path: Path,
    frames: np.ndarray,
    *,
    codec: str,
    fps: int,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    audio_codec: str = "aac",
) -> None:
    """Encode ``frames`` ((T, H, W, 3) uint8 RGB, even H and W) as one video file, with
    ``audio`` (mono float32 samples at ``sample_rate``, starting with the first frame) as
    its sound track when given."""
    height, width = frames.shape[1:3]
    with av.open(str(path), "w") as container:
        stream = cast(VideoStream, container.add_stream(codec, rate=fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "h264":
            # NOTE: near-lossless and without B-frames: small clips, exact frame counts.
            stream.options = {"crf": "12", "bf": "0"}
        else:
            stream.bit_rate = 40 * width * height * fps // 8
        # NOTE: every stream is added before the first packet writes the header
        sound = None if audio is None else _add_audio(container, sample_rate, audio_codec)
        for image in frames:
            container.mux(stream.encode(_yuv420p(image)))
        container.mux(stream.encode())
        if sound is not None and audio is not None:
            container.mux(sound.encode(_audio_frame(audio, sound, sample_rate)))
            container.mux(sound.encode(None))


def _add_audio(
    container: av.container.OutputContainer, sample_rate: int, codec: str
) -> AudioStream:
    stream = cast(AudioStream, container.add_stream(codec, rate=sample_rate))
    stream.layout = "mono"
    if codec == "aac":
        stream.bit_rate = AUDIO_BIT_RATE
    return stream


def _audio_frame(audio: np.ndarray, stream: AudioStream, sample_rate: int) -> av.AudioFrame:
    """Mono float samples as one frame in the encoder's sample format, at time 0."""
    samples = np.clip(np.asarray(audio, np.float32), -1.0, 1.0)[None, :]
    sample_format = stream.codec_context.format.name
    if sample_format == "s16":
        samples = np.round(samples * 32767).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(samples, format=sample_format, layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = sample_rate, 0, Fraction(1, sample_rate)
    return frame


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


def _check_classes(spec: SyntheticDataSpec, classes: int) -> int:
    """``--classes``: the first this many of the benchmark's, in whole pairs with sound."""
    if not 2 <= classes <= spec.classes:
        raise SpecError(
            f"must be between 2 and {spec.classes} (the benchmark's classes), got {classes}",
            path=("--classes",),
            file="<command line>",
        )
    if spec.sound and classes % 2:
        raise SpecError(
            f"must be even for the audio-visual benchmark (its classes come in pairs), "
            f"got {classes}",
            path=("--classes",),
            file="<command line>",
        )
    return classes


def _sound_track(videos: SyntheticVideos, index: int, sample_rate: int) -> np.ndarray | None:
    """Video ``index``'s whole sound at ``sample_rate`` (None: the benchmark is silent)."""
    if not isinstance(videos, SyntheticAVVideos):
        return None
    return videos.audio(index, start=0.0, duration=videos.duration, sample_rate=sample_rate)


def export_synthetic(
    spec: SyntheticDataSpec,
    root: Path,
    *,
    clips: int = 16,
    val_clips: int | None = None,
    classes: int | None = None,
    size: int = 64,
    fps: int = 25,
    sample_rate: int = 16000,
) -> ExportSummary:
    """Write ``spec``'s videos under ``root`` as ``{train,val}/CLASS/CLASS_NNNN.mp4``
    (with their sound for ``synthetic-av``: see the module docstring).

    Args:
        spec: the synthetic benchmark (its seed, length, noise and so on).
        root: a new or empty folder.
        clips: training videos per class.
        val_clips: validation videos per class (default: a quarter of ``clips``, at least 1).
        classes: the first this many classes of the benchmark (default: the spec's).
        size: frame width and height in pixels (even).
        fps: frame rate written into the files (the sound follows it).
        sample_rate: Hz of the sound track (``synthetic-av`` only).

    Raises:
        SpecError: a bad count or size, or a folder that cannot be written.
    """
    val_clips = max(1, clips // 4) if val_clips is None else val_clips
    _check(clips, val_clips, size, fps)
    classes = _check_classes(spec, spec.classes if classes is None else classes)
    sound = spec.sound
    codec = get_video_codec()
    audio_codec, suffix = get_audio_codec() if sound else (None, ".mp4")
    root = root.expanduser()
    prepare_folder(root)
    update: dict[str, object] = {"classes": classes, "cache_dir": None}
    if sound:
        update["fps"] = float(fps)  # NOTE: the sound's clock is the files' frame rate
    spec = spec.model_copy(update=update)
    counts = dict(zip(SPLIT_FOLDERS, (clips, val_clips), strict=True))
    every = np.arange(spec.video_frames)
    names: list[str] = []
    for split, per_class in counts.items():
        videos = create_synthetic_videos(spec, split)
        names = videos.classes
        for label, name in enumerate(names):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                index = i * classes + label
                audio = _sound_track(videos, index, sample_rate) if audio_codec else None
                write_clip(folder / f"{name}_{i:04d}{suffix}", videos.render(index, every, size),
                           codec=codec, fps=fps, audio=audio, sample_rate=sample_rate,
                           audio_codec=audio_codec or "aac")  # fmt: skip
    videos_written = {split: n * classes for split, n in counts.items()}
    return ExportSummary(
        root,
        names,
        videos_written,
        spec.video_frames,
        size,
        codec,
        audio_codec=audio_codec,
        sample_rate=sample_rate if sound else None,
    )
