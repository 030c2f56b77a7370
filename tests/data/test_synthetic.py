"""The built-in benchmark: deterministic, matched time-reversal pairs, clips at any shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.data import (
    SYNTHETIC_CLASSES,
    SyntheticVideos,
    create_dataset,
    list_synthetic_classes,
    load_data_spec,
    reversal_pairs,
)
from harness.data.synthetic import list_motions
from harness.spec.schema import ClipSpec

FRAMES = np.array([0, 2, 5, 9, 12, 15])


def _videos(seed: int = 0, split: str = "train", **fields: object) -> SyntheticVideos:
    spec = load_data_spec({"type": "synthetic", "preset": "tiny", "seed": seed, **fields})
    return SyntheticVideos(spec, split)  # type: ignore[arg-type]


def test_deterministic_per_seed_split_and_index() -> None:
    a, b = _videos(), _videos()
    assert np.array_equal(a.render(5, FRAMES, 32), b.render(5, FRAMES, 32))
    assert not np.array_equal(a.render(5, FRAMES, 32), _videos(seed=1).render(5, FRAMES, 32))
    assert not np.array_equal(a.render(5, FRAMES, 32), _videos(split="val").render(5, FRAMES, 32))


@pytest.mark.parametrize("pair", reversal_pairs())
def test_pairs_are_exact_time_reversals(pair: tuple[int, int]) -> None:
    """Video 2j + 1 is video 2j backwards: the frame sets of a pair cannot be told apart."""
    videos = _videos(classes=16)
    last = videos.spec.video_frames - 1
    first, second = pair
    for group in range(3):
        forward = videos.render(group * 16 + first, FRAMES, 24)
        backward = videos.render(group * 16 + second, last - FRAMES, 24)
        assert np.array_equal(forward, backward)
        assert not np.array_equal(forward, videos.render(group * 16 + second, FRAMES, 24))


def test_class_table() -> None:
    assert set(c.motion for c in SYNTHETIC_CLASSES) <= set(list_motions())
    assert list_synthetic_classes(4) == ["move_right", "move_left", "approach", "recede"]
    assert reversal_pairs(8) == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert len(reversal_pairs()) == 7  # every pair but fast / slow


@pytest.mark.parametrize(("frames", "stride", "size"), [(8, 2, 32), (4, 1, 48), (16, 4, 20)])
def test_dataset_renders_the_spec_clip(frames: int, stride: int, size: int) -> None:
    data = load_data_spec({"type": "synthetic", "preset": "tiny", "train_clips": 16})
    clip = ClipSpec(frames=frames, stride=stride, size=size)
    dataset = create_dataset(data, "train", clip=clip)
    x, label, video = dataset[(3, 11)]
    assert isinstance(x, torch.Tensor) and x.shape == (3, frames, size, size)
    assert (label, video) == (3, 3)
    assert torch.equal(x, dataset[(3, 11)][0])
    if (frames - 1) * stride + 1 < data.video_frames:  # room for a random start
        assert not torch.equal(x, dataset[(3, 12)][0])
    assert len(dataset) == 16


def test_stride_scales_motion_per_frame() -> None:
    """A larger stride makes an object move further between consecutive clip frames."""
    videos = _videos()
    slow = videos.render(0, np.array([6, 7]), 32).astype(float)
    fast = videos.render(0, np.array([3, 11]), 32).astype(float)
    assert np.abs(fast[1] - fast[0]).mean() > np.abs(slow[1] - slow[0]).mean()


def test_multi_view_items() -> None:
    data = load_data_spec({"type": "synthetic", "preset": "tiny", "val_clips": 8})
    dataset = create_dataset(data, "val", clip=ClipSpec(frames=4, size=16), views=(3, 2))
    assert len(dataset) == 8 * 6 and dataset.num_videos == 8
    views = [dataset[6 * 2 + v] for v in range(6)]
    assert all(video == 2 for _, _, video in views)
    assert not torch.equal(views[0][0], views[2][0])  # another temporal clip


def test_disk_cache_gives_the_same_clips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fresh = _videos()
    cached = _videos(cache_dir=str(tmp_path))
    first = cached.render(3, FRAMES, 16)
    assert list(tmp_path.rglob("*.npy"))
    assert np.array_equal(first, fresh.render(3, FRAMES, 16))
    assert np.array_equal(cached.render(3, FRAMES, 16), first)
