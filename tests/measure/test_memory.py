"""Memory: the simulation against hand-derived figures and against profiled real steps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from harness.compiler import VideoNet
from harness.errors import SpecError
from harness.measure import (
    count_activations,
    estimate_inference_memory,
    estimate_train_memory,
    measure_inference_memory,
    measure_train_memory,
)
from harness.measure import memory as memory_module

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# What a step keeps alive: the simulation must reproduce these exactly.
KEPT = ("param_bytes", "buffer_bytes", "grad_bytes", "optimizer_bytes", "input_bytes")


def _pointwise_net() -> nn.Module:
    """1x1x1 conv (2 -> 16 channels) -> ReLU -> flatten -> linear to 3 classes."""
    return nn.Sequential(
        nn.Conv3d(2, 16, 1, bias=False),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 2 * 4 * 4, 3, bias=False),
    )


SHAPE = (2, 2, 4, 4)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_simulated_step_by_hand(optimizer: str) -> None:
    batch = 4
    memory = estimate_train_memory(_pointwise_net(), SHAPE, batch=batch, optimizer=optimizer)
    act = batch * 16 * 2 * 4 * 4 * 4  # bytes of the conv's (and the ReLU's) output
    weights = (2 * 16 + 16 * 32 * 3) * 4
    assert memory.param_bytes == memory.grad_bytes == weights
    assert memory.input_bytes == batch * 2 * 2 * 4 * 4 * 4 + batch * 8  # clips, int64 targets
    # SGD keeps one momentum buffer per parameter; AdamW two moments and a step counter.
    moments = weights if optimizer == "sgd" else 2 * weights + 2 * 4
    assert memory.optimizer_bytes == moments
    # Saved for backward: the ReLU's output (the linear layer saves a view of the same).
    assert memory.saved_bytes == act
    # Peak: in the ReLU's backward the saved output, its gradient, the conv output's
    # gradient and the linear layer's weight gradient are alive at once (+ loss scalars).
    assert memory.peak_bytes is not None
    held = memory.param_bytes + memory.input_bytes + memory.optimizer_bytes
    assert 3 * act + 3 * 512 * 4 <= memory.peak_bytes - held <= 3 * act + 3 * 512 * 4 + 64
    assert memory.method == "meta_simulation" and not memory.oom


def test_simulated_inference_by_hand() -> None:
    memory = estimate_inference_memory(_pointwise_net(), SHAPE, batch=4)
    # The conv's output and the ReLU's output coexist; then only small scores remain.
    assert memory.activation_bytes == 2 * 4 * 16 * 2 * 4 * 4 * 4
    assert memory.param_bytes == (2 * 16 + 16 * 32 * 3) * 4


@pytest.mark.parametrize(("optimizer", "precision"), [("sgd", "fp32"), ("adamw", "bf16")])
def test_simulation_keeps_what_a_real_step_keeps(
    tiny: VideoNet, optimizer: str, precision: str
) -> None:
    shape = tiny.plan.input_shape
    kwargs = dict(batch=8, optimizer=optimizer, precision=precision)
    measured = measure_train_memory(tiny, shape, **kwargs)  # type: ignore[arg-type]
    simulated = estimate_train_memory(tiny, shape, **kwargs)  # type: ignore[arg-type]
    assert measured.method == "profiler_cpu_peak"
    for name in (*KEPT, "saved_bytes"):
        assert getattr(simulated, name) == getattr(measured, name), name
    # The real peak adds what CPU kernels allocate inside themselves (a contiguous copy
    # of a gradient in convolution backward, here about 10%); the simulation does not.
    assert measured.peak_bytes is not None and simulated.peak_bytes is not None
    assert 0.85 * measured.peak_bytes <= simulated.peak_bytes <= measured.peak_bytes


def test_simulated_inference_matches_a_real_forward(tiny: VideoNet) -> None:
    shape = tiny.plan.input_shape
    measured = measure_inference_memory(tiny, shape, batch=8)
    simulated = estimate_inference_memory(tiny, shape, batch=8)
    assert measured.activation_bytes is not None and simulated.activation_bytes is not None
    assert simulated.activation_bytes == pytest.approx(measured.activation_bytes, rel=0.02)


def test_bf16_saves_half_width_activations(tiny: VideoNet) -> None:
    shape = tiny.plan.input_shape
    fp32 = estimate_train_memory(tiny, shape, batch=2)
    bf16 = estimate_train_memory(tiny, shape, batch=2, precision="bf16")
    assert bf16.saved_bytes < 0.75 * fp32.saved_bytes
    assert bf16.grad_bytes == fp32.grad_bytes  # gradients stay fp32 under autocast


def test_memory_grows_with_the_batch(tiny: VideoNet) -> None:
    shape = tiny.plan.input_shape
    one, four = (estimate_train_memory(tiny, shape, batch=b).saved_bytes for b in (1, 4))
    assert four == 4 * one


def test_simulation_leaves_the_model_alone(tiny: VideoNet) -> None:
    tiny.eval()
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    estimate_train_memory(tiny, tiny.plan.input_shape, batch=2)
    after = tiny.state_dict()
    assert not tiny.training
    assert all(torch.equal(before[k], after[k]) and after[k].device.type == "cpu" for k in before)
    assert all(p.grad is None for p in tiny.parameters())


def test_count_activations_by_hand() -> None:
    # fvcore's definition: outputs of the conv (16 x 2 x 4 x 4) and of the linear (3).
    assert count_activations(_pointwise_net(), torch.randn(1, *SHAPE)) == 16 * 2 * 4 * 4 + 3


def test_out_of_memory_is_data_not_a_crash(
    tiny: VideoNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    def exhausted(*args: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(memory_module, "_prepare", exhausted)
    result = measure_train_memory(tiny, tiny.plan.input_shape, batch=2)
    assert result.oom and result.peak_bytes is None and result.peak_mb is None
    assert result.param_bytes > 0


@pytest.mark.parametrize(
    ("kwargs", "path", "message"),
    [
        ({"batch": 0}, ("batch",), "batch must be a positive integer, got 0"),
        ({"batch": 2, "device": "tpu"}, ("device",), "unknown device 'tpu'; known: cpu, cuda"),
        ({"batch": 2, "precision": "fp8"}, ("precision",), "unknown precision 'fp8'"),
        ({"batch": 2, "optimizer": "adam"}, (), "unknown optimizer type 'adam'"),
    ],
)
def test_bad_settings_are_spec_errors(
    tiny: VideoNet, kwargs: dict[str, object], path: tuple[str, ...], message: str
) -> None:
    for measure in (estimate_train_memory, measure_train_memory):
        with pytest.raises(SpecError) as info:
            measure(tiny, tiny.plan.input_shape, **kwargs)  # type: ignore[arg-type]
        assert info.value.path == path
        assert message in info.value.message


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_spec_error(tiny: VideoNet) -> None:
    with pytest.raises(SpecError, match="no CUDA device"):
        measure_train_memory(tiny, tiny.plan.input_shape, batch=2, device="cuda")
    # Simulating a CUDA step needs no CUDA device.
    simulated = estimate_train_memory(tiny, tiny.plan.input_shape, batch=2, device="cuda")
    assert simulated.device == "cuda" and simulated.peak_bytes


@pytest.mark.gpu
@requires_cuda
def test_cuda_peak_matches_the_simulation(tiny: VideoNet) -> None:
    shape = tiny.plan.input_shape
    measured = measure_train_memory(tiny, shape, batch=8, device="cuda")
    simulated = estimate_train_memory(tiny, shape, batch=8, device="cuda")
    assert measured.method == "cuda_peak_allocated"
    for name in (*KEPT, "saved_bytes"):
        assert getattr(simulated, name) == getattr(measured, name), name
    assert measured.peak_bytes is not None and simulated.peak_bytes is not None
    # cuDNN workspaces are measured, not simulated.
    assert 0.8 * measured.peak_bytes <= simulated.peak_bytes <= 1.01 * measured.peak_bytes


@pytest.mark.gpu
@requires_cuda
def test_cuda_out_of_memory_is_over_budget(tiny: VideoNet) -> None:
    free, _ = torch.cuda.mem_get_info()
    clip_bytes = 4 * 3 * 8 * 32 * 32
    result = measure_train_memory(
        tiny, tiny.plan.input_shape, batch=2 * free // clip_bytes + 1, device="cuda"
    )
    assert result.oom and result.peak_bytes is None
