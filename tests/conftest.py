"""Shared helpers for the test suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# NOTE: under pytest-xdist each worker gets one intra-op thread (and so do the harness
# processes the tests start), so that parallel workers do not oversubscribe the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(2)


@pytest.fixture
def write_yaml(tmp_path: Path):
    """Write YAML text to a file under tmp_path and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
