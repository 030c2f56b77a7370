"""A real expansion on the built-in benchmark: rows, kept path, resume without retraining."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.results import load_study_results

pytestmark = pytest.mark.slow  # ~1 min on a CPU: six tiny trainings

TINY = Path(__file__).with_name("tiny_x2d.yaml")


def _expand(results: Path, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    argv = [
        "expand", str(TINY), "--target-gflops", "0.001", "--axes", "frames,size",
        "--data", "synthetic:ci", "--epochs", "1", "--subset", "0.25", "--results", str(results),
        "--json",
    ]  # fmt: skip
    main(argv)
    return json.loads(capsys.readouterr().out)


def test_expansion_trains_records_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _expand(tmp_path, capsys)
    assert [p["step"] for p in path] == list(range(len(path))) and len(path) >= 2
    assert all({"axis", "gflops", "top1", "spec_hash"} <= set(p) for p in path)
    assert all(p["top1"] is not None for p in path)
    assert path[-1]["gflops"] == pytest.approx(0.001, rel=0.25)

    table = load_study_results(tmp_path / "expand-tiny_x2d")
    assert {"step", "axis", "parent", "kept"} <= set(table.columns)
    kept = table[table["kept"].fillna(False).astype(bool)]
    assert sorted(kept["spec_hash"]) == sorted(p["spec_hash"] for p in path)
    assert (table["step"] >= 1).sum() >= 2  # both axes tried at step 1
    step1 = table[table["step"] == 1]
    assert set(step1["axis"]) == {"frames", "size"}
    assert set(step1["parent"]) == {path[0]["spec_hash"]}

    before = len(table)
    again = _expand(tmp_path, capsys)  # a re-run resumes: same path, nothing trained
    assert [p["spec_hash"] for p in again] == [p["spec_hash"] for p in path]
    assert len(load_study_results(tmp_path / "expand-tiny_x2d")) == before
