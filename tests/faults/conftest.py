"""Fault tests: searches that are killed, run out of disk or memory, or diverge.

Each test runs real ``harness search`` processes (or the search loop in-process) on a
space over ``tiny_c2d`` at a reduced fidelity, so one trained trial takes seconds on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from _faults import PARAMS, SPACE

SpaceWriter = Callable[..., Path]


@pytest.fixture
def fault_space(tmp_path: Path) -> SpaceWriter:
    """Write a space file; every candidate of the default parameters trains (budget 100)."""

    def write(
        name: str,
        *,
        budget: float = 100.0,
        params: str = PARAMS,
        train: str = "{batch_size: 16, num_workers: 0}",
        sampler: str = "tpe",
    ) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            SPACE.format(name=name, budget=budget, params=params, train=train, sampler=sampler)
        )
        return path

    return write
