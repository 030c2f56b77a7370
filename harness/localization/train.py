"""Training a localization network on feature sequences, and detecting with it.

Videos are feature sequences ``(T_video, C)`` with their action instances in feature
steps. Training slides windows of the spec's ``T`` steps over each video (half a window
apart), so that every instance is seen whole in some window; each head's targets, loss and
decoding are its :mod:`~harness.localization.objectives` entry. Detection runs the same
windows, shifts each window's segments to video steps, and keeps the best per class after
the spec's NMS over the whole video.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import nn

from harness.localization.evaluate import Detection
from harness.localization.models import build_localizer
from harness.localization.objectives import Objective, create_objective
from harness.localization.post import suppress
from harness.spec.localization import LocalizationSpec

if TYPE_CHECKING:
    from harness.localization.features import VideoFeatures

__all__ = [
    "FeatureVideo",
    "detect",
    "detections_in_seconds",
    "feature_video",
    "train_localizer",
    "window_offsets",
]


@dataclass(frozen=True)
class FeatureVideo:
    """One untrimmed video as features, with its instances (label index, start, end) in
    feature steps."""

    name: str
    features: np.ndarray  # (T_video, C) float32
    instances: tuple[tuple[int, float, float], ...] = ()


def feature_video(video: VideoFeatures, labels: Sequence[str]) -> FeatureVideo:
    """``video``'s features with its instances in steps: step ``k`` spans ``[k, k + 1)``,
    its centre at ``video.offset + k / video.rate`` seconds."""
    index = {label: i for i, label in enumerate(labels)}

    def step(seconds: float) -> float:
        return (seconds - video.offset) * video.rate + 0.5

    instances = tuple(
        (index[i.label], step(i.start), step(i.end)) for i in video.instances if i.label in index
    )
    return FeatureVideo(video.video, video.features, instances)


def detections_in_seconds(
    rows: np.ndarray, video: VideoFeatures, labels: Sequence[str]
) -> list[Detection]:
    """:func:`detect`'s rows of ``video`` as detections in seconds, labelled by name."""

    def seconds(step: float) -> float:
        return (step - 0.5) / video.rate + video.offset

    return [
        Detection(video.video, labels[int(r[0])], seconds(r[1]), seconds(r[2]), float(r[3]))
        for r in rows
    ]


def window_offsets(length: int, steps: int) -> list[int]:
    """Start steps of windows of ``steps`` half a window apart, the last ending at the end."""
    if length <= steps:
        return [0]
    hop = max(1, steps // 2)
    offsets = list(range(0, length - steps + 1, hop))
    if offsets[-1] != length - steps:
        offsets.append(length - steps)
    return offsets


def _window(video: FeatureVideo, offset: int, steps: int) -> np.ndarray:
    chunk = video.features[offset : offset + steps]
    if len(chunk) < steps:  # NOTE: a video shorter than the window: zeros after it
        chunk = np.concatenate((chunk, np.zeros((steps - len(chunk), chunk.shape[1]),
                                                dtype=chunk.dtype)))  # fmt: skip
    return chunk.T  # (C, T)


def _samples(
    videos: Sequence[FeatureVideo], objective: Objective, steps: int
) -> list[tuple[np.ndarray, tuple[torch.Tensor, ...]]]:
    samples = []
    for video in videos:
        for offset in window_offsets(len(video.features), steps):
            shifted = [(lab, s - offset, e - offset) for lab, s, e in video.instances
                       if s >= offset and e <= offset + steps and e > s]  # fmt: skip
            samples.append((_window(video, offset, steps), objective.targets(shifted)))
    return samples


def _optimizer(
    net: nn.Module, name: str, lr: float, weight_decay: float, momentum: float
) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, nesterov=True,
                               weight_decay=weight_decay)  # fmt: skip
    return torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)


def train_localizer(
    spec: LocalizationSpec,
    videos: Sequence[FeatureVideo],
    *,
    epochs: int = 30,
    batch_size: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    optimizer: Literal["sgd", "adamw"] = "adamw",
    weight_decay: float = 0.05,
    momentum: float = 0.9,
    clip_grad_norm: float | None = None,
    callback: Callable[[int, nn.Module], None] | None = None,
) -> nn.Module:
    """Train ``spec`` on ``videos`` (one-cycle schedule); returns it in eval mode.

    Args:
        optimizer: AdamW, or SGD with Nesterov momentum.
        callback: called after each epoch with the epochs done and the network (in train
            mode; it may evaluate it, and must leave it in train mode). It may raise to stop.
    """
    torch.manual_seed(seed)
    net = build_localizer(spec)
    objective = create_objective(spec, net)
    samples = _samples(videos, objective, spec.input.steps)
    if not samples:
        raise ValueError("no training window: the training videos have no features")
    opt = _optimizer(net, optimizer, lr, weight_decay, momentum)
    total = epochs * math.ceil(len(samples) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=total)
    rng = np.random.default_rng(seed)
    net.train()
    for epoch in range(epochs):
        order = rng.permutation(len(samples))
        for i in range(0, len(order), batch_size):
            chosen = [samples[j] for j in order[i : i + batch_size]]
            x = torch.from_numpy(np.stack([c[0] for c in chosen])).float()
            targets = tuple(torch.stack([c[1][k] for c in chosen])
                            for k in range(len(chosen[0][1])))  # fmt: skip
            loss = objective.loss(net(x), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(net.parameters(), clip_grad_norm)
            opt.step()
            schedule.step()
        if callback is not None:
            callback(epoch + 1, net)
    return net.eval()


@torch.no_grad()
def detect(net: nn.Module, spec: LocalizationSpec, video: FeatureVideo) -> np.ndarray:
    """Segments of ``video``, rows of (label index, start, end, score) in video steps."""
    objective = create_objective(spec, net)
    steps = spec.input.steps
    rows = []
    for offset in window_offsets(len(video.features), steps):
        x = torch.from_numpy(_window(video, offset, steps)).float()[None]
        found = objective.decode(net(x))
        found[:, 1:3] += offset
        rows.append(found)
    table = np.concatenate(rows) if rows else np.zeros((0, 4))
    table[:, 2] = np.minimum(table[:, 2], len(video.features))
    merged = []
    for label in np.unique(table[:, 0]):
        mine = table[table[:, 0] == label]
        for index, score in suppress(mine[:, 1:3], mine[:, 3], spec.post):
            merged.append((label, *mine[int(index), 1:3], score))
    out = np.array(merged, dtype=np.float64).reshape(-1, 4)
    return out[np.argsort(-out[:, 3], kind="stable")][: spec.post.max_segments]
