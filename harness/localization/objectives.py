"""What each localization head learns from and how its outputs become segments.

One :class:`Objective` per head type (a registry, keyed as the spec's ``head.type``):
``targets`` of one window from its instances (label index, start, end in window steps),
the ``loss`` of a batch, and ``decode`` of one window's output into rows of (label index,
start, end, score), window steps.

Anchor-free (ActionFormer, Zhang et al., ECCV 2022): an output step is positive for an
instance when its centre lies within 1.5 level strides of the instance's centre, inside
it, and the larger of its distances to the instance's ends is in the level's range (level
``l`` of ``L``: ``[4 * 2**(l-1), 4 * 2**l)`` input steps, the first from 0 and the last
without bound); a step inside several instances takes the shortest. Loss: sigmoid focal
loss on class scores (alpha 0.25, gamma 2) plus ``1 - tIoU`` of the distances of positive
steps, both over the number of positives.

BMN (Lin et al., ICCV 2019): start (end) targets are the largest overlap of a step with a
region of 3 steps around an instance's start (end), over the step; the confidence map's
target is the best tIoU of each (duration, start) proposal with an instance. Loss: class-
balanced binary cross-entropy of the boundaries (positives above 0.5), the map's
regression (mean squared error, high / medium / low tIoU cells balanced, above 0.7 /
0.3) times 10, and its classification (balanced cross-entropy, positives above 0.9).
Proposals are class-agnostic (label 0): evaluate them by AR@AN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.localization.models import AnchorFreeNet, BMNNet
from harness.localization.post import decode_anchor_free, decode_bmn
from harness.registry import Registry
from harness.spec.localization import LocalizationSpec

__all__ = ["OBJECTIVES", "Objective", "create_objective"]

Instances = Sequence[tuple[int, float, float]]


class Objective(Protocol):
    # True: the head finds actions without telling their classes (proposals), and is scored
    # against class-agnostic ground truth
    class_agnostic: bool

    def targets(self, instances: Instances) -> tuple[torch.Tensor, ...]: ...

    def loss(self, output: Any, targets: tuple[torch.Tensor, ...]) -> torch.Tensor: ...

    def decode(self, output: Any) -> np.ndarray: ...


OBJECTIVES: Registry[type[Any]] = Registry("localization objective")


def create_objective(spec: LocalizationSpec, net: nn.Module) -> Objective:
    """The objective of ``spec``'s head, for the built ``net``."""
    return OBJECTIVES.get(spec.head.type)(spec, net)


def _balanced_bce(p: torch.Tensor, target: torch.Tensor, threshold: float) -> torch.Tensor:
    """Binary cross-entropy with positives (target above ``threshold``) and negatives
    weighted to count equally: ``r / 2`` and ``r / (2 (r - 1))``, ``r`` = cells / positives."""
    positive = (target > threshold).float()
    ratio = positive.numel() / positive.sum().clamp(min=1.0)
    weight_neg = 0.5 * ratio / (ratio - 1).clamp(min=1e-6)
    p = p.clamp(1e-6, 1 - 1e-6)
    loss = 0.5 * ratio * positive * torch.log(p) + weight_neg * (1 - positive) * torch.log(1 - p)
    return -loss.mean()


