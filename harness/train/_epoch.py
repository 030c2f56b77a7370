"""One training epoch, and precise BN statistics."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from harness.train._run import Run
from harness.train.distributed import all_reduce, average_buffers
from harness.train.evaluate import to_device
from harness.train.optim import get_lr, set_lr

__all__ = ["EpochStats", "NonFiniteLoss", "compute_loss", "precise_bn", "train_epoch"]


class NonFiniteLoss(Exception):
    """The training loss became NaN or infinite (the run stops; see ``str(exc)``)."""


@dataclass(frozen=True)
class EpochStats:
    """What one epoch of training did."""

    loss: float  # mean training loss (with label smoothing), all processes
    top1: float  # training accuracy on the augmented clips
    lr: float  # learning rate at the last step
    seconds: float  # wall time
    clips: int  # clips trained on, all processes


def _lr(run: Run) -> float:
    warmup = round(run.config.warmup_epochs * run.steps_per_epoch)
    return get_lr(run.step, total_steps=run.total_steps, warmup_steps=warmup, peak=run.config.lr)


def _optimizer_step(run: Run) -> None:
    if run.config.clip_grad_norm is not None:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), run.config.clip_grad_norm)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1


def _check_finite(run: Run, loss: torch.Tensor, batch: int) -> None:
    """Stop every process together when any process's loss is not finite."""
    finite = torch.isfinite(loss.detach()).to(torch.float32).reshape(1)
    all_reduce(finite, run.ctx, op="min")
    if finite.item() < 1:
        raise NonFiniteLoss(
            f"the training loss became {loss.item()} in epoch {run.epoch + 1}, batch "
            f"{batch + 1} (lr {_lr(run):.3g}); lower the learning rate or check the data"
        )


def compute_loss(run: Run, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with label smoothing, in fp32 whatever the autocast precision."""
    return nn.functional.cross_entropy(
        logits.float(), label, label_smoothing=run.config.label_smoothing
    )


def _sync(run: Run, sync: bool) -> AbstractContextManager[Any]:
    """DDP's ``no_sync`` on micro-batches that only accumulate gradients."""
    no_sync = getattr(run.net, "no_sync", None)
    return nullcontext() if sync or no_sync is None else no_sync()


def _step(run: Run, clip: Any, label: torch.Tensor, sync: bool, batch: int) -> tuple[float, int]:
    """Forward and backward one micro-batch (and update on ``sync``): (loss, hits)."""
    with _sync(run, sync):
        with run.autocast():
            logits = run.net(to_device(clip, run.ctx.device, run.config.resolved_channels_last()))
        loss = compute_loss(run, logits, label)
        _check_finite(run, loss, batch)
        run.scaler.scale(loss / run.config.grad_accum).backward()
    if sync:
        _optimizer_step(run)
    return loss.item(), int((logits.argmax(dim=1) == label).sum())


def train_epoch(run: Run, *, progress: bool = False) -> EpochStats:
    """Train one epoch over this process's shard, stepping the schedule per update.

    Raises:
        NonFiniteLoss: on every process at once; the weights are then not to be saved.
    """
    loader = run.loaders["train"]
    loader.sampler.set_epoch(run.epoch)
    run.net.train()
    batches, lr, start = len(loader), _lr(run), time.perf_counter()
    loss_sum = hits = clips = 0.0
    bar = tqdm(
        loader,
        desc=f"epoch {run.epoch + 1}/{run.fidelity.epochs}",
        leave=False,
        disable=not (progress and run.ctx.is_main),
        dynamic_ncols=True,
    )
    for batch, (clip, label, _) in enumerate(bar):
        lr = _lr(run)
        set_lr(run.optimizer, lr)
        sync = (batch + 1) % run.config.grad_accum == 0 or batch + 1 == batches
        loss, hit = _step(run, clip, label.to(run.ctx.device), sync, batch)
        loss_sum, hits, clips = loss_sum + loss * len(label), hits + hit, clips + len(label)
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2g}", refresh=False)
    sums = torch.tensor([loss_sum, hits, clips], dtype=torch.float64, device=run.ctx.device)
    totals = all_reduce(sums, run.ctx)
    average_buffers(run.model, run.ctx)
    loss_sum, hits, clips = totals.tolist()
    return EpochStats(
        loss=loss_sum / max(clips, 1),
        top1=hits / max(clips, 1),
        lr=lr,
        seconds=time.perf_counter() - start,
        clips=int(clips),
    )


def _inputs(run: Run) -> Iterator[Any]:
    for clip, _, _ in run.loaders["train"]:
        yield to_device(clip, run.ctx.device, run.config.resolved_channels_last())


def precise_bn(run: Run) -> None:
    """Recompute norm statistics as true averages over training batches (fixed weights).

    fvcore's ``update_bn_stats``, as PySlowFast's ``BN.USE_PRECISE_STATS``; the statistics
    are then averaged over processes.
    """
    from fvcore.nn.precise_bn import update_bn_stats

    batches = min(run.config.precise_bn_batches, len(run.loaders["train"]))
    if batches == 0:
        return
    run.model.train()
    with run.autocast():
        update_bn_stats(run.model, itertools.islice(_inputs(run), batches), batches)
    average_buffers(run.model, run.ctx)
