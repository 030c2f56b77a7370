"""Evaluation: top-1, top-5 and mean class accuracy, from one or several views per video.

Every item of an evaluation data set is one view (temporal clip x spatial crop) of one
video; the softmax scores of a video's views are averaged before its accuracy is taken
(the multi-view testing of Feichtenhofer et al.'s SlowFast and X3D). Across processes the
per-video score sums are added up, so every rank reports the same figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.train.distributed import DistContext, all_reduce

__all__ = ["EvalResult", "compute_metrics", "evaluate", "to_device"]


@dataclass(frozen=True)
class EvalResult:
    """Accuracies of one evaluation (fractions in [0, 1])."""

    top1: float
    top5: float
    mean_class_acc: float
    per_class_acc: list[float] = field(default_factory=list)
    videos: int = 0  # videos scored
    seconds: float = 0.0


def compute_metrics(scores: np.ndarray, labels: np.ndarray, classes: int) -> EvalResult:
    """Accuracies of ``(N, classes)`` scores against ``N`` labels.

    Mean class accuracy averages the top-1 of the classes that have videos; a class
    without videos gets NaN in ``per_class_acc`` and no weight in the mean.
    """
    if len(labels) == 0:
        return EvalResult(0.0, 0.0, 0.0, [float("nan")] * classes, 0)
    k = min(5, classes)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hit1 = top[:, 0] == labels
    hit5 = (top == labels[:, None]).any(axis=1)
    per_class = [
        float(hit1[labels == c].mean()) if (labels == c).any() else float("nan")
        for c in range(classes)
    ]
    present = [a for a in per_class if not np.isnan(a)]
    return EvalResult(
        top1=float(hit1.mean()),
        top5=float(hit5.mean()),
        mean_class_acc=float(np.mean(present)),
        per_class_acc=per_class,
        videos=len(labels),
    )


def to_device(clip: Any, device: torch.device, channels_last: bool) -> Any:
    """Move a clip tensor (or a mapping of them) to ``device``, optionally channels-last."""
    if isinstance(clip, dict):
        return {k: to_device(v, device, channels_last) for k, v in clip.items()}
    clip = clip.to(device, non_blocking=True)
    if channels_last and clip.dim() == 5:
        clip = clip.contiguous(memory_format=torch.channels_last_3d)
    return clip


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    num_videos: int,
    classes: int,
    ctx: DistContext,
    autocast: Callable[[], AbstractContextManager[Any]],
    channels_last: bool = False,
) -> EvalResult:
    """Score every item of ``loader`` and average the views of each video.

    Args:
        model: the network (put in eval mode here, restored afterwards).
        loader: batches of ``(clip, label, video)``; this process's shard.
        num_videos: videos in the whole evaluation split.
        classes: number of classes.
        ctx: the process group (scores are summed over it).
        autocast: makes the precision context to run the model in.
        channels_last: use the channels_last_3d memory format.
    """
    start = time.perf_counter()
    was_training = model.training
    model.eval()
    scores = torch.zeros(num_videos, classes, dtype=torch.float64, device=ctx.device)
    counts = torch.zeros(num_videos, dtype=torch.float64, device=ctx.device)
    labels = torch.full((num_videos,), -1, dtype=torch.int64, device=ctx.device)
    for clip, label, video in loader:
        with autocast():
            logits = model(to_device(clip, ctx.device, channels_last))
        video = video.to(ctx.device)
        scores.index_add_(0, video, logits.float().softmax(dim=1).double())
        counts.index_add_(0, video, torch.ones_like(video, dtype=torch.float64))
        labels[video] = label.to(ctx.device)
    all_reduce(scores, ctx)
    all_reduce(counts, ctx)
    all_reduce(labels, ctx, op="max")
    model.train(was_training)
    seen = (counts > 0).cpu().numpy()
    result = compute_metrics(scores.cpu().numpy()[seen], labels.cpu().numpy()[seen], classes)
    return EvalResult(**{**result.__dict__, "seconds": time.perf_counter() - start})
