"""Latency: the protocol runs, reports a median and a spread, and records its options."""

from __future__ import annotations

import os

import pytest
import torch

from harness.compiler import VideoNet
from harness.errors import SpecError
from harness.measure import Latency, Spread, measure_latency
from harness.measure import latency as latency_module

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _check_spread(spread: Spread | None, n: int) -> None:
    assert spread is not None
    assert spread.n == n
    assert 0 < spread.min <= spread.q1 <= spread.median <= spread.q3 <= spread.max
    assert spread.iqr >= 0


def test_latency_on_the_cpu(tiny: VideoNet) -> None:
    threads = torch.get_num_threads()
    result = measure_latency(tiny, tiny.plan.input_shape, batch=2, threads=1, warmup=1, repeats=3)
    _check_spread(result.forward, 3)
    _check_spread(result.forward_backward, 3)
    assert result.method == "cpu_wall_clock"
    assert (result.threads, result.batch, result.device) == (1, 2, "cpu")
    assert torch.get_num_threads() == threads  # restored
    assert result.median_ms == result.forward.median  # type: ignore[union-attr]


def test_options_are_recorded(tiny: VideoNet) -> None:
    result = measure_latency(
        tiny,
        tiny.plan.input_shape,
        threads=1,
        precision="bf16",
        channels_last=True,
        backward=False,
        warmup=0,
        repeats=2,
    )
    _check_spread(result.forward, 2)
    assert result.forward_backward is None
    assert (result.precision, result.channels_last, result.compiled) == ("bf16", True, False)
    assert Latency.from_json(result.to_json()) == result


def test_timing_leaves_the_model_alone(tiny: VideoNet) -> None:
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    measure_latency(tiny, tiny.plan.input_shape, batch=2, threads=1, warmup=1, repeats=1)
    assert all(torch.equal(before[k], v) for k, v in tiny.state_dict().items())
    assert all(p.grad is None for p in tiny.parameters())
    assert tiny.training


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"batch": 0}, ("batch",)),
        ({"threads": 0}, ("threads",)),
        ({"repeats": 0}, ("repeats",)),
        ({"device": "gpu"}, ("device",)),
        ({"precision": "int8"}, ("precision",)),
    ],
)
def test_bad_settings_are_spec_errors(
    tiny: VideoNet, kwargs: dict[str, object], path: tuple[str, ...]
) -> None:
    with pytest.raises(SpecError) as info:
        measure_latency(tiny, tiny.plan.input_shape, **kwargs)  # type: ignore[arg-type]
    assert info.value.path == path


def test_out_of_memory_is_data(tiny: VideoNet, monkeypatch: pytest.MonkeyPatch) -> None:
    def exhausted(*args: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(latency_module, "_measure", exhausted)
    result = measure_latency(tiny, tiny.plan.input_shape)
    assert result.oom and result.forward is None and result.median_ms is None


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("HARNESS_TEST_COMPILE"),
    reason="torch.compile takes about a minute on CPU; set HARNESS_TEST_COMPILE=1",
)
def test_compiled_latency(tiny: VideoNet) -> None:
    result = measure_latency(
        tiny, tiny.plan.input_shape, threads=1, compile=True, warmup=1, repeats=2
    )
    _check_spread(result.forward, 2)
    assert result.compiled


@pytest.mark.gpu
@requires_cuda
def test_latency_on_cuda(tiny: VideoNet) -> None:
    result = measure_latency(tiny, tiny.plan.input_shape, batch=4, device="cuda", repeats=5)
    _check_spread(result.forward, 5)
    _check_spread(result.forward_backward, 5)
    assert result.method == "cuda_synchronized_wall_clock" and result.threads is None
