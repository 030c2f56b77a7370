"""Clip samplers, generated from the registry: shape, bounds, randomness, views."""

from __future__ import annotations

import numpy as np
import pytest

from harness.data import list_samplers, sample_clip
from harness.errors import SpecError


@pytest.mark.parametrize("name", list_samplers())
@pytest.mark.parametrize("num_frames", [1, 5, 16, 300])
def test_indices_are_in_range_and_ordered(name: str, num_frames: int) -> None:
    rng = np.random.default_rng(0)
    for generator in (rng, None):
        indices = sample_clip(name, num_frames, frames=8, stride=4, rng=generator)
        assert indices.shape == (8,) and indices.dtype == np.int64
        assert indices.min() >= 0 and indices.max() < num_frames
        assert (np.diff(indices) >= 0).all()


@pytest.mark.parametrize("name", list_samplers())
def test_training_is_random_and_testing_is_not(name: str) -> None:
    a = sample_clip(name, 300, frames=8, stride=2, rng=np.random.default_rng(1))
    b = sample_clip(name, 300, frames=8, stride=2, rng=np.random.default_rng(2))
    assert not np.array_equal(a, b)
    assert np.array_equal(
        sample_clip(name, 300, frames=8, stride=2), sample_clip(name, 300, frames=8, stride=2)
    )


@pytest.mark.parametrize("name", list_samplers())
def test_views_spread_over_the_video(name: str) -> None:
    views = [sample_clip(name, 300, frames=8, stride=2, view=v, views=5) for v in range(5)]
    starts = [int(v[0]) for v in views]
    assert starts == sorted(starts) and len(set(starts)) == 5


def test_strided_and_dense_steps() -> None:
    strided = sample_clip("strided", 100, frames=8, stride=4)
    assert (np.diff(strided) == 4).all()
    assert strided[0] == (100 - 29) // 2  # centred: 29 frames spanned, slack split evenly
    assert (np.diff(sample_clip("dense", 100, frames=8, stride=4)) == 1).all()
    first, last = (sample_clip("strided", 100, frames=8, stride=4, view=v, views=2) for v in (0, 1))
    assert first[0] == 0 and last[-1] == 99


def test_tsn_draws_one_frame_per_segment() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        indices = sample_clip("tsn", 80, frames=8, stride=1, rng=rng)
        assert (indices // 10 == np.arange(8)).all()
    assert sample_clip("tsn", 80, frames=8, stride=1).tolist() == list(range(5, 80, 10))


def test_unknown_sampler_lists_the_known_ones() -> None:
    with pytest.raises(SpecError, match="known: dense, strided, tsn, uniform"):
        sample_clip("strided2", 10, frames=4, stride=1)
