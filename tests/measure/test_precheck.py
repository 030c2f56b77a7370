"""The budget pre-check against fvcore and the full memory computation, over the zoo."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import harness
from harness.compiler import min_clip
from harness.errors import SpecError
from harness.measure import (
    count_activations,
    count_flops,
    count_params,
    estimate_train_memory,
    example_input,
    precheck,
)
from harness.spec import ModelSpec, load_spec, realise, spec_hash
from harness.zoo import list_zoo


def _small_clip(spec: ModelSpec) -> tuple[int, int]:
    """At least 4 frames of 32 x 32, or the smallest clip the network takes."""
    frames, size = min_clip(realise(spec))
    return max(frames, 4), max(size, 32)


@pytest.mark.parametrize("name", list_zoo())
def test_precheck_counts_what_fvcore_counts(name: str) -> None:
    spec = load_spec(name)
    frames, size = _small_clip(spec)
    model = harness.build_model(spec, frames=frames, size=size)
    check = precheck(spec, frames=frames, size=size, batch=2)
    assert check.flops == count_flops(model, example_input(model.plan.input_shape)).flops
    assert check.params == count_params(model)
    assert check.params_no_norm == count_params(model, norm=False)
    assert check.input_shape == tuple(model.plan.input_shape)
    assert check.spec_hash == spec_hash(spec)


@pytest.mark.parametrize(
    "name", ["tiny_r2plus1d", "x3d_xs", "slowfast_r50_8x8", "mvit_b_16x4", "timesformer_base"]
)
def test_precheck_counts_fvcore_activations(name: str) -> None:
    if name not in list_zoo():
        pytest.skip(f"{name} is not in the zoo")
    spec = load_spec(name)
    frames, size = _small_clip(spec)
    model = harness.build_model(spec, frames=frames, size=size)
    check = precheck(spec, frames=frames, size=size, batch=2)  # batch norm needs two
    assert check.activations == count_activations(model, example_input(model.plan.input_shape))


@pytest.mark.parametrize(
    ("name", "device", "precision", "optimizer"),
    [
        ("tiny_c2d", "cpu", "fp32", "sgd"),
        ("x3d_xs", "cuda", "bf16", "adamw"),
        ("mvit_b_16x4", "cuda", "fp16", "sgd"),
    ],
)
def test_precheck_memory_is_the_memory_computation(
    name: str, device: str, precision: str, optimizer: str
) -> None:
    if name not in list_zoo():
        pytest.skip(f"{name} is not in the zoo")
    spec = load_spec(name)
    frames, size = _small_clip(spec)
    settings = dict(batch=3, device=device, precision=precision, optimizer=optimizer)
    check = precheck(spec, frames=frames, size=size, **settings)  # type: ignore[arg-type]
    model = harness.build_model(spec, frames=frames, size=size)
    full = estimate_train_memory(model, model.plan.input_shape, **settings)  # type: ignore[arg-type]
    assert check.train_memory == full


@pytest.mark.slow
def test_x3d_m_full_size_matches_fvcore_and_allocates_nothing() -> None:
    model = harness.build_model("x3d_m")  # 16 x 224 x 224
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        check = precheck("x3d_m", batch=8)
    assert check.flops == count_flops(model, example_input(model.plan.input_shape)).flops
    assert check.flops == 4_732_468_736  # 4.73 GFLOPs, PySlowFast's published figure
    assert check.train_memory.peak_bytes is not None
    assert check.train_memory.peak_bytes > 6 * 2**30  # a 6 GiB step, simulated...
    assert _peak_allocated(prof) < 16 * 2**20  # ...without allocating its activations


def _peak_allocated(prof: profile) -> int:
    events = []
    assert prof.profiler is not None and prof.profiler.kineto_results is not None
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.tag == torch._C._profiler._EventType.Allocation:
            events.append((node.start_time_ns, node.extra_fields.alloc_size))  # type: ignore[union-attr]
    running = peak = 0
    for _, size in sorted(events):
        running += size
        peak = max(peak, running)
    return peak


def test_over_budget_names_each_exceeded_budget() -> None:
    check = precheck("tiny_c2d", batch=2)
    assert check.over_budget() == []
    assert check.over_budget(gflops=1.0, params=10**7, train_memory_mb=1e4) == []
    assert check.over_budget(gflops=1e-6, params=10, train_memory_mb=0.001) == [
        "gflops",
        "params",
        "train_memory_mb",
    ]


def test_precheck_of_a_bad_spec_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "short.yaml"
    path.write_text("base: r3d_18\nclip: {frames: 2}\n")
    # the child's own key is named, and the stage whose stride needs more frames
    with pytest.raises(
        SpecError, match=r"short\.yaml:2:8: clip\.frames: 2 frames are too few .*stages\.2\."
    ):
        precheck(path)
    with pytest.raises(SpecError, match="batch must be a positive integer"):
        precheck("tiny_c2d", batch=0)
