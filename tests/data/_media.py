"""Helpers that write small videos and frame folders with PyAV and OpenCV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

LEVEL = 8  # grey level step per frame: frame i is filled with LEVEL * i + 4


def frame_index(frames: np.ndarray) -> list[int]:
    """Recover the frame numbers that :func:`write_video` encoded as grey levels."""
    return [round((float(f.mean()) - 4) / LEVEL) for f in frames]


def write_video(
    path: Path,
    *,
    frames: int = 24,
    size: tuple[int, int] = (40, 32),
    fps: int = 25,
    codec: str = "mpeg4",
    gop: int = 6,
) -> Path:
    """A video whose frame i is uniformly grey at level ``LEVEL * i + 4`` (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.gop_size = gop
        for i in range(frames):
            image = np.full((size[1], size[0], 3), min(255, LEVEL * i + 4), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frames(folder: Path, *, frames: int = 12, size: tuple[int, int] = (40, 32)) -> Path:
    """A folder of JPEG frames img_00001.jpg ... with the same grey-level coding."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        image = np.full((size[1], size[0], 3), min(255, LEVEL * i + 4), np.uint8)
        cv2.imwrite(str(folder / f"img_{i + 1:05d}.jpg"), image)
    return folder


def write_pattern_video(
    path: Path,
    *,
    frames: int = 16,
    size: tuple[int, int] = (320, 240),
    codec: str = "mpeg4",
    gop: int = 12,
) -> Path:
    """A video of smooth moving colour waves and a red disc crossing it (width, height)."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.bit_rate = 4_000_000
        for t in range(frames):
            image = np.empty((height, width, 3), np.float32)
            image[..., 0] = 128 + 60 * np.sin((xx + 3 * t) / 17) * np.cos(yy / 23)
            image[..., 1] = 128 + 60 * np.cos((xx - 2 * t) / 29 + yy / 31)
            image[..., 2] = 100 + 100 * xx / width
            image[(xx - width / 8 - 5 * t) ** 2 + (yy - height / 2) ** 2 < (height / 8) ** 2] = (
                240,
                40,
                40,
            )
            frame = av.VideoFrame.from_ndarray(image.astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
