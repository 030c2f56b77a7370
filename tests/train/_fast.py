"""Settings that make a training run take about a second on two CPU cores."""

from __future__ import annotations

from typing import Any

from harness.train import Fidelity, TrainConfig

# 32 training and 16 validation clips of the tiny benchmark, 4 frames of 16 x 16 pixels.
DATA: dict[str, Any] = {"type": "synthetic", "preset": "tiny", "train_clips": 32, "val_clips": 16}
CONFIG = TrainConfig(num_workers=0, batch_size=8, device="cpu")
FIDELITY = Fidelity(epochs=1, frames=4, size=16)


def config(**changes: Any) -> TrainConfig:
    """CONFIG with ``changes``."""
    return CONFIG.model_copy(update=changes)


def fidelity(**changes: Any) -> Fidelity:
    """FIDELITY with ``changes``."""
    return FIDELITY.model_copy(update=changes)
