"""Accuracy from scores, and multi-view averaging per video."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest
import torch
from torch import nn

from harness.train import compute_metrics, evaluate
from harness.train.distributed import DistContext

CTX = DistContext(rank=0, world=1, device=torch.device("cpu"), owns_group=False)


def test_metrics_by_hand() -> None:
    scores = np.array(
        [
            [0.9, 0.05, 0.05, 0, 0, 0],  # label 0: top-1
            [0.5, 0.4, 0.1, 0, 0, 0],  # label 1: second
            [0.1, 0.2, 0.3, 0.15, 0.15, 0.1],  # label 5: sixth, misses top-5
            [0.0, 0.1, 0.9, 0, 0, 0],  # label 2: top-1
        ]
    )
    result = compute_metrics(scores, np.array([0, 1, 5, 2]), classes=6)
    assert result.top1 == 0.5 and result.top5 == 0.75
    assert result.per_class_acc[:3] == [1.0, 0.0, 1.0] and np.isnan(result.per_class_acc[3])
    assert result.mean_class_acc == pytest.approx(0.5)  # classes 0, 1, 2, 5 present


class _ByFirstValue(nn.Module):
    """Scores class 0 when a clip's first value is positive, else class 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = x.flatten(1)[:, :1]
        return torch.cat([first, -first], dim=1) * 10


def test_views_are_averaged_per_video() -> None:
    # video 0 (label 0): views +1, +1, -0.5: class 0 on average, right.
    # video 1 (label 1): views +2, -0.05, -0.05: two views lean to class 1 (softmax 0.73),
    # one is sure of class 0 (1.0); the average, (1 + 0.27 + 0.27) / 3 > 0.5, says class 0.
    values = torch.tensor([1.0, 1.0, -0.5, 2.0, -0.05, -0.05])
    batches = [
        (values[:4].view(4, 1), torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 0, 1])),
        (values[4:].view(2, 1), torch.tensor([1, 1]), torch.tensor([1, 1])),
    ]
    result = evaluate(
        _ByFirstValue(), batches, num_videos=2, classes=2, ctx=CTX, autocast=nullcontext
    )
    assert result.videos == 2 and result.top1 == 0.5 and result.per_class_acc == [1.0, 0.0]
    assert result.top5 == 1.0  # two classes: top-5 is every class
