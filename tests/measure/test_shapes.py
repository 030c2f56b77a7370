"""Fast shape rules stand in for PyTorch's meta kernels: they must agree exactly."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

import harness
from harness.compiler import min_clip
from harness.measure import _meta
from harness.measure._meta import Simulator, meta_model, simulate_train_step
from harness.measure._policy import MetaBuild
from harness.measure._shapes import get_shape_rule
from harness.spec import load_spec, realise
from harness.zoo import list_zoo


def _meta_tensor(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(shape, device="meta", dtype=dtype, requires_grad=dtype.is_floating_point)


x5 = _meta_tensor
CASES: dict[str, Callable[[], torch.Tensor]] = {
    "conv strided, padded, dilated": lambda: F.conv3d(
        x5(2, 4, 9, 17, 17),
        x5(8, 4, 3, 5, 5),
        x5(8),
        stride=(2, 1, 3),
        padding=(1, 2, 0),
        dilation=(1, 2, 1),
    ),
    "conv grouped": lambda: F.conv3d(x5(1, 8, 4, 6, 6), x5(8, 1, 3, 3, 3), padding=1, groups=8),
    "conv 2d": lambda: F.conv2d(x5(2, 3, 15, 15), x5(4, 3, 3, 3), stride=2),
    "batch norm train": lambda: F.batch_norm(
        x5(2, 4, 3, 5, 5), x5(4).detach(), x5(4).detach(), x5(4), x5(4), training=True
    ),
    "batch norm eval": lambda: F.batch_norm(
        x5(2, 4, 3, 5, 5), x5(4).detach(), x5(4).detach(), x5(4), x5(4), training=False
    ),
    "batch norm bf16": lambda: F.batch_norm(
        x5(2, 4, 3, 5, 5, dtype=torch.bfloat16), None, None, training=True
    ),
    "broadcast mul": lambda: x5(2, 4, 3, 5, 5) * torch.sigmoid(x5(2, 4, 1, 1, 1)),
    "broadcast add": lambda: x5(1, 4, 1, 5, 1) + x5(3, 4, 2, 5, 7),
    "scalar ops": lambda: (x5(3, 4) * 2.0 + 1) / 3 - 0.5,
    "unary": lambda: F.gelu(F.silu(torch.tanh(F.hardswish(x5(3, 5))))),
    "reduce": lambda: x5(2, 4, 3, 5, 5).mean((2, 3, 4), keepdim=True).sum((0, -1)),
    "in place": lambda: x5(3, 4).detach().mul_(2).add_(x5(3, 4).detach()).clamp_(0),
    "mean, then its expanded gradient": lambda: x5(2, 4, 3, 5, 5).mean((2, 3, 4)) / 3,
    "linear": lambda: F.linear(x5(3, 4), x5(10, 4), x5(10)),
    "cross-entropy": lambda: F.cross_entropy(
        F.linear(x5(3, 4), x5(10, 4), x5(10)), torch.zeros(3, dtype=torch.long, device="meta")
    ),
    "channels-last": lambda: F.relu(
        x5(2, 4, 3, 5, 5).contiguous(memory_format=torch.channels_last_3d)
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rule_agrees_with_the_meta_kernel(case: str) -> None:
    with Simulator(check_rules=True):  # raises if a rule disagrees with its kernel
        out = CASES[case]()
        if out.requires_grad:
            out.float().sum().backward()


def test_rules_decline_what_they_do_not_handle() -> None:
    aten = torch.ops.aten
    rule = get_shape_rule(aten.add.Tensor)
    assert rule is not None
    assert rule(x5(3, 1), x5(1, 4, dtype=torch.bfloat16)) is None  # mixed dtypes
    assert rule(x5(3, 4), torch.empty(4, device="meta")) is None  # different ranks
    assert rule(x5(3, 4), x5(5, 4)) is None  # shapes that do not broadcast
    assert get_shape_rule(aten.eq.Tensor) is None  # not a rule: the kernel runs


def test_rules_cover_the_loss_the_linear_head_and_a_mean_gradient() -> None:
    # PyTorch's meta kernels for these are Python (about 1 ms a call together per step).
    aten = torch.ops.aten
    scores = torch.empty(3, 10, device="meta")
    target = torch.zeros(3, dtype=torch.long, device="meta")
    expanded = torch.empty(2, 4, 1, 1, 1, device="meta").expand(2, 4, 3, 5, 5)
    weight_t = torch.empty(10, 10, device="meta").t()
    calls = {
        aten.div.Scalar: (expanded, 3),
        aten._log_softmax.default: (scores, 1, False),
        aten._log_softmax_backward_data.default: (scores, scores, 1, torch.float32),
        aten.nll_loss_forward.default: (scores, target, None, 1, -100),
        aten.addmm.default: (torch.empty(10, device="meta"), scores, weight_t),
    }
    for op, args in calls.items():
        rule = get_shape_rule(op)
        assert rule is not None and rule(*args) is not None, op


@pytest.mark.parametrize("name", list_zoo())
def test_zoo_step_is_the_same_with_and_without_rules(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_spec(name)
    frames, size = min_clip(realise(spec))
    frames, size = max(frames, 4), max(size, 32)
    with MetaBuild():
        model = harness.build_model(spec, frames=frames, size=size)
    shape = model.plan.input_shape
    settings = dict(device_type="cpu", precision="bf16", optimizer="adamw")
    with meta_model(model) as meta:
        fast = simulate_train_step(meta, shape, 2, check_rules=True, **settings)  # type: ignore[arg-type]
    monkeypatch.setattr(_meta, "get_shape_rule", lambda op: None)
    with meta_model(model) as meta:
        slow = simulate_train_step(meta, shape, 2, **settings)  # type: ignore[arg-type]
    assert fast == slow
