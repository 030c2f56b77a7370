"""Optimisers and the learning-rate schedule.

Weight decay applies to convolution and linear weights only: never to normalisation
layers or biases (as in timm's ``param_groups_weight_decay`` and PySlowFast's
``BN.WEIGHT_DECAY = 0``). The schedule is a linear warm-up followed by a half-cosine
decay to zero, evaluated per optimiser step, so it is a pure function of the step and
needs no state in checkpoints. The optimisers run fused (one in-place kernel per step on
CPU and CUDA; on CPU about 12x faster than the per-parameter loop for X3D-M), as the cost
model assumes when it simulates a training step's memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from harness.registry import Registry
from harness.train.config import TrainConfig

__all__ = [
    "create_optimizer",
    "get_lr",
    "list_optimizers",
    "param_groups",
    "register_optimizer",
    "set_lr",
]

OptimizerFactory = Callable[[list[dict[str, Any]], TrainConfig], torch.optim.Optimizer]
OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def register_optimizer(name: str) -> Callable[[OptimizerFactory], OptimizerFactory]:
    """Decorator registering ``fn(param_groups, config) -> Optimizer`` under ``name``."""
    return OPTIMIZERS.register(name)


def list_optimizers() -> list[str]:
    """Registered optimiser names, sorted."""
    return OPTIMIZERS.names()


@register_optimizer("sgd")
def _create_sgd(groups: list[dict[str, Any]], config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        groups, lr=config.lr, momentum=config.momentum, nesterov=True, fused=True
    )


@register_optimizer("adamw")
def _create_adamw(groups: list[dict[str, Any]], config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.momentum, 0.999), fused=True)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: decayed weights, and norm parameters and biases (never decayed)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if isinstance(module, _NORMS) or name == "bias" or param.ndim <= 1:
                no_decay.append(param)
            else:
                decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def create_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``config.optimizer`` over ``model`` with the two weight-decay groups."""
    factory = OPTIMIZERS.get(config.optimizer)
    return factory(param_groups(model, config.weight_decay), config)


def get_lr(step: int, *, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Learning rate at optimiser step ``step``: linear warm-up, then cosine to zero."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    groups: Iterable[dict[str, Any]] = optimizer.param_groups
    for group in groups:
        group["lr"] = lr
