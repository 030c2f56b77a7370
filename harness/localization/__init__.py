"""Temporal action localization: untrimmed video, detection metrics and their files.

:mod:`harness.localization.evaluate` computes mAP at temporal IoU thresholds and AR@AN as
ActivityNet defines them; :mod:`harness.localization.formats` reads ActivityNet JSON,
submission files and THUMOS14 annotation lists.
"""

from __future__ import annotations

from harness.localization.evaluate import (
    PROTOCOLS,
    Detection,
    DetectionResult,
    Instance,
    average_precision,
    average_recall,
    evaluate_detections,
    interpolated_ap,
    temporal_iou,
)
from harness.localization.formats import load_activitynet, load_detections, load_thumos14

__all__ = [
    "PROTOCOLS",
    "Detection",
    "DetectionResult",
    "Instance",
    "average_precision",
    "average_recall",
    "evaluate_detections",
    "interpolated_ap",
    "load_activitynet",
    "load_detections",
    "load_thumos14",
    "temporal_iou",
]
