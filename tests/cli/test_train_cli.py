"""``harness train`` as a user runs it: the JSON contract, bad input, a NaN run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli._train import DEFAULT_EPOCHS

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


def test_the_data_is_told_with_the_result(data: Path) -> None:
    done = run("tiny_c2d", "--data", "tiny.yaml", "--subset", "0.5", *FAST, cwd=data)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        "data: the synthetic benchmark (tiny preset): 8 classes, 32 train and 16 val clips "
        "(16 of them trained on: the --subset); clips 3x4x16x16"
    )
    assert lines[1].strip().startswith("training ") and lines[1].strip().endswith("(complete)")
    assert lines[-1].startswith(f"trained {DEFAULT_EPOCHS} epochs in ") and done.stderr == ""


def test_a_detected_layout_is_named(data: Path) -> None:
    export = subprocess.run(
        [sys.executable, "-m", "harness", "data", "export", "synthetic:tiny", "videos",
         "--clips", "2", "--val-clips", "1", "--size", "32"],
        capture_output=True, text=True, cwd=data, timeout=300,
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    done = run("tiny_c2d", "--data", "videos", *FAST, cwd=data)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        "data: videos (folder layout): 8 classes, 16 train and 8 val clips; clips 3x4x16x16"
    )


def test_a_finished_run_is_shown_again_saying_so(data: Path) -> None:
    args = ("tiny_c2d", "--data", "tiny.yaml", "--out", "run", *FAST)
    first = run(*args, "--json", cwd=data)
    assert first.returncode == 0, first.stderr
    again = run(*args, "--json", cwd=data)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["history"] == json.loads(first.stdout)["history"]
    assert again.stderr == (
        f"harness: warning: run/last.pt is a finished run of these settings ({DEFAULT_EPOCHS} "
        "epochs): its "
        "result is shown again, nothing is trained (--no-resume trains afresh)\n"
    )
    text = run(*args, cwd=data)
    assert text.returncode == 0 and text.stderr == again.stderr
    assert "(complete, shown again)" in text.stdout


def test_an_old_run_of_other_settings_is_never_shown_as_this_one(data: Path) -> None:
    args = ("tiny_c2d", "--data", "tiny.yaml", "--out", "run", *FAST)
    assert run(*args, "--epochs", "2", "--json", cwd=data).returncode == 0
    for extra, words in (
        (("--epochs", "1"), "run holds a run of these settings trained for 2 epochs, more than "
                            "the 1 asked for"),
        (("--epochs", "2", "--lr", "0.5"), "run holds a checkpoint of a different run"),
    ):  # fmt: skip
        done = run(*args, *extra, cwd=data)
        assert done.returncode == 2 and done.stdout == "", done.stderr
        assert done.stderr.count("\n") == 1 and f"harness: {words}" in done.stderr
    fresh = run(*args, "--epochs", "1", "--no-resume", "--json", cwd=data)
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads(fresh.stdout)["epochs"] == 1
    assert fresh.stderr.startswith("harness: warning: set aside the files of an earlier run: ")
    aside = sorted(p.name.split(".other-")[0] for p in (data / "run").glob("*.other-*"))
    assert aside == ["last.pt", "metrics.jsonl", "result.json"]
    assert len((data / "run" / "metrics.jsonl").read_text().splitlines()) == 1
