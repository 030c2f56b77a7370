"""Checkpoints are written atomically: a failed write keeps the last good one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    out_dir_problem,
    save_checkpoint,
)


def test_a_failed_write_leaves_the_last_checkpoint_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "run" / "last.pt"
    save_checkpoint(path, {"epoch": 1, "weights": torch.ones(3)})
    with pytest.raises(Exception):  # noqa: B017 (pickling a lambda: whatever torch raises)
        save_checkpoint(path, {"epoch": 2, "hook": lambda: None})
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]
    payload = load_checkpoint(path)
    assert payload is not None and payload["epoch"] == 1


class _Hostile:
    def __reduce__(self) -> tuple[object, ...]:
        return (print, ("ran code from the file",))


@pytest.mark.parametrize(
    ("write", "reason"),
    [
        (lambda p: torch.save({"weights": torch.ones(2)}, p), "not a checkpoint harness wrote"),
        (lambda p: p.write_bytes(b"\x80\x04junk" * 9), "not a checkpoint harness wrote"),
        (lambda p: torch.save({"model": _Hostile()}, p), "Python objects that loading would"),
    ],
    ids=["foreign", "garbage", "hostile"],
)
def test_a_file_harness_did_not_write_is_refused_and_kept(
    tmp_path: Path, write: object, reason: str
) -> None:
    path = tmp_path / "last.pt"
    write(path)  # type: ignore[operator]
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=reason):
        load_checkpoint(path)
    assert path.read_bytes() == before


def test_out_dir_problems_are_found_before_training(tmp_path: Path) -> None:
    assert out_dir_problem(tmp_path / "new" / "run") is None
    (tmp_path / "f").write_text("x")
    assert out_dir_problem(tmp_path / "f") == f"{tmp_path / 'f'} is a file, not a folder"
    assert out_dir_problem(tmp_path / "f" / "run") == out_dir_problem(tmp_path / "f")
    (tmp_path / "run" / "metrics.jsonl").mkdir(parents=True)
    assert "metrics.jsonl is a folder" in str(out_dir_problem(tmp_path / "run"))
