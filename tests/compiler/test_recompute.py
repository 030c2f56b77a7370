"""Activation checkpointing: the same outputs, gradients and statistics as the plain stage."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from harness.compiler import build_model
from harness.compiler.layers import DropPath
from harness.compiler.recompute import CheckpointedStage
from harness.errors import SpecError
from harness.spec import ModelSpec, load_spec, spec_hash

TRANSFORMER = {
    "name": "tiny_vit",
    "clip": {"frames": 4, "size": 32},
    "classes": 5,
    "stem": {"type": "patch", "width": 32, "patch": [1, 8, 8]},
    "stages": [
        {
            "block": {"type": "transformer", "heads": 2, "attention": "divided", "drop_path": 0.5},
            "depth": 3,
            "width": 32,
        }
    ],
    "head": {"type": "tokens", "pool": "cls", "dropout": 0.3},
}


def _step(model: nn.Module, x: torch.Tensor, seed: int = 1) -> tuple[torch.Tensor, list]:
    model.train()
    torch.manual_seed(seed)
    out = model(x)
    out.square().sum().backward()
    return out.detach(), [p.grad for p in model.parameters()]


def _pair(spec: dict | str, setting: object, **build: int) -> tuple[nn.Module, nn.Module]:
    plain = load_spec(ModelSpec.model_validate(spec) if isinstance(spec, dict) else spec)
    checkpointed = load_spec(plain, activation_checkpoint=setting)
    a = build_model(plain, **build)
    b = build_model(checkpointed, **build)
    b.load_state_dict(a.state_dict())
    return a, b


def _assert_same_step(a: nn.Module, b: nn.Module, x: torch.Tensor) -> None:
    out_a, grads_a = _step(a, x)
    out_b, grads_b = _step(b, x)
    torch.testing.assert_close(out_b, out_a, rtol=0, atol=0)
    for ga, gb in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(gb, ga, rtol=1e-6, atol=1e-7)
    for (name, sa), sb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(sb, sa, rtol=0, atol=0, msg=name)  # norm statistics


def test_batch_norm_network_gives_the_plain_outputs_gradients_and_statistics() -> None:
    a, b = _pair("tiny_r2plus1d", True, frames=4, size=32)
    assert all(isinstance(stage, CheckpointedStage) for stage in b.stages)
    assert not any(isinstance(stage, CheckpointedStage) for stage in a.stages)
    _assert_same_step(a, b, torch.randn(3, 3, 4, 32, 32))


def test_stochastic_depth_and_dropout_draw_the_same_masks_again() -> None:
    a, b = _pair(TRANSFORMER, [0])
    assert any(isinstance(m, DropPath) for m in b.modules())
    _assert_same_step(a, b, torch.randn(4, 3, 4, 32, 32))
    # The random stream after the step is the plain step's too.
    after = [torch.rand(1) for _ in range(2)]
    _step(a, torch.randn(4, 3, 4, 32, 32), seed=5)
    plain_next = torch.rand(1)
    _step(b, torch.randn(4, 3, 4, 32, 32), seed=5)
    assert torch.equal(torch.rand(1), plain_next) and len(after) == 2


def test_a_stage_of_dropout_and_batch_norm_children() -> None:
    torch.manual_seed(0)
    layers = [nn.Conv1d(4, 4, 3, padding=1), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.ReLU()]
    plain = nn.Sequential(*layers)
    stage = CheckpointedStage(*[nn.Sequential(copy.deepcopy(layer)) for layer in layers])
    x = torch.randn(6, 4, 10)
    _assert_same_step(plain, stage, x)
    # Batch norm moved its statistics once, not twice.
    assert int(stage[1][0].num_batches_tracked) == 1


def test_eval_and_no_grad_run_the_stage_plainly() -> None:
    a, b = _pair("tiny_r2plus1d", True, frames=4, size=32)
    a.eval(), b.eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(b(x), a(x), rtol=0, atol=0)


def test_checkpointing_is_a_runtime_setting_outside_the_spec_hash() -> None:
    plain = load_spec("tiny_r2plus1d")
    for setting in (True, [0, 2], 1):
        spec = load_spec("tiny_r2plus1d", activation_checkpoint=setting)
        assert spec_hash(spec) == spec_hash(plain)
    assert load_spec("tiny_r2plus1d", activation_checkpoint=1).checkpointed_stages() == {1}
    assert load_spec("tiny_r2plus1d", activation_checkpoint=True).checkpointed_stages() == {0, 1, 2}
    assert "activation_checkpoint" not in plain.model_dump()  # a late key at its default


def test_the_children_of_a_checkpointed_stage_are_the_plain_ones() -> None:
    # The contract weights and the pre-check rely on: same children, same names, same order.
    a, b = _pair("tiny_r2plus1d", [1], frames=4, size=32)
    assert list(a.state_dict()) == list(b.state_dict())
    for plain, checked in zip(a.stages, b.stages, strict=True):
        names = [(n, type(m)) for n, m in plain.named_children()]
        assert names == [(n, type(m)) for n, m in checked.named_children()]


@pytest.mark.parametrize(("setting", "index"), [([0, 3], 1), ([7], 0)])
def test_a_stage_that_does_not_exist_names_its_key_path(setting: list, index: int) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec("tiny_r2plus1d", activation_checkpoint=setting)
    assert caught.value.path == ("activation_checkpoint", index)
    assert "stages 0..2" in caught.value.message
