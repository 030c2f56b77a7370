"""``ModelSpec.mixes_time()`` against the networks themselves: one that mixes no frames gives
the same scores for a clip and for the clip played backwards; one that mixes them does not."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.compiler import build_model
from harness.spec import load_spec, realise


@pytest.mark.parametrize(
    "name", ["tiny_c2d", "tiny_r2plus1d", "tsm_r50", "mc3_18", "x2d", "x3d_xs"]
)
def test_a_network_that_mixes_no_frames_cannot_tell_a_clip_reversed(name: str) -> None:
    spec = load_spec(name)
    torch.manual_seed(0)
    model = build_model(spec, frames=8, size=32, classes=5).eval()
    norms = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
    with torch.no_grad():
        # NOTE: residual branches start at zero (their last norm's scale), which would hide
        # every block's temporal mixing: with scales of 1 each block computes something.
        for module in model.modules():
            if isinstance(module, norms) and module.weight is not None:
                module.weight.fill_(1.0)
        clip = torch.randn(2, 3, 8, 32, 32)
        forward, backward = model(clip), model(clip.flip(2))
    # blind: the reversed clip scores as the clip does, to float rounding (1e-6 of the
    # scores; the two clips of the batch differ by 1e-1 of them)
    blind = bool((forward - backward).abs().max() <= 1e-5 * forward.abs().max())
    assert realise(spec).mixes_time() is not blind
