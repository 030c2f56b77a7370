"""Repeated blocks built once: the folded pre-check is the full network's, byte for byte."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import torch

import harness
from harness.compiler import create_block, min_clip, plan_network
from harness.compiler.plan import BlockPlan
from harness.measure import (
    count_activations,
    count_flops,
    count_params,
    estimate_train_memory,
    example_input,
    precheck,
)
from harness.measure._fold import (
    Replay,
    create_meta_block,
    expand_events,
    fold_plan,
    fold_stage,
)
from harness.spec import ModelSpec, load_spec, realise
from harness.zoo import list_zoo


def _small_clip(spec: ModelSpec) -> tuple[int, int]:
    frames, size = min_clip(realise(spec))
    return max(frames, 4), max(size, 32)


def test_x3d_m_builds_18_of_its_26_blocks() -> None:
    spec = realise(load_spec("x3d_m"))
    plan = plan_network(spec, frames=16, size=224)
    folded, folds = fold_plan(plan)
    assert [len(s.blocks) for s in plan.stages] == [3, 5, 11, 7]
    assert [len(s.blocks) for s in folded.stages] == [3, 5, 5, 5]
    # Period 2 (squeeze-excitation on every other block): stage 3 keeps b0, b1, [b2 b3],
    # b10 for [b2 b3] x 4; stage 4 keeps b0, b1, [b2 b3], b6 for [b2 b3] x 2.
    assert [(f.stage, f.start, f.period, f.extra) for f in folds] == [(2, 2, 2, 3), (3, 2, 2, 1)]
    kept = [b.index for b in folded.stages[2].blocks]
    assert kept == [0, 1, 2, 3, 10]


def test_a_stage_is_folded_only_where_a_block_follows_and_precedes_the_group() -> None:
    spec = realise(load_spec("r2plus1d_18"))  # depth 2 everywhere: nothing to fold
    plan = plan_network(spec, frames=8, size=112)
    assert all(fold_stage(s.blocks) is None for s in plan.stages)
    assert fold_plan(plan) == (plan, ())


def test_multi_pathway_networks_are_not_folded() -> None:
    spec = realise(load_spec("slowfast_r50_8x8"))
    plan = plan_network(spec, frames=32, size=64)
    assert fold_plan(plan) == (plan, ())


@pytest.mark.parametrize("name", list_zoo())
def test_each_block_period_matches_its_builder(name: str) -> None:
    """Blocks a period apart, with the same widths, strides and grid, are built alike."""
    spec = realise(load_spec(name))
    frames, size = _small_clip(spec)
    plan = plan_network(spec, frames=frames, size=size)
    for pathway in plan.pathways:
        for stage in pathway.stages:
            for block, other in itertools.combinations(stage.blocks, 2):
                alike = (block.spec, block.dim_in, block.dim_out, block.stride, block.grid) == (
                    other.spec, other.dim_in, other.dim_out, other.stride, other.grid
                )  # fmt: skip
                if alike and (other.index - block.index) % block.spec.period() == 0:
                    assert _describe(block) == _describe(other), other.path


def _describe(block: BlockPlan) -> tuple[str, list[tuple[int, ...]]]:
    with torch.device("meta"):
        module = create_block(
            block.spec,
            dim_in=block.dim_in,
            dim_out=block.dim_out,
            dim_inner=block.dim_inner,
            stride=block.stride,
            index=block.index,
            grid=block.grid,
        )
    return repr(module), [tuple(p.shape) for p in module.parameters()]


@pytest.mark.parametrize("name", list_zoo())
def test_folded_precheck_is_the_full_network(name: str) -> None:
    """Memory, FLOPs and parameters equal those of the network built block by block."""
    spec = load_spec(name)
    frames, size = _small_clip(spec)
    model = harness.build_model(spec, frames=frames, size=size)
    shape = model.plan.input_shape
    for device, precision, optimizer in (("cpu", "fp32", "sgd"), ("cuda", "bf16", "adamw")):
        settings = dict(batch=3, device=device, precision=precision, optimizer=optimizer)
        check = precheck(spec, frames=frames, size=size, **settings)  # type: ignore[arg-type]
        full = estimate_train_memory(model, shape, **settings)  # type: ignore[arg-type]
        assert check.train_memory == full, (device, precision)
    assert check.params == count_params(model)
    assert check.params_no_norm == count_params(model, norm=False)


def test_folding_follows_per_block_patterns() -> None:
    """Kernel pattern of three and squeeze-excitation every other block: a period of six."""
    base = realise(load_spec("x3d_xs"))
    stages = tuple(
        s.model_copy(
            update={"depth": 15, "block": s.block.model_copy(update={"temporal_kernel": (3, 1, 1)})}
        )
        for s in base.stages
    )
    spec = base.model_copy(update={"stages": stages})
    _, folds = fold_plan(plan_network(spec, frames=4, size=32))
    assert {f.period for f in folds} == {6}
    model = harness.build_model(spec, frames=4, size=32)
    check = precheck(spec, frames=4, size=32, batch=2)
    assert check.train_memory == estimate_train_memory(model, model.plan.input_shape, batch=2)
    assert check.flops == count_flops(model, example_input(model.plan.input_shape)).flops
    assert check.activations == count_activations(model, example_input(model.plan.input_shape))


def test_replayed_spans_free_what_they_leave_outside() -> None:
    """A copy's forward events repeat; what the span leaves for later is freed with it."""
    events = [
        (1, 10),  # before the span
        (2, 5),  # span: a cached cast, freed after the span
        (3, 7),  # span: the group's output, handed on
        (1, -10),  # span: the input freed
        (4, 1),  # after the span
        (2, -5),  # the cache is cleared
        (3, -7),
    ]
    sizes, marks = expand_events(events, {"forward": 7}, [Replay(1, 4, 2, handed=3)])
    assert sizes == [10, 5, 7, -10, 5, 7, -10, 5, 7, -10, 1, -5, -5, -5, -7]
    assert marks == {"forward": len(sizes)}


