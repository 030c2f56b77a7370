"""The cost of activation checkpointing: the step simulated as it runs, and its FLOPs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from harness.compiler import build_model
from harness.costs import CostRequest, measure_costs
from harness.measure import (
    CostCache,
    estimate_train_memory,
    forward_on_meta,
    measure_train_memory,
    precheck,
)
from harness.spec import load_spec


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Two CPU threads, as a run on this 2-core machine has (the tests run on one).

    NOTE: on one thread, CPU convolutions compute their backward pass through a larger
    buffer of their own (an im2col copy, 6.75 MiB here), which a simulation leaves out as it
    leaves out every kernel's workspace; a checkpointed step's peak falls in the backward
    pass, where that buffer is live (simulated / measured 0.81 there, 0.89 on two threads).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("setting", [True, [1]])
def test_simulation_keeps_what_a_real_checkpointed_step_keeps(
    setting: object, two_threads: None
) -> None:
    spec = load_spec("tiny_r2plus1d", activation_checkpoint=setting)
    plain = build_model("tiny_r2plus1d", frames=8, size=32)
    model = build_model(spec, frames=8, size=32)
    shape = model.plan.input_shape
    measured = measure_train_memory(model, shape, batch=8)
    simulated = estimate_train_memory(model, shape, batch=8)
    assert simulated.saved_bytes == measured.saved_bytes
    assert simulated.saved_bytes < estimate_train_memory(plain, shape, batch=8).saved_bytes
    # The tolerance of a plain step (tests/measure/test_memory.py): the real peak adds what
    # CPU kernels allocate inside themselves.
    assert measured.peak_bytes is not None and simulated.peak_bytes is not None
    assert 0.85 * measured.peak_bytes <= simulated.peak_bytes <= measured.peak_bytes
    plain_measured = measure_train_memory(plain, shape, batch=8).peak_bytes
    assert plain_measured is not None and measured.peak_bytes < plain_measured


def test_the_recomputed_flops_are_the_checkpointed_stages_forward_ones() -> None:
    spec = load_spec("tiny_r2plus1d", activation_checkpoint=[0, 2])
    plain = precheck("tiny_r2plus1d", batch=4)
    checked = precheck(spec, batch=4)
    ahead = forward_on_meta("tiny_r2plus1d")
    stages = ahead.scope_flops["stages.0"] + ahead.scope_flops["stages.2"]
    assert plain.recompute_flops == 0 and plain.train_flops == 3 * plain.flops
    assert checked.flops == plain.flops
    assert checked.recompute_flops == stages > 0
    assert checked.train_flops == 3 * plain.flops + stages
    assert checked.train_memory.peak_bytes < plain.train_memory.peak_bytes  # type: ignore[operator]


def test_a_folded_network_is_simulated_whole_where_it_checkpoints() -> None:
    # X3D-S folds its long stages; a checkpointed stage must not be (its blocks run twice).
    spec = load_spec("x3d_s", activation_checkpoint=True)
    pre = precheck(spec, frames=4, size=64, batch=2)
    model = build_model(spec, frames=4, size=64)
    full = estimate_train_memory(model, model.plan.input_shape, batch=2)
    assert pre.train_memory.peak_bytes == full.peak_bytes
    assert pre.train_memory.saved_bytes == full.saved_bytes


def test_the_cost_cache_keeps_checkpointed_and_plain_steps_apart(tmp_path) -> None:
    cache = CostCache(tmp_path)
    request = CostRequest(batch=8, frames=8, size=32)
    plain = measure_costs("tiny_c2d", request, cache=cache)
    spec = load_spec("tiny_c2d", activation_checkpoint=True)
    checked = measure_costs(spec, request, cache=cache)
    again = measure_costs("tiny_c2d", request, cache=cache)
    assert checked.values["train_memory_mb"] < plain.values["train_memory_mb"]
    assert checked.values["train_gflops"] > plain.values["train_gflops"]
    assert again.values == plain.values
    assert checked.values["gflops"] == plain.values["gflops"]
