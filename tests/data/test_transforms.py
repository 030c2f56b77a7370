"""Clip transforms: shapes, crops, flips (and their switch) and normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.data import create_transform, list_transforms
from harness.data.transforms import create_test_transform, create_train_transform

ARGS = {
    "short_side_resize": {"size": 24},
    "random_resized_crop": {"size": 24},
    "center_crop": {"size": 24},
    "spatial_crop": {"size": 24, "view": 2, "views": 3},
    "flip": {"p": 1.0},
    "normalize": {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)},
}


def _clip(t: int = 4, h: int = 32, w: int = 48) -> torch.Tensor:
    x = torch.arange(w, dtype=torch.float32).expand(t, 3, h, w) / w
    return x.contiguous()


def test_every_transform_is_tested() -> None:
    assert set(list_transforms()) == set(ARGS)


@pytest.mark.parametrize("name", sorted(ARGS))
def test_transform_keeps_frames_and_channels(name: str) -> None:
    out = create_transform(name, **ARGS[name])(_clip(), np.random.default_rng(0))
    assert out.shape[:2] == (4, 3)
    if name in ("random_resized_crop", "center_crop", "spatial_crop"):
        assert out.shape[-2:] == (24, 24)
    if name == "short_side_resize":
        assert out.shape[-2:] == (24, 36)


def test_three_crops_cover_left_centre_right() -> None:
    clip = _clip(h=24, w=48)
    lefts = [
        float(create_transform("spatial_crop", size=24, view=v, views=3)(clip, None)[0, 0, 0, 0])
        for v in range(3)
    ]
    assert lefts == [0.0, 12 / 48, 24 / 48]


def test_flip_mirrors_and_negates_horizontal_flow() -> None:
    clip = _clip()
    flipped = create_transform("flip", p=1.0, negate_channels=(0,))(clip, np.random.default_rng(0))
    assert torch.equal(flipped[:, 1], clip[:, 1].flip(-1))
    assert torch.allclose(flipped[:, 0], 1 - clip[:, 0].flip(-1))
    assert torch.equal(create_transform("flip", p=1.0)(clip, None), clip)  # never in testing


def test_train_pipeline_flips_only_when_allowed() -> None:
    clip = _clip(h=24, w=24)
    mean, std = (0.0,) * 3, (1.0,) * 3
    flips, never = (
        create_train_transform(size=24, mean=mean, std=std, crop=False, flip=flag)
        for flag in (True, False)
    )
    outs = [flips(clip, np.random.default_rng(s)) for s in range(20)]
    assert any(torch.equal(o, clip.flip(-1)) for o in outs)
    assert any(torch.equal(o, clip) for o in outs)
    assert all(torch.equal(never(clip, np.random.default_rng(s)), clip) for s in range(20))


def test_random_resized_crop_is_seeded() -> None:
    crop = create_transform("random_resized_crop", size=16, scale=(0.1, 0.5))
    a, b = (crop(_clip(), np.random.default_rng(7)) for _ in range(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, crop(_clip(), np.random.default_rng(8)))


def test_test_pipeline_normalises() -> None:
    clip = torch.full((2, 3, 30, 40), 0.7)
    out = create_test_transform(size=24, mean=(0.5,) * 3, std=(0.1,) * 3)(clip, None)
    assert out.shape == (2, 3, 24, 24)
    assert torch.allclose(out, torch.full_like(out, 2.0))
