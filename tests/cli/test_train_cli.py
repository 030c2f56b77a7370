"""``harness train`` as a user runs it: the JSON contract, bad input, a NaN run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = [sys.executable, "-m", "harness", "train"]
TINY = "type: synthetic\npreset: tiny\ntrain_clips: 32\nval_clips: 16\n"
FAST = ["--frames", "4", "--size", "16", "--batch", "8", "--workers", "0", "--device", "cpu"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    (tmp_path / "tiny.yaml").write_text(TINY)
    return tmp_path


def test_json_contract(data: Path) -> None:
    done = run(
        "tiny_c2d",
        "--data",
        "tiny.yaml",
        "--epochs",
        "2",
        "--out",
        "run",
        "--json",
        *FAST,
        cwd=data,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for key in ("top1", "top5", "epochs", "train_seconds", "spec_hash", "history", "status"):
        assert key in result
    assert 0 <= result["top1"] <= result["top5"] <= 1
    assert result["epochs"] == 2 and result["status"] == "complete"
    assert (data / "run" / "last.pt").is_file() and (data / "run" / "metrics.jsonl").is_file()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--data", "synthetic:huge"), "<data>: data: unknown synthetic size 'huge'"),
        (("--epochs", "0"), "<command line>: --epochs: must be at least 1, got 0"),
        (("--views", "ten"), "--views: expected CLIPSxCROPS such as 10x3, got 'ten'"),
        (("--data", "no/such/dir"), "data.root: no such file or folder"),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    data: Path, args: tuple[str, ...], expected: str
) -> None:
    done = run("tiny_c2d", *args, *FAST, cwd=data)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert expected in lines[0]


def test_nan_loss_is_a_clear_failure(data: Path) -> None:
    done = run(
        "tiny_c2d", "--data", "tiny.yaml", "--optimizer", "sgd", "--lr", "1e8", "--epochs", "2",
        "--json", *FAST, cwd=data,
    )  # fmt: skip
    assert done.returncode == 1
    assert json.loads(done.stdout)["status"] == "nan"
    assert "harness: training stopped: the training loss became" in done.stderr
