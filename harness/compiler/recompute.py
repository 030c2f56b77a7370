"""Activation checkpointing: a stage whose blocks recompute their activations in backward.

A checkpointed block keeps only its input for the backward pass; the backward pass runs
its forward again to get the rest (Chen et al., "Training Deep Nets with Sublinear Memory
Cost", 2016). Training memory falls by most of what the stage's blocks would save, for one
more forward pass of those blocks. Built on ``torch.utils.checkpoint`` (non-reentrant), so
that the result is the plain stage's, output and gradients:

- dropout and stochastic depth draw the same masks again: the random state is restored
  before the forward pass is recomputed (``preserve_rng_state``);
- batch norm updates its running statistics once per step, not twice: the recomputation
  restores the statistics its forward pass moved (:func:`keep_norm_statistics`);
- the whole block is recomputed (``early_stop=False``): the multiply-adds recomputed are
  exactly the block's forward ones, which the pre-check counts (``train_gflops``).

Outside training (eval mode, or no gradient) the stage runs as a plain ``nn.Sequential``.
The children and their names are those of the plain stage: weights load either way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.utils.checkpoint import checkpoint

__all__ = ["CheckpointedStage", "is_recomputing", "keep_norm_statistics"]


def is_recomputing() -> bool:
    """Whether the code running now is inside a backward pass: a checkpointed block's
    forward called from there is its recomputation."""
    return bool(torch._C._current_graph_task_id() != -1)


@contextlib.contextmanager
def keep_norm_statistics(module: nn.Module) -> Iterator[None]:
    """Run a forward pass of ``module`` that leaves its norms' running statistics as they
    were (the recomputation of a forward pass that already updated them)."""
    norms = [
        m
        for m in module.modules()
        if isinstance(m, _NormBase) and m.track_running_stats and m.running_mean is not None
    ]
    kept = [[t.clone() for t in _statistics(m)] for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for norm, saved in zip(norms, kept, strict=True):
                for t, value in zip(_statistics(norm), saved, strict=True):
                    t.copy_(value)


def _statistics(norm: _NormBase) -> list[torch.Tensor]:
    stats = [norm.running_mean, norm.running_var, norm.num_batches_tracked]
    return [t for t in stats if t is not None]


class CheckpointedStage(nn.Sequential):
    """A stage (its blocks in order, then its pool) whose every child is checkpointed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and torch.is_grad_enabled()):
            return super().forward(x)
        for child in self:
            x = checkpoint(
                child,
                x,
                use_reentrant=False,
                early_stop=False,
                context_fn=_contexts(child),
            )
        return x


Contexts = tuple[contextlib.AbstractContextManager[None], contextlib.AbstractContextManager[None]]


def _contexts(child: nn.Module) -> Callable[[], Contexts]:
    """``checkpoint``'s context_fn: nothing around the forward pass; the recomputation
    keeps the norm statistics."""

    def contexts() -> Contexts:
        return contextlib.nullcontext(), keep_norm_statistics(child)

    return contexts
