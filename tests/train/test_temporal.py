"""The benchmark's two reference specs: one provably blind to frame order, one not."""

from __future__ import annotations

import torch

import harness


def _scores(name: str, clip: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(0)
    model = harness.build_model(name, classes=8).eval()
    with torch.no_grad():
        return model(clip)


def test_c2d_cannot_tell_a_clip_from_its_reversal() -> None:
    clip = torch.randn(2, 3, 8, 32, 32)
    backwards = clip.flip(2)
    assert torch.allclose(_scores("tiny_c2d", clip), _scores("tiny_c2d", backwards), atol=1e-5)
    assert not torch.allclose(
        _scores("tiny_r2plus1d", clip), _scores("tiny_r2plus1d", backwards), atol=1e-5
    )


def test_same_widths_and_depths() -> None:
    blind, temporal = harness.load_spec("tiny_c2d"), harness.load_spec("tiny_r2plus1d")
    assert blind.clip == temporal.clip and blind.stem.width == temporal.stem.width  # type: ignore[union-attr]
    assert [(s.width, s.depth) for s in blind.stages] == [
        (s.width, s.depth) for s in temporal.stages
    ]