def test_first_simulation_in_a_process_equals_the_next() -> None:
    """PyTorch's first-use imports must not keep a step's tensors alive longer."""
    code = textwrap.dedent(
        """
        from harness.measure import precheck
        first = precheck("s3d", frames=8, size=32, batch=2)
        second = precheck("s3d", frames=8, size=32, batch=2)
        print(first.train_memory.peak_bytes, second.train_memory.peak_bytes)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, second = out.stdout.split()
    assert first == second


def test_a_meta_copy_shares_no_tensor_and_no_hook_table() -> None:
    factory = create_meta_block
    spec = realise(load_spec("x3d_xs")).stages[1].block
    settings = dict(dim_in=48, dim_out=48, dim_inner=108, stride=(1, 1), grid=None)
    with torch.device("meta"):
        first = factory(spec, index=1, **settings)  # type: ignore[arg-type]
        copy = factory(spec, index=1 + spec.period(), **settings)  # type: ignore[arg-type]
        other = factory(spec, index=2, **settings)  # type: ignore[arg-type]
    assert repr(copy) == repr(first) and repr(other) != repr(first)  # SE every other block
    ours = {id(t) for t in [*first.parameters(), *first.buffers()]}
    assert ours.isdisjoint(id(t) for t in [*copy.parameters(), *copy.buffers()])
    assert [p.shape for p in copy.parameters()] == [p.shape for p in first.parameters()]
    copy.register_forward_pre_hook(lambda *args: None)
    assert not first._forward_pre_hooks
    assert not set(map(id, first.modules())) & set(map(id, copy.modules()))


def test_blocks_built_before_are_copied_not_constructed(monkeypatch: pytest.MonkeyPatch) -> None:
    first = precheck("x3d_xs", frames=4, size=32, batch=2)
    fold = sys.modules["harness.measure._fold"]
    built: list[str] = []

    def create_block(spec: Any, **kwargs: Any) -> torch.nn.Module:
        built.append(spec.type)
        return harness.compiler.create_block(spec, **kwargs)

    monkeypatch.setattr(fold, "create_block", create_block)
    assert precheck("x3d_xs", frames=4, size=32, batch=2) == first
    assert built == []  # every block came from a template
    monkeypatch.setattr(fold, "_TEMPLATES", type(fold._TEMPLATES)())
    assert precheck("x3d_xs", frames=4, size=32, batch=2) == first
    assert built and set(built) == {"x3d"}
