"""Attention blocks: FLOPs against hand counts, scopes, positions and bad specs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness import build_model
from harness.compiler.blocks.attention import Attention
from harness.errors import SpecError
from harness.measure import count_flops, count_params
from harness.spec import load_spec

TINY_VIT = {
    "clip": {"frames": 4, "size": 32},
    "stem": {"width": 16, "patch": [1, 8, 8]},
    "stages": [{"block": {"type": "transformer", "heads": 2}, "depth": 1, "width": 16}],
}


def _attention_flops(b: int, n: int, d: int) -> int:
    """qkv and proj linears, then q k^T and a v: 2 B N^2 D (heads do not change it)."""
    return b * n * d * 3 * d + b * n * d * d + 2 * b * n * n * d


@pytest.mark.parametrize("train", [False, True])
def test_sdpa_counted_as_two_matmuls(train: bool) -> None:
    attn = Attention(32, 4).train(train)
    f = count_flops(attn, torch.randn(2, 10, 32))
    assert f.flops == _attention_flops(2, 10, 32)
    assert f.by_operator["scaled_dot_product_attention"] == 2 * 2 * 10 * 10 * 32
    assert f.unsupported_ops == {}


def test_sdpa_cross_attention_shapes() -> None:
    class Cross(nn.Module):
        def forward(self, q: torch.Tensor) -> torch.Tensor:
            k = q[:, :, :3, :]
            v = torch.cat((k, k), dim=-1)  # value width 2 D
            return F.scaled_dot_product_attention(q, k, v)

    f = count_flops(Cross(), torch.randn(1, 2, 7, 4))
    assert f.flops == 1 * 2 * 7 * 3 * (4 + 8)


@pytest.mark.parametrize("train", [False, True])
def test_native_multi_head_attention(train: bool) -> None:
    """nn.MultiheadAttention: the fused eval path and the decomposed train path agree."""

    class Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = nn.MultiheadAttention(16, 4, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.mha(x, x, x, need_weights=False)[0]

    model = Wrap().train(train)
    with torch.set_grad_enabled(False):
        f = count_flops(model, torch.randn(1, 6, 16))
    assert f.flops == _attention_flops(1, 6, 16)
    assert f.unsupported_ops == {}


def test_compiled_sdpa_matches_explicit_softmax() -> None:
    torch.manual_seed(0)
    attn = Attention(16, 2).eval()
    x = torch.randn(2, 5, 16)
    q, k, v = attn.qkv(x).reshape(2, 5, 3, 2, 8).permute(2, 0, 3, 1, 4)
    ref = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1) @ v
    ref = attn.proj(ref.transpose(1, 2).reshape(2, 5, 16))
    with torch.no_grad():
        assert torch.allclose(attn(x), ref, atol=1e-5)


def test_divided_attention_flops_by_hand() -> None:
    """One divided block on 4 frames of 2x2 patches plus a class token, width 16."""
    spec = load_spec(
        "timesformer_base",
        clip={"frames": 4, "size": 16},
        stem={"width": 16, "patch": [1, 8, 8]},
        stages={0: {"depth": 1, "width": 16, "block": {"heads": 2}}},
    )
    model = build_model(spec, classes=5)
    d, t, hw = 16, 4, 4
    time = hw * t * 4 * d * d + 2 * hw * t * t * d + t * hw * d * d  # qkv+proj, attn, fc
    space = t * (hw + 1) * 4 * d * d + 2 * t * (hw + 1) ** 2 * d
    mlp = (1 + t * hw) * 2 * d * 4 * d
    embed = t * hw * d * 3 * 8 * 8
    head = d * 5
    f = count_flops(model, torch.randn(1, 3, 4, 16, 16))
    assert f.flops == embed + time + space + mlp + head
    assert f.unsupported_ops == {}


def test_positions_interpolate_to_other_clips() -> None:
    spec = load_spec("timesformer_base", **TINY_VIT)
    declared = count_params(build_model(spec))
    model = build_model(spec, frames=8, size=48, classes=3)
    assert count_params(model) == declared - 16 * 400 - 400 + 16 * 3 + 3
    assert model(torch.randn(1, 3, 8, 48, 48)).shape == (1, 3)
    assert count_flops(model, torch.randn(1, 3, 8, 48, 48)).unsupported_ops == {}


def test_sinusoidal_positions_have_no_parameters() -> None:
    learned = count_params(build_model(load_spec("timesformer_base", **TINY_VIT)))
    spec = load_spec(load_spec("timesformer_base", **TINY_VIT), stem={"pos_embed": "sinusoidal"})
    # learned: 4 x 4 spatial + 4 temporal + 1 class position, 16 wide
    assert count_params(build_model(spec)) == learned - (16 + 4 + 1) * 16


def test_mean_pooling_without_class_token() -> None:
    tiny = load_spec("timesformer_base", **TINY_VIT)
    spec = load_spec(tiny, stem={"cls_token": "none"}, head={"pool": "mean"})
    assert build_model(spec, classes=3)(torch.randn(2, 3, 4, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize(
    ("changes", "path", "message"),
    [
        ({"stages": {0: {"block": {"heads": 5}}}}, ("stages", 0, "block", "heads"), "divide"),
        ({"stages": {0: {"width": 32}}}, ("stages", 0, "width"), "keeps its width"),
        ({"stages": {0: {"spatial_stride": 2}}}, ("stages", 0, "spatial_stride"), "stride"),
        ({"head": {"type": "classifier"}}, ("head",), "tokens"),
        ({"stem": {"cls_token": "none"}}, ("head",), "class token"),
        (
            {"stages": {0: {"block": {"type": "bottleneck"}, "bottleneck_ratio": 0.25}}},
            ("stages", 0, "block", "type"),
            "feature map",
        ),
    ],
)
def test_bad_transformer_specs_name_key_paths(changes: dict, path: tuple, message: str) -> None:
    spec = load_spec(load_spec("timesformer_base", **TINY_VIT), **changes)
    with pytest.raises(SpecError, match=message) as info:
        build_model(spec)
    assert info.value.path == path


def test_pooling_stride_larger_than_grid() -> None:
    spec = load_spec("mvit_b_16x4", stages={0: {"block": {"kv_stride": [1, 64, 64]}}})
    with pytest.raises(SpecError, match="larger than the 56 height") as info:
        build_model(spec)
    assert info.value.path == ("stages", 0, "block", "kv_stride")
    assert info.value.location is not None
