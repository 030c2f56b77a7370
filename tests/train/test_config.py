"""TrainConfig and Fidelity validate their values and resolve the automatic ones."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from harness.train import Fidelity, TrainConfig


def test_automatic_precision_and_memory_format() -> None:
    cpu, gpu = TrainConfig(device="cpu"), TrainConfig(device="cuda")
    assert cpu.resolved_precision() == "fp32" and not cpu.resolved_channels_last()
    assert gpu.resolved_precision() == "bf16" and gpu.resolved_channels_last()
    assert TrainConfig(device="cuda", precision="fp16").resolved_precision() == "fp16"


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (TrainConfig, {"optimizer": "lamb"}),
        (TrainConfig, {"views": (0, 3)}),
        (TrainConfig, {"batch_size": 0}),
        (TrainConfig, {"lr": -1.0}),
        (TrainConfig, {"batchsize": 8}),
        (Fidelity, {"subset": 0.0}),
        (Fidelity, {"epochs": 0}),
        (Fidelity, {"subset": 1.5}),
    ],
)
def test_bad_values_are_rejected(model: type, values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        model(**values)


def test_frozen() -> None:
    with pytest.raises(ValidationError):
        Fidelity().epochs = 3  # type: ignore[misc]
