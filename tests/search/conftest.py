"""A tiny space over a tiny ResNet, written into each test's own directory."""

from __future__ import annotations

from pathlib import Path

import pytest

BASE = """\
base: r3d_18
clip: {frames: 8, size: 32}
stem: {width: 8}
stages:
  0: {width: 8}
  1: {width: 16}
  2: {width: 16}
  3: {width: 16}
"""

SPACE = """\
name: {name}
base: base.yaml
data: synthetic:ci
objectives: {{top1: maximize, gflops: minimize}}
budgets: {{gflops: {budget}}}
fidelity: {{epochs: 1}}
params:
  stages.1.width: {{type: int, low: 8, high: 64, step: 8}}
  stages.1.block.type: [basic, r2plus1d]
  stages.1.block.temporal_kernel:
    {{type: categorical, choices: [1, 3], when: {{stages.1.block.type: basic}}}}
tied:
  stages.2.block.type: stages.1.block.type
"""


@pytest.fixture
def tiny_space(tmp_path: Path):
    """Write the tiny space (with a gflops budget) and return its path."""

    def write(name: str = "tiny_test", budget: float = 100.0) -> Path:
        (tmp_path / "base.yaml").write_text(BASE)
        path = tmp_path / f"{name}.yaml"
        path.write_text(SPACE.format(name=name, budget=budget))
        return path

    return write
