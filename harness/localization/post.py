"""From a localization network's outputs to scored segments: decoding and (soft-)NMS."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from harness.localization.evaluate import temporal_iou
from harness.spec.localization import PostProcessSpec

__all__ = ["Segments", "decode_anchor_free", "decode_bmn", "suppress"]

# (label index, start, end, score) rows, in input steps
Segments = np.ndarray


def suppress(segments: np.ndarray, scores: np.ndarray, spec: PostProcessSpec) -> np.ndarray:
    """Indices kept by NMS (hard) or new scores by Gaussian soft-NMS, best first.

    Returns (K, 2) rows of (index into ``segments``, score after suppression), at most
    ``spec.max_segments``, only scores at or above ``spec.score_threshold``.
    """
    scores = scores.astype(np.float64).copy()
    alive = np.flatnonzero(scores >= spec.score_threshold)
    kept: list[tuple[int, float]] = []
    while alive.size and len(kept) < spec.max_segments:
        best = alive[np.argmax(scores[alive])]
        kept.append((int(best), float(scores[best])))
        alive = alive[alive != best]
        if not alive.size:
            break
        overlap = temporal_iou((segments[best, 0], segments[best, 1]), segments[alive])
        if spec.nms == "hard":
            alive = alive[overlap <= spec.iou_threshold]
        else:
            scores[alive] *= np.exp(-(overlap**2) / spec.sigma)
            alive = alive[scores[alive] >= spec.score_threshold]
    return np.array(kept, dtype=np.float64).reshape(-1, 2)


def decode_anchor_free(
    output: torch.Tensor, centres: torch.Tensor, steps: int, spec: PostProcessSpec
) -> Segments:
    """One window's ``(classes + 2, N)`` output -> segments per class after NMS."""
    logits, distances = output[:-2].float(), output[-2:].float()
    probs = torch.sigmoid(logits).cpu().numpy()
    starts = (centres - distances[0]).clamp(0, steps).cpu().numpy()
    ends = (centres + distances[1]).clamp(0, steps).cpu().numpy()
    bounds = np.stack((starts, ends), axis=1)
    rows = []
    for label in range(probs.shape[0]):
        candidates = np.flatnonzero(probs[label] >= spec.score_threshold)
        candidates = candidates[bounds[candidates, 1] > bounds[candidates, 0]]
        if not candidates.size:
            continue
        kept = suppress(bounds[candidates], probs[label, candidates], spec)
        for index, score in kept:
            start, end = bounds[candidates[int(index)]]
            rows.append((label, start, end, score))
    return _best(rows, spec)


def decode_bmn(
    confidence: torch.Tensor, boundaries: torch.Tensor, spec: PostProcessSpec
) -> Segments:
    """One window's BMN maps -> class-agnostic proposals (label 0) after soft-NMS.

    A proposal's score is BMN's fusion: start probability x end probability x the
    regression and classification confidences of its (duration, start) cell.
    """
    conf = confidence.float().cpu().numpy()
    start, end = boundaries.float().cpu().numpy()
    durations, steps = conf.shape[1:]
    d, s = np.meshgrid(np.arange(durations), np.arange(steps), indexing="ij")
    inside = s + d < steps
    d, s = d[inside], s[inside]
    e = s + d
    scores = start[s] * end[e] * conf[0, d, s] * conf[1, d, s]
    bounds = np.stack((s.astype(np.float64), e + 1.0), axis=1)
    kept = suppress(bounds, scores, spec)
    rows = [(0, *bounds[int(i)], score) for i, score in kept]
    return _best(rows, spec)


def _best(rows: Sequence[Sequence[float]], spec: PostProcessSpec) -> Segments:
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-table[:, 3], kind="stable")[: spec.max_segments]
    return table[order]
