"""Temporal action detection metrics: mAP at temporal IoU thresholds, and AR@AN.

Our own implementation of the evaluation ActivityNet defines for its detection task
(Caba Heilbron et al., CVPR 2015; the challenge's ``Eval_detection.py`` protocol), also
used for THUMOS14 at other thresholds:

- per class, the predictions of every video are sorted by score (highest first; ties keep
  the order of the file);
- each prediction is matched, greedily, to the ground-truth instance of its video and class
  with the highest temporal IoU that is not yet matched; at a threshold t it is a true
  positive when that tIoU is at least t, else a false positive. A ground truth already
  matched is skipped for the next best one, but a prediction whose best unmatched
  candidate is below t is a false positive (the reference's order: candidates are visited
  by decreasing tIoU and the first below t ends the search);
- precision and recall over the ranked list give an interpolated (VOC-style) average
  precision: the area under the precision envelope, at the recall levels reached;
- mAP at a threshold is the mean AP over the classes of the ground truth; the average mAP
  is their mean over the thresholds (ActivityNet: 0.50:0.05:0.95; THUMOS14: 0.3 to 0.7).

A prediction whose label is not a class of the ground truth is ignored (and counted, to be
reported); a prediction for a video without ground truth of its class is a false positive.

Average recall at an average number of proposals (AR@AN, the ActivityNet proposal task):
each video keeps its highest-scoring proposals, as many as AN proposals per video on
average would allow (the same fraction of every video's proposals), and recall is averaged
over the tIoU thresholds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = [
    "LOCALIZATION_METRICS",
    "PROTOCOLS",
    "Detection",
    "DetectionResult",
    "Instance",
    "average_precision",
    "average_recall",
    "evaluate_detections",
    "interpolated_ap",
    "temporal_iou",
]

# What scoring a localizer's detections gives, with the sense of "better" (the metrics a
# localization search optimises; harness.localization.fit computes them).
LOCALIZATION_METRICS: dict[str, Literal["maximize"]] = {
    "average_mAP": "maximize",  # mAP averaged over the protocol's tIoU thresholds
    "mAP_50": "maximize",  # mAP at tIoU 0.5
}

# tIoU thresholds of each benchmark's detection protocol.
PROTOCOLS: dict[str, tuple[float, ...]] = {
    "activitynet": tuple(round(0.5 + 0.05 * i, 2) for i in range(10)),
    "thumos14": (0.3, 0.4, 0.5, 0.6, 0.7),
}


@dataclass(frozen=True)
class Instance:
    """One ground-truth action instance."""

    video: str
    label: str
    start: float  # seconds (or any unit, the same as the predictions')
    end: float


@dataclass(frozen=True)
class Detection:
    """One predicted segment with its confidence."""

    video: str
    label: str
    start: float
    end: float
    score: float


@dataclass(frozen=True)
class DetectionResult:
    """mAP at each threshold, its average, and each class's AP."""

    tiou_thresholds: tuple[float, ...]
    mAP: tuple[float, ...]  # one per threshold, over the classes of the ground truth
    average_mAP: float
    ap: dict[str, tuple[float, ...]]  # class -> AP at each threshold
    ignored: dict[str, int] = field(default_factory=dict)  # labels not in the ground truth

    def to_json(self) -> dict[str, object]:
        return {
            "tiou_thresholds": list(self.tiou_thresholds),
            "mAP": list(self.mAP),
            "average_mAP": self.average_mAP,
            "ap": {label: list(values) for label, values in self.ap.items()},
            "ignored_labels": dict(self.ignored),
        }


