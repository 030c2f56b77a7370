"""``harness evaluate-detections`` on ActivityNet-format files, as users run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = [sys.executable, "-m", "harness", "evaluate-detections"]

TRUTH = {
    "version": "1.3",
    "database": {
        "v1": {
            "subset": "validation",
            "duration": 60.0,
            "annotations": [
                {"segment": [0.0, 10.0], "label": "A"},
                {"segment": [20.0, 30.0], "label": "A"},
            ],
        },
        "v2": {
            "subset": "validation",
            "annotations": [{"segment": [5.0, 15.0], "label": "B"}],
        },
        "v3": {"subset": "training", "annotations": [{"segment": [1.0, 2.0], "label": "C"}]},
    },
}
PREDICTIONS = {
    "results": {
        "v1": [
            {"label": "A", "score": 0.9, "segment": [0.0, 10.0]},
            {"label": "A", "score": 0.8, "segment": [21.0, 29.0]},
            {"label": "Z", "score": 0.7, "segment": [0.0, 1.0]},
        ],
        "v2": [
            {"label": "B", "score": 0.9, "segment": [40.0, 50.0]},
            {"label": "B", "score": 0.5, "segment": [5.0, 15.0]},
        ],
    }
}


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HARNESS, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    truth, preds = tmp_path / "gt.json", tmp_path / "pred.json"
    truth.write_text(json.dumps(TRUTH, indent=1))
    preds.write_text(json.dumps(PREDICTIONS, indent=1))
    return truth, preds


def test_json_gives_map_per_threshold_and_the_average(files: tuple[Path, Path]) -> None:
    result = run(*files, "--tiou", "0.5,0.85", "--subset", "validation", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["tiou_thresholds"] == [0.5, 0.85]
    # A: 1.0 at 0.5, 0.5 at 0.85 (21-29 has tIoU 0.8); B: a miss above its hit, 0.5.
    assert report["mAP"] == [0.75, 0.5] and report["average_mAP"] == 0.625
    assert "ignored predictions of labels not in the ground truth: Z (1)" in result.stderr


def test_the_table_and_the_protocols(files: tuple[Path, Path]) -> None:
    thumos = run(*files, "--protocol", "thumos14", "--subset", "validation")
    assert thumos.returncode == 0, thumos.stderr
    lines = thumos.stdout.splitlines()
    assert lines[0] == "2 classes, 3 ground-truth instances"
    assert lines[1:] == [*(f"mAP@{t}  0.7500" for t in ("0.30", "0.40", "0.50", "0.60", "0.70")),
                         "average mAP  0.7500"]  # fmt: skip
    everything = json.loads(run(*files, "--json").stdout)  # every subset: class C, AP 0
    assert len(everything["mAP"]) == 10 and everything["ap"]["C"] == [0.0] * 10


def test_thumos14_annotation_lists(tmp_path: Path, files: tuple[Path, Path]) -> None:
    folder = tmp_path / "thumos"
    folder.mkdir()
    (folder / "A_val.txt").write_text("v1 0.0 10.0\nv1 20 30\n")
    (folder / "B_val.txt").write_text("v2 5 15\n")
    report = json.loads(run(folder, files[1], "--tiou", "0.5", "--json").stdout)
    assert report["mAP"] == [0.75]


BAD = {
    "not json": ('{"database": [1,', None, "not JSON: "),
    "no database": ({"videos": {}}, None, "<root>: missing key 'database'"),
    "segment reversed": (
        {"database": {"v": {"annotations": [{"segment": [5, 1], "label": "A"}]}}},
        ":1:",
        "database.v.annotations.0.segment: the segment ends (1) before it starts (5)",
    ),
    "label missing": (
        {"database": {"v": {"annotations": [{"segment": [0, 1]}]}}},
        None,
        "database.v.annotations.0: missing key 'label'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_ground_truth_is_one_line_and_status_2(
    tmp_path: Path, files: tuple[Path, Path], case: str
) -> None:
    content, where, expected = BAD[case]
    bad = tmp_path / "bad.json"
    bad.write_text(content if isinstance(content, str) else json.dumps(content))
    result = run(bad, files[1])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"harness: {bad}") and expected in line, line
    if where is not None:
        assert where in line


def test_bad_predictions_and_options(tmp_path: Path, files: tuple[Path, Path]) -> None:
    preds = tmp_path / "p.json"
    preds.write_text(json.dumps({"results": {"v1": [{"label": "A", "score": "high",
                                                     "segment": [0, 1]}]}}, indent=1))  # fmt: skip
    result = run(files[0], preds)
    assert result.returncode == 2
    assert f"harness: {preds}:6:5: results.v1.0.score: a score is a finite number" in result.stderr
    for args, expected in (
        (("--tiou", "0"), "--tiou: '0' is not a list of tIoU thresholds"),
        (("--protocol", "coco"), "--protocol: unknown protocol 'coco'"),
        (("--subset", "testing"), "--subset: no video of subset 'testing'"),
    ):
        result = run(*files, *args)
        assert result.returncode == 2 and expected in result.stderr, result.stderr
