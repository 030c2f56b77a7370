"""Audio-visual networks: audio pathways, audio -> visual fusions, AVSlowFast-R50."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import harness
from harness import build_model
from harness.compiler.audio import CrossAttention
from harness.errors import SpecError
from harness.measure import count_flops, count_params
from harness.measure.flops import example_input
from harness.measure.precheck import precheck
from harness.spec import load_spec, spec_hash

AUDIO = {"type": "audio", "sample_rate": 16000, "window": 400, "hop": 160, "mels": 32, "frames": 64}
POOLED = {"from": "audio", "to": "video", "after": [0, 1], "type": "pooled_time_conv"}
ATTENTION = {"from": "audio", "to": "video", "after": [1], "type": "cross_attention", "width": 16}

# Each fusion kind, as the spec writes it (the base is tiny_av: pooled_time_conv + concat).
FUSIONS: dict[str, dict[str, Any]] = {
    "pooled_sum": {"laterals": [POOLED]},
    "pooled_concat": {"laterals": [{**POOLED, "combine": "concat", "channel_ratio": 1}]},
    "cross_attention": {"laterals": [{**ATTENTION, "heads": 2}]},
    "cross_attention_all_keys": {"laterals": [{**ATTENTION, "keys": "all", "norm": "none"}]},
    "concat_join": {"laterals": [], "join": {"type": "concat"}},
    "scores_fixed": {"laterals": [], "join": {"type": "scores", "weights": [3, 1]}},
    "scores_learned": {"laterals": [], "join": {"type": "scores", "learned": True}},
}

# Published figures of the PyTorchVideo builder (create_audio_visual_slowfast, its
# defaults; fvcore 0.1.5, conv and linear multiply-adds): see avslowfast_r50.yaml.
AVSLOWFAST_PARAMS = 42_321_800
AVSLOWFAST_FLOPS = 53_236_102_144
# The zoo's hashes before audio entered the language (a new key must leave them alone).
PINNED_HASHES = {
    "i3d_r50_two_stream": "9d3bd3b1c1373b2d24f8e389884a2c6b2072705da647a95eb32d4811a4048c3f",
    "slowfast_r50_4x16": "a56bd0c2315a4dea2983f8080c91d1b945ea78bb66eb97d25e59728716e90edf",
    "slowfast_r50_8x8": "73995762577dd5effe56e635d4f564157e8658bc6af35d6fd4403f547167775f",
    "i3d_r50": "d4da90d37293c0d5249b014ab066d1ec83ee70c6462bfd39c71c0bf8aaa50ca2",
    "tiny_r2plus1d": "7d6c88c127a7deb64355fee9f2af40518f18de73ce9f880f525edf6dfba3829c",
}


def _tiny_av(**changes: Any) -> Any:
    """tiny_av with ``changes`` merged in (a list given replaces the list whole)."""
    return load_spec("tiny_av", **changes)


def _inputs(batch: int = 2) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"rgb": torch.randn(batch, 3, 8, 16, 16), "audio": torch.randn(batch, 1, 64, 32)}


@pytest.mark.parametrize("kind", sorted(FUSIONS))
def test_each_fusion_runs_forward_and_backward(kind: str) -> None:
    model = build_model(_tiny_av(**FUSIONS[kind]))
    model.train()
    out = model(_inputs())
    assert out.shape == (2, 8)
    out.sum().backward()
    audio = model.stem.layers["audio"]
    grads = [p.grad for p in audio.parameters()]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("kind", sorted(FUSIONS))
def test_precheck_counts_what_fvcore_counts(kind: str) -> None:
    spec = _tiny_av(**FUSIONS[kind])
    model = build_model(spec)
    fvcore = count_flops(model, example_input(model.plan.input_shape))
    assert fvcore.unsupported_ops == {}
    check = precheck(spec, batch=2)
    assert check.flops == fvcore.flops
    assert check.params == count_params(model)


def test_cross_attention_counts_its_attention() -> None:
    """Queries (8 x 4 x 4 video locations after stage 1) over 16 audio steps, width 16."""
    model = build_model(_tiny_av(**FUSIONS["cross_attention"]))
    flops = count_flops(model, example_input(model.plan.input_shape))
    heads, queries, keys, head_width = 2, 8 * 4 * 4, 16, 16 // 2
    expected = heads * queries * keys * (head_width + head_width)
    assert flops.by_operator["scaled_dot_product_attention"] == expected
    fusion = [m for m in model.modules() if isinstance(m, CrossAttention)]
    assert len(fusion) == 1


def test_packed_and_named_inputs_agree() -> None:
    model = build_model("tiny_av").eval()
    named = _inputs(1)
    shape = model.plan.input_shape
    assert shape == (4, 8, 16, 16)  # 64 x 32 spectrogram values fill one 8 x 16 x 16 channel
    packed = torch.cat((named["rgb"], named["audio"].reshape(1, 1, 8, 16, 16)), dim=1)
    with torch.no_grad():
        assert torch.allclose(model(named), model(packed))


def test_audio_pathway_layers_are_time_by_frequency() -> None:
    model = build_model("avslowfast_r50")
    audio = model.plan.pathways[2]
    assert audio.audio and audio.input_shape == (1, 128, 1, 80)
    assert audio.shape_out == (1024, 16, 1, 10)
    convs = [m for m in model.stem.layers["audio"].modules() if isinstance(m, torch.nn.Conv3d)]
    assert [c.kernel_size for c in convs] == [(9, 1, 1), (1, 1, 9)]
    for stage in model.stages:
        for conv in stage.layers["audio"].modules():
            if isinstance(conv, torch.nn.Conv3d):
                assert conv.kernel_size[1] == conv.stride[1] == 1 and conv.padding[1] == 0


def test_avslowfast_matches_pytorchvideo_params() -> None:
    assert count_params(build_model("avslowfast_r50")) == AVSLOWFAST_PARAMS


@pytest.mark.slow
def test_avslowfast_matches_pytorchvideo_flops() -> None:
    model = build_model("avslowfast_r50")
    flops = count_flops(model, example_input(model.plan.input_shape))
    assert flops.flops == AVSLOWFAST_FLOPS and flops.unsupported_ops == {}


def test_avslowfast_precheck_matches_pytorchvideo() -> None:
    check = precheck("avslowfast_r50")
    assert (check.params, check.flops) == (AVSLOWFAST_PARAMS, AVSLOWFAST_FLOPS)


def test_audio_only_model() -> None:
    model = build_model("tiny_audio")
    assert model(torch.randn(2, 1, 64, 32)).shape == (2, 8)
    assert model({"audio": torch.randn(2, 1, 64, 32)}).shape == (2, 8)
    check = precheck("tiny_audio", batch=2)
    assert check.flops == count_flops(model, example_input(model.plan.input_shape)).flops


def _error(**changes: Any) -> SpecError:
    """The error of loading and building tiny_av with ``changes``."""
    with pytest.raises(SpecError) as info:
        build_model(_tiny_av(**changes))
    return info.value


def test_unknown_stage_index_names_the_key() -> None:
    error = _error(laterals=[{**POOLED, "after": [0, 7]}])
    assert error.path == ("laterals", 0, "after", 1)


def test_missing_audio_input_names_the_key(tmp_path: Path) -> None:
    data = load_spec("tiny_av").model_dump(mode="json", by_alias=True, exclude={"published"})
    del data["inputs"]["audio"]
    path = tmp_path / "no_audio.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match="no input named 'audio'") as info:
        load_spec(path)
    assert info.value.path == ("pathways", 1, "input")


def test_audio_missing_at_runtime_names_the_input() -> None:
    model = build_model("tiny_av")
    with pytest.raises(SpecError) as info:
        model({"rgb": torch.randn(1, 3, 8, 16, 16)})
    assert info.value.path == ("inputs", "audio")


def test_wrong_spectrogram_shape_names_the_input() -> None:
    model = build_model("tiny_av")
    with pytest.raises(SpecError, match="spectrogram"):
        model({"rgb": torch.randn(1, 3, 8, 16, 16), "audio": torch.randn(1, 1, 32, 64)})


def test_heads_must_divide_the_width() -> None:
    error = _error(laterals=[{**ATTENTION, "heads": 3}])
    assert error.path == ("laterals", 0, "heads")


def test_a_pathway_cannot_mix_audio_and_video() -> None:
    error = _error(pathways={1: {"input": ["audio", "rgb"]}})
    assert error.path == ("pathways", 1, "input")


def test_audio_frames_must_reach_the_visual_frames() -> None:
    """Audio time 64 -> 32 after the stem; video 8 frames: fine. Video 6: no ratio."""
    error = _error(clip={"frames": 6})
    assert error.path == ("laterals", 0, "after")


def test_zoo_hashes_are_unchanged() -> None:
    assert {name: spec_hash(load_spec(name)) for name in PINNED_HASHES} == PINNED_HASHES


def test_new_zoo_models_are_listed() -> None:
    assert {"avslowfast_r50", "tiny_av", "tiny_audio", "tiny_video"} <= set(harness.list_zoo())


def test_a_pooled_lateral_starts_adding_nothing() -> None:
    """Its last norm starts at zero: the video pathway starts as if it had no lateral."""
    model = build_model("tiny_av").eval()
    laterals = [m for m in model.modules() if type(m).__name__ == "PooledTimeConv"]
    assert len(laterals) == 2
    with torch.no_grad():
        for lateral in laterals:
            width = lateral.convs[0].conv.in_channels
            out = lateral(torch.randn(2, width, 16, 1, 8))
            assert out.abs().max() == 0


def test_one_pathway_cannot_read_audio_and_video(tmp_path: Path) -> None:
    data = load_spec("tiny_video").model_dump(mode="json", by_alias=True, exclude={"published"})
    data["inputs"] = {"rgb": {"channels": 3}, "audio": AUDIO}
    path = tmp_path / "single.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match="lists 'pathways'") as info:
        load_spec(path)
    assert info.value.path == ("inputs",)


def test_an_audio_pathway_needs_a_conv_stem() -> None:
    patch = {"type": "patch", "width": 16, "patch": [2, 4, 4]}
    with pytest.raises(SpecError, match="needs a conv stem") as info:
        load_spec("tiny_av", **{"pathways.1.stem": patch})
    assert info.value.path == ("pathways", 1, "stem", "type")
