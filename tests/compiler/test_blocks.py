"""Every registered block builds, runs a tiny clip forward and backward, and keeps shapes."""

from __future__ import annotations

from typing import Any, get_args

import pytest
import torch

from harness import build_model
from harness.compiler import list_blocks
from harness.spec import load_spec
from harness.spec.blocks import BlockSpec

# One example per block type (and per variant); a block registered without an example
# fails test_every_block_has_an_example.
EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "plain": [
        {"type": "plain"},
        {"type": "plain", "factorization": "2plus1d"},
        {"type": "plain", "factorization": "separable", "norm": "none", "bias": True},
    ],
    "basic": [{"type": "basic"}, {"type": "basic", "temporal_kernel": [3, 1]}],
    "r2plus1d": [{"type": "r2plus1d"}, {"type": "r2plus1d", "mid_width_from": "conv_input"}],
    "bottleneck": [
        {"type": "bottleneck", "temporal_kernel": 3},
        {"type": "bottleneck", "temporal_kernel": 3, "temporal_kernel_at": "middle", "groups": 4},
    ],
    "tsm": [{"type": "tsm"}, {"type": "tsm", "shift_mode": "inplace", "shift_fraction": 0.25}],
    "csn": [{"type": "csn", "variant": "ir"}, {"type": "csn", "variant": "ip"}],
    "p3d": [{"type": "p3d", "variant": v} for v in "ABC"],
    "x3d": [{"type": "x3d"}, {"type": "x3d", "se_ratio": 0, "act": "swish"}],
    "sep_inception": [
        {
            "type": "sep_inception",
            "gating": g,
            "branches": {"b0": 8, "b1_reduce": 4, "b1": 8, "b2_reduce": 4, "b2": 8, "b3": 8},
        }
        for g in (False, True)
    ],
    "transformer": [
        {"type": "transformer", "heads": 2},
        {"type": "transformer", "heads": 2, "attention": ["time", "space"], "time_proj": True},
        {"type": "transformer", "heads": 4, "attention": ["space", "time"], "qkv_bias": False},
        {"type": "transformer", "heads": 2, "attention": ["factorized_dot_product"]},
    ],
    "frame_tokens": [
        {"type": "frame_tokens"},
        {"type": "frame_tokens", "pool": "mean", "cls_token": False, "pos_embed": "sinusoidal"},
    ],
    "mvit": [
        {"type": "mvit", "heads": 2, "kv_stride": [1, 2, 2]},
        {
            "type": "mvit",
            "heads": 2,
            "q_pool": "always",
            "dim_change": "attention",
            "residual_pool": True,
        },
    ],
}
TOKEN_BLOCKS = {"transformer", "frame_tokens", "mvit"}
CASES = [(name, i) for name, examples in EXAMPLES.items() for i in range(len(examples))]


def test_every_block_has_an_example() -> None:
    assert set(EXAMPLES) == set(list_blocks())
    spec_types = {
        get_args(m.model_fields["type"].annotation)[0] for m in get_args(get_args(BlockSpec)[0])
    }
    assert spec_types == set(list_blocks()), "spec union and builder registry disagree"


def _token_block_spec(block: dict[str, Any], stride: int) -> Any:
    """A patch stem (4 x 4 x 4 tokens of width 16) and one stage of ``block``."""
    cls = "global"
    if "factorized_dot_product" in block.get("attention", ()):
        cls = "none"
    elif block["type"] == "frame_tokens":
        cls = "frame" if block.get("pool", "cls") == "cls" else "global"
    keeps = block["type"] != "mvit"
    stage: dict[str, Any] = {"block": block, "depth": 1 if keeps else 2, "width": 16}
    if not keeps:
        stage.update(spatial_stride=stride)
    return load_spec(
        "timesformer_base",
        name="one_token_block",
        clip={"frames": 4, "size": 32},
        stem={"width": 16 if keeps else 8, "patch": [1, 8, 8], "cls_token": cls},
        stages=[stage],
        head={"pool": "cls" if cls != "none" and block.get("cls_token", True) else "mean"},
    )


def _one_block_spec(block: dict[str, Any], stride: int) -> Any:
    if block["type"] in TOKEN_BLOCKS:
        return _token_block_spec(block, stride)
    stage: dict[str, Any] = {"block": block, "depth": 2, "width": 16, "bottleneck_ratio": 0.5}
    if block["type"] == "sep_inception":
        stage = {"blocks": [block, block]}
    else:
        stage.update(temporal_stride=stride, spatial_stride=stride)
    return load_spec(
        "r3d_18",
        name="one_block",
        clip={"frames": 4, "size": 32},
        stem={"width": 12, "kernel": [1, 3, 3]},
        stages=[stage],
    )


@pytest.mark.parametrize(("name", "index"), CASES)
def test_block_forward_backward(name: str, index: int) -> None:
    block = EXAMPLES[name][index]
    stride = 1 if name == "sep_inception" else 2
    model = build_model(_one_block_spec(block, stride), classes=5)
    clip = torch.randn(2, 3, 4, 32, 32, requires_grad=True)
    features = model.stages[0](model.stem(clip))
    stage = model.plan.stages[0]
    if name in TOKEN_BLOCKS:
        c, t, h, w = stage.shape_out
        extra = {"cls": 1, "frame_cls": t, "patches": 0}[stage.tokens]
        assert tuple(features.shape[1:]) == (t * h * w + extra, c)
    else:
        assert tuple(features.shape[1:]) == stage.shape_out
    out = model(clip)
    assert out.shape == (2, 5)
    out.sum().backward()
    assert clip.grad is not None and torch.isfinite(clip.grad).all()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
