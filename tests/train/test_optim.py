"""Optimisers, weight-decay groups and the warm-up + cosine schedule."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from _fast import config
from torch import nn

from harness.train import create_optimizer, get_lr, list_optimizers
from harness.train.optim import param_groups


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv3d(3, 4, 3, bias=True), nn.BatchNorm3d(4), nn.Linear(4, 2))


def test_no_weight_decay_on_norms_and_biases() -> None:
    net = _net()
    decay, no_decay = param_groups(net, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(net[0].weight), id(net[2].weight)}
    assert len(no_decay["params"]) == 4  # conv bias, norm weight and bias, linear bias


@pytest.mark.parametrize("name", list_optimizers())
def test_every_optimizer_steps(name: str) -> None:
    net = _net()
    optimizer = create_optimizer(net, config(optimizer=name, lr=0.1))
    before = net[0].weight.detach().clone()
    net[0](torch.randn(1, 3, 3, 3, 3)).sum().backward()
    optimizer.step()
    assert not torch.equal(before, net[0].weight)


def test_warmup_then_cosine_to_zero() -> None:
    lrs = [get_lr(s, total_steps=100, warmup_steps=10, peak=1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[55] == pytest.approx(0.5)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert lrs[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))
    assert get_lr(0, total_steps=10, warmup_steps=0, peak=2.0) == 2.0