def temporal_iou(segment: tuple[float, float], others: np.ndarray) -> np.ndarray:
    """tIoU of ``segment`` (start, end) with each row of ``others`` (N, 2).

    Segments that only touch have an intersection of zero, so a tIoU of zero.
    """
    others = np.asarray(others, dtype=np.float64).reshape(-1, 2)
    start = np.maximum(segment[0], others[:, 0])
    end = np.minimum(segment[1], others[:, 1])
    inter = np.clip(end - start, 0.0, None)
    union = (segment[1] - segment[0]) + (others[:, 1] - others[:, 0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the monotone envelope of precision over recall (VOC-style)."""
    prec = np.concatenate(([0.0], precision, [0.0]))
    rec = np.concatenate(([0.0], recall, [1.0]))
    for i in range(len(prec) - 2, -1, -1):
        prec[i] = max(prec[i], prec[i + 1])
    steps = np.flatnonzero(rec[1:] != rec[:-1]) + 1
    return float(np.sum((rec[steps] - rec[steps - 1]) * prec[steps]))


def _ranked(detections: Sequence[Detection]) -> list[Detection]:
    """By score, highest first; ties in the given order (a stable sort)."""
    order = np.argsort(-np.array([d.score for d in detections], dtype=np.float64), kind="stable")
    return [detections[i] for i in order]


def average_precision(
    truth: Sequence[Instance], detections: Sequence[Detection], thresholds: Sequence[float]
) -> np.ndarray:
    """AP of one class at each tIoU threshold (see the module docstring)."""
    if not truth:
        raise ValueError("a class without ground truth has no average precision")
    if not detections:
        return np.zeros(len(thresholds))
    by_video: dict[str, list[int]] = {}
    for i, instance in enumerate(truth):
        by_video.setdefault(instance.video, []).append(i)
    bounds = np.array([[t.start, t.end] for t in truth], dtype=np.float64)
    ranked = _ranked(detections)
    tp = np.zeros((len(thresholds), len(ranked)))
    matched = np.zeros((len(thresholds), len(truth)), dtype=bool)
    for k, det in enumerate(ranked):
        candidates = np.array(by_video.get(det.video, []), dtype=np.int64)
        if candidates.size == 0:
            continue  # no instance of its class in its video: a false positive everywhere
        overlaps = temporal_iou((det.start, det.end), bounds[candidates])
        order = np.argsort(-overlaps, kind="stable")
        for t, threshold in enumerate(thresholds):
            for j in order:
                if overlaps[j] < threshold:
                    break
                if not matched[t, candidates[j]]:
                    matched[t, candidates[j]] = True
                    tp[t, k] = 1.0
                    break
    hits = np.cumsum(tp, axis=1)
    ranks = np.arange(1, len(ranked) + 1, dtype=np.float64)
    recall, precision = hits / len(truth), hits / ranks
    return np.array([interpolated_ap(precision[t], recall[t]) for t in range(len(thresholds))])


def evaluate_detections(
    truth: Iterable[Instance], detections: Iterable[Detection], thresholds: Sequence[float]
) -> DetectionResult:
    """mAP of ``detections`` against ``truth`` at each threshold, over the truth's classes."""
    thresholds = tuple(float(t) for t in thresholds)
    if not thresholds or any(not 0.0 < t <= 1.0 for t in thresholds):
        raise ValueError(f"tIoU thresholds must be in (0, 1], got {list(thresholds)}")
    truth_by_class: dict[str, list[Instance]] = {}
    for instance in truth:
        truth_by_class.setdefault(instance.label, []).append(instance)
    if not truth_by_class:
        raise ValueError("the ground truth has no action instance")
    dets_by_class: dict[str, list[Detection]] = {label: [] for label in truth_by_class}
    ignored: Counter[str] = Counter()
    for det in detections:
        if det.label in dets_by_class:
            dets_by_class[det.label].append(det)
        else:
            ignored[det.label] += 1
    ap = {
        label: tuple(float(v) for v in average_precision(instances, dets_by_class[label],
                                                          thresholds))
        for label, instances in sorted(truth_by_class.items())
    }  # fmt: skip
    table = np.array(list(ap.values()))
    maps = tuple(float(v) for v in table.mean(axis=0))
    return DetectionResult(thresholds, maps, float(np.mean(maps)), ap, dict(ignored))


def average_recall(
    truth: Iterable[Instance],
    proposals: Iterable[Detection],
    thresholds: Sequence[float] = PROTOCOLS["activitynet"],
    proposals_per_video: Sequence[int] = (1, 5, 10, 50, 100),
) -> dict[int, float]:
    """AR@AN: recall averaged over ``thresholds`` when every video keeps the same fraction
    of its proposals, AN per video on average; labels are ignored (class-agnostic)."""
    truth_by_video: dict[str, list[Instance]] = {}
    for instance in truth:
        truth_by_video.setdefault(instance.video, []).append(instance)
    props_by_video: dict[str, list[Detection]] = {v: [] for v in truth_by_video}
    for p in proposals:
        if p.video in props_by_video:
            props_by_video[p.video].append(p)
    total = sum(len(p) for p in props_by_video.values())
    videos = len(truth_by_video)
    instances = sum(len(t) for t in truth_by_video.values())
    result = {}
    for an in proposals_per_video:
        fraction = min(1.0, an * videos / total) if total else 0.0
        found = np.zeros(len(thresholds))
        for video, gts in truth_by_video.items():
            ranked = _ranked(props_by_video[video])
            kept = ranked[: int(len(ranked) * fraction + 1e-9)]
            if not kept:
                continue
            bounds = np.array([[p.start, p.end] for p in kept])
            best = np.array([temporal_iou((g.start, g.end), bounds).max() for g in gts])
            found += np.array([(best >= t).sum() for t in thresholds])
        result[an] = float(np.mean(found / instances))
    return result
