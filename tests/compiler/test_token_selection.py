"""Token selection in transformer stages: top-k locations and merged frames.

Shapes, the class tokens, the straight-through gate, the merge rule, the plan's reduced grid
and the children order it implies, bad specs, the spec hash, and FLOPs against hand counts
(fvcore and the pre-check) for a small TimeSformer and for TimeSformer-Base.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
import torch
import torch.nn.functional as F

from harness import build_model
from harness.compiler.blocks.attention import TransformerBlock
from harness.compiler.plan import Grid
from harness.compiler.select import (
    FrameMerge,
    TopKSelection,
    create_token_selection,
    frame_weights,
    list_score_heads,
    list_selections,
    temporal_change,
)
from harness.compiler.tokens import TokenGrid
from harness.errors import SpecError
from harness.measure import count_flops, count_params, estimate_train_memory, precheck
from harness.measure._fold import fold_plan
from harness.spec import ModelSpec, canonical_json, load_spec, spec_hash
from harness.spec.attention import RelevanceScoreSpec, TokenSelectionSpec
from harness.zoo import list_zoo

# A small TimeSformer: divided attention with the time projection, 8 frames of 4 x 4
# patches (8 x 8 pixels) plus a clip class token, width 64, 2 heads, 4 blocks, 5 classes.
SMALL = {
    "clip": {"frames": 8, "size": 32},
    "stem": {"width": 64, "patch": [1, 8, 8]},
    "stages": {0: {"depth": 4, "width": 64, "block": {"heads": 2}}},
}
CLASSES = 5


def _small(selection: dict[str, Any] | None = None, **changes: Any) -> ModelSpec:
    spec = load_spec("timesformer_base", **SMALL)
    if changes:
        spec = load_spec(spec, **changes)
    if selection is None:
        return spec
    return load_spec(spec, stages={0: {"token_selection": selection}})


def _grid(frames: int, height: int, width: int, tokens: str = "cls") -> Grid:
    return Grid(frames, height, width, tokens)


def _selection(spec: dict[str, Any], grid: Grid) -> torch.nn.Module:
    node = TokenSelectionSpec.model_validate(spec)
    out = Grid(*node.kept(grid.extent), grid.tokens)
    return create_token_selection(node, dim=8, grid=grid, grid_out=out)


# -- the modules ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("selection", "tokens"),
    [
        ({"after": 2, "keep_ratio": 0.5}, 1 + 8 * 8),
        ({"after": 1, "keep_ratio": 0.25, "score": {"type": "mlp", "window": 3}}, 1 + 8 * 4),
        ({"after": 3, "keep_ratio": 0.5, "method": "merge"}, 1 + 4 * 16),
    ],
)
def test_the_stage_reads_fewer_tokens_after_the_selection(
    selection: dict[str, Any], tokens: int
) -> None:
    model = build_model(_small(selection), classes=CLASSES)
    (stage,) = model.plan.stages
    after = selection["after"]
    seen: list[int] = []
    for block in stage.blocks:
        grid = TokenGrid.from_grid(block.grid)
        seen.append(int(grid.global_cls) + grid.frames * grid.locations)
    assert seen == [1 + 8 * 16] * after + [tokens] * (4 - after)
    assert stage.shape_out[1:] == stage.blocks[-1].grid.extent
    x = torch.randn(2, 3, 8, 32, 32)
    captured: list[torch.Tensor] = []
    block = model.stages[0][stage.child_index(after)]
    block.register_forward_pre_hook(lambda _, args: captured.append(args[0]))
    assert model(x).shape == (2, CLASSES)
    assert captured[0].shape == (2, tokens, 64)


def test_the_selection_sits_where_child_index_says() -> None:
    """The compiler's children order and the plan's ``child_index`` agree."""
    spec = _small({"after": 3, "keep_ratio": 0.5})
    model = build_model(spec, classes=CLASSES)
    (plan,) = model.plan.stages
    children = list(model.stages[0].children())
    assert len(children) == len(plan.blocks) + 1
    assert [plan.child_index(j) for j in range(4)] == [0, 1, 2, 4]
    assert isinstance(children[3], TopKSelection)
    for block in plan.blocks:
        assert isinstance(children[plan.child_index(block.index)], TransformerBlock)
    assert build_model(_small(), classes=CLASSES).plan.stages[0].child_index(3) == 3


def test_topk_keeps_the_same_locations_of_every_frame_in_order() -> None:
    torch.manual_seed(0)
    module = _selection({"after": 1, "keep_ratio": 0.25}, _grid(3, 4, 4))
    x = torch.randn(2, 1 + 3 * 16, 8)
    out = module(x)
    assert out.shape == (2, 1 + 3 * 4, 8)
    assert torch.equal(out[:, 0], x[:, 0])  # the class token
    frames, kept = x[:, 1:].reshape(2, 3, 16, 8), out[:, 1:].reshape(2, 3, 4, 8)
    score = module.score(frames)
    for b in range(2):
        # each kept token is the input token at one location, the same in every frame
        where = [int((frames[b, 0] == token).all(-1).nonzero()) for token in kept[b, 0]]
        assert where == sorted(where)
        assert set(where) == set(score[b].topk(4).indices.tolist())
        assert torch.equal(kept[b], frames[b][:, where])


def test_straight_through_gate_changes_no_value_and_trains_the_score() -> None:
    torch.manual_seed(0)
    module = _selection({"after": 1, "keep_ratio": 0.5}, _grid(2, 2, 4)).train()
    x = torch.randn(3, 1 + 2 * 8, 8, requires_grad=True)
    out = module(x)
    frames = x[:, 1:].reshape(3, 2, 8, 8)
    index = module.score(frames).topk(4).indices.sort(1).values
    plain = torch.stack([frames[b][:, index[b]] for b in range(3)]).flatten(1, 2)
    assert torch.equal(out[:, 1:], plain)  # exactly, not approximately
    (out * torch.randn_like(out)).sum().backward()
    grads = [p.grad for p in module.score.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_the_score_head_trains_inside_a_network() -> None:
    torch.manual_seed(0)
    model = build_model(_small({"after": 2, "keep_ratio": 0.5}), classes=CLASSES).train()
    F.cross_entropy(model(torch.randn(2, 3, 8, 32, 32)), torch.tensor([0, 1])).backward()
    selection = model.stages[0][2]
    assert isinstance(selection, TopKSelection)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in selection.parameters())


def test_per_frame_class_tokens_are_kept_besides_the_k() -> None:
    torch.manual_seed(0)
    module = _selection({"after": 1, "keep_ratio": 0.5}, _grid(3, 2, 2, "frame_cls"))
    x = torch.randn(2, 3 * (1 + 4), 8)
    out = module(x).reshape(2, 3, 1 + 2, 8)
    assert torch.equal(out[:, :, 0], x.reshape(2, 3, 5, 8)[:, :, 0])


@pytest.mark.parametrize("method", ["topk", "merge"])
def test_keep_ratio_one_keeps_every_token(method: str) -> None:
    module = _selection({"after": 1, "keep_ratio": 1.0, "method": method}, _grid(4, 2, 3))
    x = torch.randn(2, 1 + 4 * 6, 8)
    assert torch.equal(module(x), x)


def test_merge_averages_the_most_similar_adjacent_frames() -> None:
    torch.manual_seed(0)
    frames = torch.randn(2, 6, 4, 8)
    frames[0, 3] = frames[0, 2]  # clip 0: frames 2 and 3 are alike
    frames[1, 1] = frames[1, 0] * 2  # clip 1: frames 0 and 1 (cosine 1)
    module = _selection({"after": 1, "keep_ratio": 5 / 6, "method": "merge"}, _grid(6, 2, 2))
    assert isinstance(module, FrameMerge)
    cls = torch.randn(2, 1, 8)
    out = module(torch.cat((cls, frames.flatten(1, 2)), dim=1))
    assert torch.equal(out[:, :1], cls)
    out = out[:, 1:].reshape(2, 5, 4, 8)
    assert torch.allclose(out[0], frames[0, [0, 1, 2, 4, 5]])
    assert torch.allclose(out[1, 0], frames[1, 0] * 1.5)
    assert torch.allclose(out[1, 1:], frames[1, 2:])


def test_merged_frames_are_weighed_by_the_frames_they_hold() -> None:
    """Down to one frame, a size-weighted mean is the mean of all frames, in any order."""
    torch.manual_seed(0)
    module = _selection({"after": 1, "keep_ratio": 0.2, "method": "merge"}, _grid(5, 1, 2))
    x = torch.randn(3, 1 + 5 * 2, 8)
    out = module(x)
    assert out.shape == (3, 1 + 2, 8)
    assert torch.allclose(out[:, 1:], x[:, 1:].reshape(3, 5, 2, 8).mean(1), atol=1e-6)


def test_frame_weights_are_the_recency_mean() -> None:
    for recency in (0.0, 0.7, 2.0):
        weights = torch.exp(-recency * (6 - torch.arange(7, dtype=torch.float64)))
        expected = (weights / weights.sum()).tolist()
        assert frame_weights(7, recency) == pytest.approx(expected, rel=1e-12)


def test_the_temporal_context_is_the_change_around_each_frame() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 7, 3, 4)
    for window in (1, 3, 5):
        half = window // 2
        means = torch.stack(
            [x[:, max(0, t - half) : t + half + 1].mean(1) for t in range(7)], dim=1
        )
        torch.testing.assert_close(temporal_change(x, window), x - means)
    # A static clip has no change anywhere: the head then sees only the tokens.
    still = torch.randn(1, 1, 3, 4).expand(1, 7, 3, 4)
    assert temporal_change(still, 3).abs().max() < 1e-6


@pytest.mark.parametrize(
    ("changes", "tokens"),
    [
        ({"stages": {0: {"block": {"attention": "joint"}}}}, "cls"),
        ({"stages": {0: {"block": {"attention": ["space", "time"]}}}}, "cls"),
        (
            {
                "stem": {"cls_token": "none"},
                "head": {"pool": "mean"},
                "stages": {0: {"block": {"attention": "factorized_dot_product"}}},
            },
            "patches",
        ),
        ({"stem": {"cls_token": "frame"}, "stages": {0: {"block": {"attention": "space"}}}}, ""),
    ],
)
def test_every_attention_scope_runs_after_topk(changes: dict[str, Any], tokens: str) -> None:
    spec = _small({"after": 1, "keep_ratio": 0.5}, **changes)
    model = build_model(spec, classes=CLASSES)
    out = model(torch.randn(2, 3, 8, 32, 32))
    assert out.shape == (2, CLASSES)
    assert count_flops(model, torch.randn(1, 3, 8, 32, 32)).unsupported_ops == {}


def test_vivit_factorised_encoder_hands_fewer_tokens_to_its_frame_tokens() -> None:
    spec = load_spec(
        "vivit_b_fe",
        clip={"frames": 4, "size": 32},
        stem={"width": 32, "patch": [2, 8, 8]},
        stages={
            0: {"depth": 2, "width": 32, "block": {"heads": 2}},
            1: {"width": 32},
            2: {"depth": 1, "width": 32, "block": {"heads": 2}},
        },
    )
    spec = load_spec(spec, stages={0: {"token_selection": {"after": 1, "keep_ratio": 0.5}}})
    model = build_model(spec, classes=3)
    assert model.plan.stages[0].shape_out == (32, 2, 8, 1)
    assert model(torch.randn(1, 3, 4, 32, 32)).shape == (1, 3)


def test_the_registries_are_the_spec_language() -> None:
    kinds = RelevanceScoreSpec.model_fields["type"].annotation
    assert list_score_heads() == sorted(get_args(kinds))
    methods = TokenSelectionSpec.model_fields["method"].annotation
    assert list_selections() == sorted(get_args(methods))


# -- bad specs and the hash -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("selection", "path", "message"),
    [
        ({"after": 4, "keep_ratio": 0.5}, ("token_selection", "after"), "1 to 3"),
        ({"after": 0, "keep_ratio": 0.5}, ("token_selection", "after"), "at least 1"),
        ({"after": 2, "keep_ratio": 0.0}, ("token_selection", "keep_ratio"), "above 0"),
        ({"after": 2, "keep_ratio": 1.5}, ("token_selection", "keep_ratio"), "at most 1"),
        (
            {"after": 2, "keep_ratio": 0.5, "method": "merge", "score": {"type": "mlp"}},
            ("token_selection", "score"),
            "no 'score'",
        ),
        (
            {"after": 2, "keep_ratio": 0.5, "score": {"window": 2}},
            ("token_selection", "score", "window"),
            "odd",
        ),
        (
            {"after": 2, "keep_ratio": 0.5, "method": "drop"},
            ("token_selection", "method"),
            "'merge'",
        ),
    ],
)
def test_bad_selections_name_their_key(
    selection: dict[str, Any], path: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SpecError, match=message) as info:
        build_model(_small(selection))
    assert info.value.path[: 2 + len(path)] == ("stages", 0, *path)


def test_selection_in_a_conv_stage_is_refused_at_its_key() -> None:
    spec = load_spec("tiny_c2d", stages={1: {"token_selection": {"after": 1, "keep_ratio": 0.5}}})
    with pytest.raises(SpecError, match="transformer blocks") as info:
        build_model(spec)
    assert info.value.path == ("stages", 1, "token_selection")


def test_a_yaml_error_points_at_the_line(tmp_path: Path) -> None:
    path = tmp_path / "selecting.yaml"
    path.write_text(
        "base: timesformer_base\n"
        "stages:\n"
        "  0:\n"
        "    token_selection: {after: 12, method: topk, keep_ratio: 0.5}\n"
    )
    with pytest.raises(SpecError, match="1 to 11") as info:
        build_model(path)
    assert info.value.path == ("stages", 0, "token_selection", "after")
    assert info.value.location is not None and info.value.location.line == 4


def test_specs_without_a_selection_keep_their_hash() -> None:
    for name in list_zoo():
        spec = load_spec(name)
        assert "token_selection" not in canonical_json(spec), name
    base = load_spec("timesformer_base")
    same = load_spec(base, stages={0: {"token_selection": None}})
    assert spec_hash(same) == spec_hash(base)
    selecting = load_spec(base, stages={0: {"token_selection": {"after": 4, "keep_ratio": 0.5}}})
    assert spec_hash(selecting) != spec_hash(base)
    # the default score is written out: the same network always has the same hash
    explicit = load_spec(
        base,
        stages={0: {"token_selection": {"after": 4, "keep_ratio": 0.5, "score": {}}}},
    )
    assert spec_hash(explicit) == spec_hash(selecting)


# -- costs ----------------------------------------------------------------------------------
def _block_flops(d: int, t: int, p: int) -> int:
    """A divided block with the time projection on t frames of p patches plus a class token."""
    time = p * t * 4 * d * d + 2 * p * t * t * d + t * p * d * d  # qkv+proj, attention, fc
    space = t * (p + 1) * 4 * d * d + 2 * t * (p + 1) ** 2 * d  # the class token joins frames
    mlp = (1 + t * p) * 2 * d * 4 * d
    return time + space + mlp


def _hand_count(
    *, d: int, t: int, p: int, patch: int, depth: int, classes: int, after: int,
    t_out: int, p_out: int, score: int,
) -> int:  # fmt: skip
    embed = t * p * d * 3 * patch * patch
    blocks = after * _block_flops(d, t, p) + (depth - after) * _block_flops(d, t_out, p_out)
    return embed + blocks + score + d * classes


SMALL_CASES = {
    # name: (selection, frames after, locations after, score head multiply-adds)
    "none": (None, 8, 16, 0),
    "topk 1.0": ({"keep_ratio": 1.0}, 8, 16, 8 * 16 * 64),
    "topk 0.5": ({"keep_ratio": 0.5}, 8, 8, 8 * 16 * 64),
    "topk 0.25": ({"keep_ratio": 0.25}, 8, 4, 8 * 16 * 64),
    "topk 0.5 mlp": (
        {"keep_ratio": 0.5, "score": {"type": "mlp", "window": 3, "recency": 1.0}},
        8,
        8,
        8 * 16 * (128 * 32 + 32 * 1),  # 2 x 64 -> 32 -> 1 on every patch token
    ),
    "merge 0.5": ({"keep_ratio": 0.5, "method": "merge"}, 4, 16, 0),
}


@pytest.mark.parametrize("case", list(SMALL_CASES))
def test_small_timesformer_flops_equal_the_hand_count(case: str) -> None:
    selection, t_out, p_out, score = SMALL_CASES[case]
    spec = _small(None if selection is None else {"after": 2, **selection})
    hand = _hand_count(
        d=64, t=8, p=16, patch=8, depth=4, classes=CLASSES, after=2 if selection else 4,
        t_out=t_out, p_out=p_out, score=score,
    )  # fmt: skip
    model = build_model(spec, classes=CLASSES)
    fvcore = count_flops(model, torch.randn(1, 3, 8, 32, 32))
    assert fvcore.flops == hand
    assert fvcore.unsupported_ops == {}
    assert precheck(spec, classes=CLASSES).flops == hand


def test_precheck_of_a_selecting_stage_is_the_unfolded_network() -> None:
    """The stage is simulated whole; its memory and parameters are those of the full build."""
    selection = {"after": 2, "keep_ratio": 0.5, "score": {"type": "mlp"}}
    spec = _small(selection, stages={0: {"depth": 8}})
    model = build_model(spec, classes=CLASSES)
    _, folds = fold_plan(model.plan)
    assert folds == ()
    _, plain_folds = fold_plan(build_model(_small(stages={0: {"depth": 8}})).plan)
    assert plain_folds != ()  # without the selection the stage would be folded
    for device, precision, optimizer in (("cpu", "fp32", "sgd"), ("cuda", "bf16", "adamw")):
        settings: dict[str, Any] = dict(
            batch=2, device=device, precision=precision, optimizer=optimizer
        )
        check = precheck(spec, classes=CLASSES, **settings)
        full = estimate_train_memory(model, model.plan.input_shape, **settings)
        assert check.train_memory == full, device
    assert check.params == count_params(model)
    assert check.flops == count_flops(model, torch.randn(1, 3, 8, 32, 32)).flops


def test_training_memory_follows_the_kept_tokens() -> None:
    peaks = [
        precheck(_small({"after": 1, "keep_ratio": r}), batch=4).train_memory.peak_bytes
        for r in (1.0, 0.5, 0.25)
    ]
    assert peaks[0] > peaks[1] > peaks[2]


def test_timesformer_base_keeping_half_after_block_4_is_the_hand_count() -> None:
    """8 x 224: 196 patches a frame, 98 kept after block 4; a linear score (768 -> 1)."""
    selection = {"after": 4, "keep_ratio": 0.5, "score": {"type": "linear"}}
    spec = load_spec("timesformer_base", stages={0: {"token_selection": selection}})
    hand = _hand_count(
        d=768, t=8, p=196, patch=16, depth=12, classes=400, after=4,
        t_out=8, p_out=98, score=8 * 196 * 768,
    )  # fmt: skip
    assert precheck(spec).flops == hand
