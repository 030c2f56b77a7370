"""Detection mAP and AR@AN against values computed by hand."""

from __future__ import annotations

import pytest

from harness.localization import (
    PROTOCOLS,
    Detection,
    Instance,
    average_recall,
    evaluate_detections,
    interpolated_ap,
    temporal_iou,
)


def gt(*items: tuple[str, float, float], video: str = "v") -> list[Instance]:
    return [Instance(video, label, start, end) for label, start, end in items]


def det(*items: tuple[str, float, float, float], video: str = "v") -> list[Detection]:
    return [Detection(video, label, start, end, score) for label, start, end, score in items]


def test_temporal_iou_by_hand() -> None:
    others = [[0, 10], [20, 30], [10, 20], [5, 15]]
    assert temporal_iou((21, 29), others).tolist() == [0.0, 0.8, 0.0, 0.0]
    assert temporal_iou((0, 10), others)[[0, 2, 3]].tolist() == [1.0, 0.0, 5 / 15]


def test_interpolated_ap_takes_the_precision_envelope() -> None:
    # precision 1, 0.5, 2/3 at recall 1/3, 1/3, 2/3: envelope 1 up to 1/3, then 2/3 to 2/3.
    ap = interpolated_ap([1.0, 0.5, 2 / 3], [1 / 3, 1 / 3, 2 / 3])
    assert ap == pytest.approx(1 / 3 + (1 / 3) * (2 / 3), abs=1e-15)


def test_one_class_at_every_activitynet_threshold() -> None:
    truth = gt(("A", 0, 10), ("A", 20, 30))
    preds = det(("A", 0, 10, 0.9), ("A", 21, 29, 0.8), ("A", 50, 60, 0.7))
    result = evaluate_detections(truth, preds, PROTOCOLS["activitynet"])
    # 21-29 has tIoU 0.8 with 20-30: a hit up to the threshold 0.80, a miss above it.
    assert result.mAP == (1.0,) * 7 + (0.5,) * 3
    assert result.average_mAP == pytest.approx(0.85, abs=1e-15)
    assert result.tiou_thresholds == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def test_two_classes_average_their_ap() -> None:
    truth = gt(("A", 0, 10), ("A", 20, 30), ("B", 5, 15))
    preds = det(("A", 0, 10, 0.9), ("A", 21, 29, 0.8), ("B", 40, 50, 0.9), ("B", 5, 15, 0.5))
    result = evaluate_detections(truth, preds, [0.5])
    assert result.ap == {"A": (1.0,), "B": (0.5,)}  # B: a miss ranked above its hit
    assert result.mAP == (0.75,)


def test_a_duplicate_is_a_false_positive() -> None:
    truth = gt(("A", 0, 10))
    assert evaluate_detections(truth, det(("A", 0, 10, 0.9), ("A", 0, 10, 0.8)), [0.5]).mAP == (
        1.0,
    )
    # The better-placed duplicate ranked second: at 0.95 only it hits, after a miss.
    preds = det(("A", 0, 9, 0.9), ("A", 0, 10, 0.8))
    assert evaluate_detections(truth, preds, [0.5, 0.95]).mAP == (1.0, 0.5)


def test_matching_takes_the_best_unmatched_instance_above_the_threshold() -> None:
    truth = gt(("A", 0, 10), ("A", 8, 20))
    # The second prediction's best instance (tIoU 10/11) is taken; its next best has tIoU
    # 3/20 < 0.5: a false positive.
    preds = det(("A", 0, 10, 0.9), ("A", 0, 11, 0.8))
    assert evaluate_detections(truth, preds, [0.5]).ap["A"] == (0.5,)
    # Its own best first: the higher-scored one takes 0-10, the other 8-20 (tIoU 12/12).
    preds = det(("A", 0, 10, 0.9), ("A", 8, 20, 0.8))
    assert evaluate_detections(truth, preds, [0.5]).ap["A"] == (1.0,)


def test_no_predictions_is_zero() -> None:
    result = evaluate_detections(gt(("A", 0, 10), ("B", 3, 4)), [], [0.3, 0.7])
    assert result.mAP == (0.0, 0.0) and result.average_mAP == 0.0


def test_a_label_without_ground_truth_is_reported_and_ignored() -> None:
    truth = gt(("A", 0, 10))
    preds = det(("A", 0, 10, 0.5), ("Z", 0, 10, 0.99), ("Z", 1, 2, 0.9))
    result = evaluate_detections(truth, preds, [0.5])
    assert result.ignored == {"Z": 2} and result.mAP == (1.0,) and list(result.ap) == ["A"]


def test_ties_in_score_keep_the_order_of_the_file() -> None:
    truth = gt(("A", 0, 10))
    miss_first = det(("A", 30, 40, 0.5), ("A", 0, 10, 0.5))
    assert evaluate_detections(truth, miss_first, [0.5]).mAP == (0.5,)
    assert evaluate_detections(truth, miss_first[::-1], [0.5]).mAP == (1.0,)


def test_touching_segments_do_not_overlap() -> None:
    truth = gt(("A", 0, 10))
    assert evaluate_detections(truth, det(("A", 10, 20, 0.9)), [0.1]).mAP == (0.0,)


def test_a_prediction_in_a_video_without_that_class_is_a_false_positive() -> None:
    truth = gt(("A", 0, 10))
    preds = [Detection("other", "A", 0, 10, 0.9), *det(("A", 0, 10, 0.5))]
    assert evaluate_detections(truth, preds, [0.5]).mAP == (0.5,)


def test_average_recall_at_average_numbers_of_proposals() -> None:
    truth = [*gt(("A", 0, 10), video="v1"), *gt(("B", 0, 10), video="v2")]
    proposals = [
        *det(("x", 0, 10, 0.9), ("x", 50, 60, 0.1), video="v1"),
        *det(("x", 30, 40, 0.9), ("x", 0, 10, 0.5), video="v2"),
    ]
    # AN 1: half of each video's proposals (its best); AN 2: all of them.
    assert average_recall(truth, proposals, proposals_per_video=(1, 2)) == {1: 0.5, 2: 1.0}


def test_thresholds_outside_zero_to_one_are_refused() -> None:
    with pytest.raises(ValueError, match="thresholds"):
        evaluate_detections(gt(("A", 0, 1)), [], [0.0])
