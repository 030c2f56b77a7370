from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import harness
from harness import build_model, load_spec
from harness.compiler import NetworkPlan, min_clip
from harness.compiler.blocks.resnet import TemporalShift
from harness.compiler.layers import SqueezeExcite, r2plus1d_mid_width
from harness.errors import SpecError
from harness.measure import count_params
from harness.spec import realise

ZOO = harness.list_zoo()


def _tiny_clip(name: str) -> tuple[int, int]:
    frames, size = min_clip(realise(load_spec(name)))
    return max(frames, 4), max(size, 32)


def _observed(output: Any) -> Any:
    """Per-pathway (N..., C) or (C, T, H, W) shapes of a stem or stage output."""
    if isinstance(output, dict):
        return {name: tuple(value.shape[1:]) for name, value in output.items()}
    return tuple(output.shape[1:])


def _expected(plan: NetworkPlan, shape: tuple[int, ...], tokens: str) -> tuple[int, ...]:
    if tokens == "map":
        return shape
    c, t, h, w = shape
    return (t * h * w + {"cls": 1, "frame_cls": t, "patches": 0}[tokens], c)


def _planned(plan: NetworkPlan, multi: bool) -> list[Any]:
    """What the plan says the stem and each stage hand on (after the laterals there)."""
    if not multi:
        (p,) = plan.pathways
        tokens = [p.stem_tokens, *(s.tokens for s in p.stages)]
        shapes = [p.stem_shape, *(s.shape_out for s in p.stages)]
        return [_expected(plan, s, t) for s, t in zip(shapes, tokens, strict=True)]
    positions: list[Any] = []
    state = {p.name: p.stem_shape for p in plan.pathways}
    for position in ["stem", *range(len(plan.trunk.stages))]:
        if position != "stem":
            for p in plan.pathways:
                if position < len(p.stages):
                    state[p.name] = p.stages[position].shape_out
        for lateral in plan.laterals:
            if lateral.position == position:
                state[lateral.target] = lateral.shape_out
        positions.append(dict(state))
    return positions


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_runs_tiny_clip(name: str) -> None:
    """Every zoo spec compiles at its smallest clip; bookkeeping equals real shapes."""
    frames, size = _tiny_clip(name)
    model = build_model(name, frames=frames, size=size, classes=3)
    model.eval()
    shapes = []
    hooks = [
        s.register_forward_hook(lambda m, i, o: shapes.append(_observed(o)))
        for s in [model.stem, *model.stages]
    ]
    with torch.no_grad():
        out = model(model.example_inputs())
    for hook in hooks:
        hook.remove()
    assert shapes == _planned(model.plan, load_spec(name).pathways is not None)
    assert out.shape == (1, 3)


def test_mapping_input_with_one_clip() -> None:
    model = build_model("x2d", classes=4).eval()
    x = torch.randn(1, 3, 1, 112, 112)
    with torch.no_grad():
        assert torch.equal(model({"rgb": x}), model(x))


def test_clip_too_short_names_the_stride() -> None:
    with pytest.raises(SpecError) as info:
        build_model("r3d_18", frames=4)
    error = info.value
    assert error.path == ("stages", 3, "temporal_stride")
    assert error.location is not None and error.location.file.endswith("r3d_18.yaml")
    assert "needs at least 5 frames" in error.message


def test_pool_larger_than_input_names_the_pool() -> None:
    with pytest.raises(SpecError) as info:
        build_model("c3d", frames=8)
    assert info.value.path == ("stages", 4, "pool", "kernel")


def test_bad_runtime_sizes() -> None:
    with pytest.raises(SpecError, match="at least 1"):
        build_model("x2d", classes=0)


def test_r2plus1d_mid_width_formula() -> None:
    # R(2+1)D eq. 1: a (2+1)D pair has the parameters of the full 3x3x3 conv
    assert r2plus1d_mid_width(64, 128, 3, 3) == 230
    full = 3 * 3 * 3 * 64 * 128
    mid = r2plus1d_mid_width(64, 128, 3, 3)
    assert abs(mid * (9 * 64 + 3 * 128) - full) < 9 * 64 + 3 * 128


def test_r2plus1d_mid_width_rule_changes_params() -> None:
    torchvision_style = count_params(build_model("r2plus1d_18"))
    paper_style = count_params(
        build_model(
            load_spec(
                "r2plus1d_18",
                stages={i: {"block": {"mid_width_from": "conv_input"}} for i in range(4)},
            )
        )
    )
    assert torchvision_style == 31505325
    assert paper_style != torchvision_style


def test_temporal_shift_moves_channels_and_has_no_params() -> None:
    shift = TemporalShift(0.25)
    x = torch.arange(8 * 3, dtype=torch.float32).reshape(1, 8, 3, 1, 1)
    y = shift(x)
    assert sum(p.numel() for p in shift.parameters()) == 0
    assert torch.equal(y[:, :2, :-1], x[:, :2, 1:]) and (y[:, :2, -1] == 0).all()
    assert torch.equal(y[:, 2:4, 1:], x[:, 2:4, :-1]) and (y[:, 2:4, 0] == 0).all()
    assert torch.equal(y[:, 4:], x[:, 4:])


def test_tsm_adds_no_parameters_to_c2d() -> None:
    tsm = load_spec("tsm_r50")
    c2d = load_spec("c2d_r50", stages={0: {"pool": None}})
    assert count_params(build_model(tsm)) == count_params(build_model(c2d))


def test_x3d_se_on_alternating_blocks() -> None:
    model = build_model("x3d_m")
    for stage in model.stages:
        with_se = [any(isinstance(m, SqueezeExcite) for m in block.modules()) for block in stage]
        assert with_se == [i % 2 == 0 for i in range(len(stage))]


def test_p3d_variants_are_different_networks() -> None:
    outputs = []
    for variant in "ABC":
        spec = load_spec(
            "r3d_18",
            clip={"frames": 4, "size": 32},
            stages=[
                {
                    "block": {"type": "p3d", "variant": variant},
                    "depth": 1,
                    "width": 16,
                    "bottleneck_ratio": 0.5,
                }
            ],
        )
        torch.manual_seed(0)
        model = build_model(spec, classes=3).eval()
        for module in model.modules():
            if isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
        torch.manual_seed(1)
        with torch.no_grad():
            outputs.append(model(torch.randn(1, 3, 4, 32, 32)))
    assert not torch.allclose(outputs[0], outputs[1])
    assert not torch.allclose(outputs[0], outputs[2])


def test_residual_blocks_start_as_identity() -> None:
    model = build_model("r3d_18", frames=8, size=32).eval()
    block = model.stages[0][1]  # same width in and out, no stride
    x = torch.rand(1, 64, 8, 16, 16)
    with torch.no_grad():
        assert torch.allclose(block(x), torch.relu(x))
