"""Fixtures of the data tests: small videos written with PyAV."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from _media import write_video


@pytest.fixture
def video(tmp_path: Path) -> Callable[..., Path]:
    """Write a test video under tmp_path: ``video("a/b.avi", frames=30)``."""

    def make(name: str = "clip.avi", **kwargs: object) -> Path:
        return write_video(tmp_path / name, **kwargs)  # type: ignore[arg-type]

    return make
