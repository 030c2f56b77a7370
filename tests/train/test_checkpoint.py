"""Checkpoints are written atomically: a failed write keeps the last good one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness.train.checkpoint import load_checkpoint, save_checkpoint


def test_a_failed_write_leaves_the_last_checkpoint_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "run" / "last.pt"
    save_checkpoint(path, {"epoch": 1, "weights": torch.ones(3)})
    with pytest.raises(Exception):  # noqa: B017 (pickling a lambda: whatever torch raises)
        save_checkpoint(path, {"epoch": 2, "hook": lambda: None})
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]
    payload = load_checkpoint(path)
    assert payload is not None and payload["epoch"] == 1
