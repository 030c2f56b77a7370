"""Multi-pathway networks: SlowFast laterals, two-stream inputs and fusions, TSN segments."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from harness import build_model
from harness.compiler.plan import plan_network
from harness.errors import SpecError
from harness.measure import count_flops, count_params
from harness.spec import load_spec, realise, spec_hash

LATERAL = {"from": "fast", "to": "slow", "after": ["stem", 0], "kernel": 3}
STAGE = {"block": {"type": "basic", "temporal_kernel": 3}, "depth": 1, "width": 16}


def _two_pathways(**changes: Any) -> Any:
    """A tiny SlowFast: slow reads every 4th of 8 frames, fast reads all of them."""
    data: dict[str, Any] = {
        "clip": {"frames": 8, "size": 32},
        "pathways": [
            {
                "name": "slow",
                "frame_stride": 4,
                "stem": {"type": "conv", "width": 16, "kernel": [1, 3, 3]},
                "stages": [STAGE, {**STAGE, "spatial_stride": 2}],
            },
            {
                "name": "fast",
                "width_ratio": 0.5,
                "stem": {"type": "conv", "width": 16, "kernel": [3, 3, 3]},
                "stages": [STAGE, {**STAGE, "spatial_stride": 2}],
            },
        ],
        "laterals": [LATERAL],
        "head": {"type": "classifier"},
    }
    spec = load_spec("slowfast_r50_4x16", **data)
    return load_spec(spec, **changes) if changes else spec


def test_slowfast_plan_and_widths() -> None:
    plan = plan_network(realise(load_spec("slowfast_r50_8x8")), frames=32, size=224)
    slow, fast = plan.pathways
    assert (slow.input_shape, fast.input_shape) == ((3, 8, 224, 224), (3, 32, 224, 224))
    assert [lat.ratio for lat in plan.laterals] == [4, 4, 4, 4]
    assert [lat.dim_out for lat in plan.laterals] == [16, 64, 128, 256]
    assert [s.blocks[0].dim_in for s in slow.stages] == [80, 320, 640, 1280]
    assert fast.stages[-1].shape_out == (256, 32, 7, 7)


def test_width_ratio_is_realised_into_widths() -> None:
    spec = _two_pathways()
    explicit = _two_pathways(
        pathways={
            1: {
                "width_ratio": 1.0,
                "stem": {"width": 8},
                "stages": {0: {"width": 8}, 1: {"width": 8}},
            }
        }
    )
    assert spec_hash(spec) == spec_hash(explicit)
    assert realise(spec).pathways[1].stem.width == 8


@pytest.mark.parametrize(
    ("lateral", "slow_in"),
    [
        ({"type": "time_strided_conv", "channel_ratio": 2}, 16 + 16),
        ({"type": "time_to_channel"}, 16 + 4 * 8),
        ({"type": "strided_sample"}, 16 + 8),
        ({"type": "time_strided_conv", "combine": "sum", "weight": 0.5}, 16),
        ({"type": "time_strided_conv", "combine": "attention"}, 16),
    ],
)
def test_lateral_kinds(lateral: dict[str, Any], slow_in: int) -> None:
    spec = _two_pathways(laterals=[{**LATERAL, **lateral}])
    model = build_model(spec, classes=3)
    assert model.plan.pathways[0].stages[0].blocks[0].dim_in == slow_in
    clip = torch.randn(2, 3, 8, 32, 32, requires_grad=True)
    out = model(clip)
    assert out.shape == (2, 3)
    out.sum().backward()
    assert clip.grad is not None and torch.isfinite(clip.grad).all()
    assert torch.equal(model.eval()(clip), model({"rgb": clip}))


def test_sum_needs_matching_channels() -> None:
    spec = _two_pathways(laterals=[{**LATERAL, "type": "strided_sample", "combine": "sum"}])
    with pytest.raises(SpecError) as info:
        build_model(spec)
    assert info.value.path == ("laterals", 0, "combine")


def test_alpha_must_divide_frames() -> None:
    with pytest.raises(SpecError) as info:
        build_model(_two_pathways(), frames=10)
    assert info.value.path == ("pathways", 0, "frame_stride")
    assert "does not divide the 10 frames" in info.value.message


def test_two_stream_needs_both_streams() -> None:
    model = build_model("i3d_r50_two_stream", frames=8, size=64, classes=3).eval()
    rgb, flow = torch.randn(1, 3, 8, 64, 64), torch.randn(1, 2, 8, 64, 64)
    with torch.no_grad():
        named = model({"rgb": rgb, "flow": flow})
        assert torch.allclose(model(torch.cat((rgb, flow), 1)), named)
    with pytest.raises(SpecError) as info:
        model({"rgb": rgb})
    assert info.value.path == ("inputs", "flow")
    with pytest.raises(SpecError, match="rgb 3 \\+ flow 2"):
        model(rgb)


@pytest.mark.parametrize("combine", ["sum", "concat", "attention"])
def test_two_stream_intermediate_fusion(combine: str) -> None:
    """Flow joins RGB after stage 0 and stops there; the head reads the RGB pathway."""
    stem = {"type": "conv", "width": 16, "kernel": [3, 3, 3]}
    spec = load_spec(
        "i3d_r50_two_stream",
        clip={"frames": 4, "size": 32},
        pathways=[
            {"name": "rgb", "input": "rgb", "stem": stem, "stages": [STAGE, STAGE]},
            {"name": "flow", "input": "flow", "stem": stem, "stages": [STAGE]},
        ],
        laterals=[
            {"from": "flow", "to": "rgb", "after": 0, "type": "strided_sample", "combine": combine}
        ],
        join={"type": "concat", "pathways": ["rgb"]},
    )
    model = build_model(spec, classes=3)
    out = model(model.example_inputs(batch=2))
    assert out.shape == (2, 3)
    widths = {"sum": 16, "concat": 32, "attention": 16}
    assert model.plan.pathways[0].stages[1].blocks[0].dim_in == widths[combine]


def test_early_fusion_concatenates_inputs() -> None:
    spec = load_spec("r3d_18", inputs={"rgb": {"channels": 3}, "flow": {"channels": 2}})
    model = build_model(spec, frames=8, size=32, classes=3)
    assert model.plan.pathways[0].input_shape[0] == 5
    assert model(model.example_inputs()).shape == (1, 3)


@pytest.mark.parametrize("weights", [None, [2, 1]])
def test_score_fusion_weights(weights: list[float] | None) -> None:
    spec = load_spec("i3d_r50_two_stream", join={"weights": weights, "learned": weights is None})
    model = build_model(spec, frames=8, size=64, classes=3).eval()
    x = model.example_inputs()
    features = model.stages[-1](
        model.stages[2](model.stages[1](model.stages[0](model.stem(model.inputs(x)))))
    )
    scores = [model.head.heads[n](features[n]) for n in ("rgb", "flow")]
    w = [2 / 3, 1 / 3] if weights else [0.5, 0.5]
    with torch.no_grad():
        assert torch.allclose(model(x), w[0] * scores[0] + w[1] * scores[1], atol=1e-5)


@pytest.mark.parametrize("consensus", ["avg", "max", "attention"])
def test_segment_consensus(consensus: str) -> None:
    spec = load_spec("x2d", segments={"count": 3, "consensus": consensus})
    model = build_model(spec, frames=3, classes=4).eval()
    clip = torch.randn(2, 3, 3, 112, 112)
    with torch.no_grad():
        out = model(clip)
        per_snippet = torch.stack(
            [
                model.head(
                    model.stages[-1](
                        model.stages[2](
                            model.stages[1](model.stages[0](model.stem(clip[:, :, k : k + 1])))
                        )
                    )
                )
                for k in range(3)
            ],
            dim=1,
        )
    assert out.shape == (2, 4)
    if consensus == "avg":
        assert torch.allclose(out, per_snippet.mean(1), atol=1e-5)
    if consensus == "max":
        assert torch.allclose(out, per_snippet.amax(1), atol=1e-5)
    assert count_flops(model, clip[:1]).unsupported_ops == {}


def test_segments_must_divide_frames() -> None:
    spec = load_spec("x2d", segments={"count": 3})
    with pytest.raises(SpecError) as info:
        build_model(spec, frames=4)
    assert info.value.path == ("segments", "count")


def test_two_stream_params_are_two_streams() -> None:
    one = count_params(build_model("i3d_r50", classes=10))
    two = count_params(build_model("i3d_r50_two_stream", classes=10))
    assert two == 2 * one - 64 * 5 * 7 * 7
