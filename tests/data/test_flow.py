"""Optical flow: OpenCV recovers a known shift; clipping, quantisation, cache, two streams."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

import harness.data.flow as flow_module
from harness.data import (
    compute_flow,
    create_dataset,
    list_flow_algorithms,
    load_data_spec,
    quantize_flow,
)
from harness.spec.schema import ClipSpec


def _texture(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    import cv2

    noise = np.random.default_rng(seed).integers(0, 255, (height, width), np.uint8)
    smooth = cv2.GaussianBlur(noise, (7, 7), 2)
    return np.repeat(cv2.normalize(smooth, None, 0, 255, cv2.NORM_MINMAX)[..., None], 3, axis=2)


def _moving(frames: int, shift: int) -> np.ndarray:
    base = _texture()
    return np.stack([np.roll(base, shift * i, axis=1) for i in range(frames)])


@pytest.mark.parametrize("algorithm", list_flow_algorithms())
def test_flow_recovers_a_horizontal_shift(algorithm: str) -> None:
    flow = compute_flow(_moving(3, 2), algorithm)
    assert flow.shape == (3, 48, 64, 2)
    centre = flow[:, 12:36, 16:48]
    assert np.allclose(centre[..., 0].mean(), 2.0, atol=0.3)
    assert abs(centre[..., 1].mean()) < 0.3


def test_quantisation_clips_to_20_pixels() -> None:
    values = np.array([-100.0, -20.0, 0.0, 20.0, 55.0])
    assert quantize_flow(values).tolist() == [0, 0, 128, 255, 255]


def _write(path: Path, frames: np.ndarray) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"qscale": "2"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_two_stream_clips_share_crops_and_flow_is_cached(tmp_path: Path, monkeypatch) -> None:
    for split in ("train", "val"):
        (tmp_path / "ds" / split / "slide").mkdir(parents=True)
        _write(tmp_path / "ds" / split / "slide" / "a.avi", _moving(12, 2))
    data = load_data_spec(
        {"type": "video", "root": str(tmp_path / "ds"), "modality": "rgb+flow",
         "cache_dir": str(tmp_path / "cache"), "short_side": 48}
    )  # fmt: skip
    dataset = create_dataset(data, "val", clip=ClipSpec(frames=4, size=32))
    item = dataset[0][0]
    assert set(item) == {"rgb", "flow"}
    assert item["rgb"].shape == (3, 4, 32, 32) and item["flow"].shape == (2, 4, 32, 32)
    # flow / 20 in [-1, 1]: a 2-pixel shift at 48-pixel scale, cropped, is about 0.1
    assert torch.allclose(item["flow"][0, :, 8:24, 8:24].mean(), torch.tensor(0.1), atol=0.03)
    assert len(list((tmp_path / "cache" / "flow").glob("*.npy"))) == 1

    def no_flow(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("flow must come from the cache")

    monkeypatch.setattr(flow_module, "compute_flow", no_flow)
    assert torch.equal(dataset[0][0]["flow"], item["flow"])
