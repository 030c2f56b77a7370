"""Shared fixtures of the measurement tests: a tiny 3D ResNet spec."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import harness
from harness.compiler import VideoNet

# Widths are multiples of 16, so the CPU's oneDNN kernels run on them without the layout
# conversions (activation-sized temporaries) that narrower channels need.
TINY = """\
name: tiny3d
description: a small 3D ResNet for cost tests
clip: {frames: 8, stride: 1, size: 32}
classes: 10
stem: {type: conv, width: 16, kernel: [3, 3, 3], stride: [1, 2, 2]}
stages:
  - {block: {type: basic}, depth: 1, width: 16}
  - {block: {type: basic}, depth: 1, width: 32, spatial_stride: 2, temporal_stride: 2}
head: {type: classifier}
"""


@pytest.fixture(scope="session")
def tiny_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("specs") / "tiny3d.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture
def tiny(tiny_spec: Path) -> VideoNet:
    torch.manual_seed(0)
    return harness.build_model(tiny_spec)
