"""FLOP counts against hand-derived multiply-add counts of single layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.measure import count_flops, count_params


def test_conv3d_counts_multiply_adds() -> None:
    conv = nn.Conv3d(4, 6, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2), bias=False)
    f = count_flops(conv, torch.randn(1, 4, 8, 16, 16))
    # output 6 x 8 x 8 x 8 positions, each 4 * 3 * 5 * 5 multiply-adds
    assert f.flops == 6 * 8 * 8 * 8 * (4 * 3 * 5 * 5)
    assert f.flops_all == f.flops
    assert f.unsupported_ops == {}


def test_depthwise_conv_counts_one_channel_per_filter() -> None:
    conv = nn.Conv3d(16, 16, 3, padding=1, groups=16, bias=False)
    f = count_flops(conv, torch.randn(1, 16, 4, 8, 8))
    assert f.flops == 16 * 4 * 8 * 8 * 27


def test_linear_and_norm_and_pool() -> None:
    model = nn.Sequential(
        nn.Conv3d(3, 8, 1, bias=False),  # 8 * 3 per position
        nn.BatchNorm3d(8),  # gflops_all only: 2 per element in eval (affine)
        nn.ReLU(),  # ignored elementwise
        nn.AdaptiveAvgPool3d(1),  # gflops_all only: one per input element
        nn.Flatten(),
        nn.Linear(8, 5),  # 8 * 5
    )
    f = count_flops(model, torch.randn(1, 3, 2, 4, 4))
    positions = 2 * 4 * 4
    assert f.flops == positions * 8 * 3 + 8 * 5
    assert f.flops_all == f.flops + 2 * 8 * positions + 8 * positions
    assert f.by_module["0"] == positions * 8 * 3
    assert f.unsupported_ops == {}


def test_matmul_and_einsum_are_counted() -> None:
    class Attn(nn.Module):
        def forward(self, q: torch.Tensor) -> torch.Tensor:
            scores = torch.einsum("bnd,bmd->bnm", q, q)
            return torch.matmul(scores.softmax(-1), q)

    f = count_flops(Attn(), torch.randn(1, 10, 4))
    assert f.flops == 2 * 10 * 10 * 4


def test_unknown_operators_are_reported_not_hidden() -> None:
    class Odd(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.special.erf(x).cumsum(0)

    f = count_flops(Odd(), torch.randn(3, 3))
    assert f.unsupported_ops == {"aten::erf": 1, "aten::cumsum": 1}
    assert f.flops == 0


def test_count_flops_restores_training_mode() -> None:
    model = nn.Sequential(nn.Conv3d(1, 1, 1), nn.BatchNorm3d(1)).train()
    count_flops(model, torch.randn(1, 1, 1, 2, 2))
    assert model.training


@pytest.mark.parametrize("norm", [True, False])
def test_count_params_with_and_without_norm(norm: bool) -> None:
    model = nn.Sequential(nn.Conv3d(2, 4, 1), nn.BatchNorm3d(4), nn.LayerNorm(4))
    expected = 2 * 4 + 4 + (8 + 8 if norm else 0)
    assert count_params(model, norm=norm) == expected