def _focal(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha = 0.25 * targets + 0.75 * (1 - targets)
    return alpha * ce * (1 - p_t) ** 2


@OBJECTIVES.register("anchor_free")
class AnchorFreeObjective:
    class_agnostic = False

    def __init__(self, spec: LocalizationSpec, net: nn.Module) -> None:
        assert isinstance(net, AnchorFreeNet)
        self.spec, self.net = spec, net
        self.levels = spec.neck.levels if spec.neck else 1

    def targets(self, instances: Instances) -> tuple[torch.Tensor, ...]:
        """(classes, N) class targets, (2, N) distance targets, (N,) positive mask."""
        centre, stride = self.net.centres(), self.net.get_buffer("stride")
        n = centre.numel()
        labels, distances = torch.zeros(self.spec.classes, n), torch.zeros(2, n)
        positive = torch.zeros(n, dtype=torch.bool)
        best = torch.full((n,), math.inf)
        level = torch.log2(stride).round()
        low = torch.where(level == 0, 0.0, 4 * 2 ** (level - 1))
        high = torch.where(level == self.levels - 1, math.inf, 4 * 2**level)
        for label, start, end in instances:
            d_start, d_end = centre - start, end - centre
            central = (centre - (start + end) / 2).abs() <= 1.5 * stride
            reach = torch.maximum(d_start, d_end)
            ok = (d_start > 0) & (d_end > 0) & central & (reach >= low) & (reach < high)
            ok &= end - start < best
            best = torch.where(ok, torch.tensor(end - start), best)
            labels[:, ok] = 0.0
            labels[label, ok] = 1.0
            distances[0, ok], distances[1, ok] = d_start[ok], d_end[ok]
            positive |= ok
        return labels, distances, positive

    def loss(self, output: Any, targets: tuple[torch.Tensor, ...]) -> torch.Tensor:
        labels, distances, positive = targets
        logits, predicted = output[:, :-2], output[:, -2:]
        count = positive.sum().clamp(min=1).float()
        focal = _focal(logits, labels).sum() / count
        if not positive.any():
            return focal
        p = predicted.permute(0, 2, 1)[positive]  # (P, 2)
        t = distances.permute(0, 2, 1)[positive]
        inter = torch.minimum(p[:, 0], t[:, 0]) + torch.minimum(p[:, 1], t[:, 1])
        union = p.sum(1) + t.sum(1) - inter
        return focal + (1 - inter / union.clamp(min=1e-6)).sum() / count

    def decode(self, output: Any) -> np.ndarray:
        return decode_anchor_free(output[0], self.net.centres(), self.spec.input.steps,
                                  self.spec.post)  # fmt: skip


def _overlap_with_regions(edges: list[float], steps: int) -> torch.Tensor:
    """For each step [t, t+1): its largest overlap with a region of 3 steps around one of
    ``edges``, over the step's length (1)."""
    best = torch.zeros(steps)
    t = torch.arange(steps, dtype=torch.float32)
    for edge in edges:
        inter = (torch.minimum(t + 1, torch.tensor(edge + 1.5))
                 - torch.maximum(t, torch.tensor(edge - 1.5))).clamp(min=0)  # fmt: skip
        best = torch.maximum(best, inter)
    return best


@OBJECTIVES.register("bmn")
class BMNObjective:
    class_agnostic = True

    def __init__(self, spec: LocalizationSpec, net: nn.Module) -> None:
        assert isinstance(net, BMNNet)
        self.spec, self.net = spec, net
        steps, durations = spec.input.steps, net.durations
        d, s = torch.meshgrid(torch.arange(durations), torch.arange(steps), indexing="ij")
        self.starts, self.ends = s.float(), (s + d + 1).float()
        self.inside = (s + d < steps).float()

    def targets(self, instances: Instances) -> tuple[torch.Tensor, ...]:
        steps = self.spec.input.steps
        iou = torch.zeros_like(self.starts)
        for _, start, end in instances:
            inter = (torch.minimum(self.ends, torch.tensor(end))
                     - torch.maximum(self.starts, torch.tensor(start))).clamp(min=0)  # fmt: skip
            union = (self.ends - self.starts) + (end - start) - inter
            iou = torch.maximum(iou, inter / union)
        starts = _overlap_with_regions([s for _, s, _ in instances], steps)
        ends = _overlap_with_regions([e for _, _, e in instances], steps)
        return iou * self.inside, starts, ends

    def loss(self, output: Any, targets: tuple[torch.Tensor, ...]) -> torch.Tensor:
        confidence, boundaries = output
        iou, start, end = targets
        tem = _balanced_bce(boundaries[:, 0], start, 0.5) + _balanced_bce(boundaries[:, 1], end,
                                                                           0.5)  # fmt: skip
        inside = self.inside.expand_as(iou)
        regression = self._regression(confidence[:, 0], iou, inside)
        classification = _balanced_bce(confidence[:, 1][inside > 0], iou[inside > 0], 0.9)
        return tem + 10.0 * regression + classification

    @staticmethod
    def _regression(predicted: torch.Tensor, iou: torch.Tensor, inside: torch.Tensor) -> Any:
        """Mean squared error, high (> 0.7), medium (> 0.3) and low tIoU cells balanced: as
        many medium and low cells as high ones, drawn at random."""
        high = (iou > 0.7).float() * inside
        medium = ((iou > 0.3) & (iou <= 0.7)).float() * inside
        low = (iou <= 0.3).float() * inside
        n_high = high.sum().clamp(min=1.0)
        keep_medium = medium * (torch.rand_like(iou) < n_high / medium.sum().clamp(min=1.0))
        keep_low = low * (torch.rand_like(iou) < n_high / low.sum().clamp(min=1.0))
        weight = high + keep_medium + keep_low
        return (weight * (predicted - iou) ** 2).sum() / weight.sum().clamp(min=1.0)

    def decode(self, output: Any) -> np.ndarray:
        confidence, boundaries = output
        return decode_bmn(confidence[0], boundaries[0], self.spec.post)
