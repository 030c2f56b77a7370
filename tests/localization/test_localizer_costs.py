"""A localization network's costs in the cost room: per window, simulated on meta tensors,
and the same figures a real training step and fvcore give."""

from __future__ import annotations

import pytest
import torch

from harness.costs import CostRequest, measure_costs
from harness.errors import SpecError
from harness.localization.costs import (
    count_localizer,
    load_localization_spec,
    localizer_hash,
    precheck_localizer,
)
from harness.localization.models import FlatOutputs, build_localizer
from harness.measure import CostCache, count_flops
from harness.measure.memory import measure_train_memory
from harness.spec.localization import LocalizationSpec

KEPT = ("param_bytes", "buffer_bytes", "grad_bytes", "optimizer_bytes", "input_bytes")


def small(**changes: object) -> LocalizationSpec:
    data: dict[str, object] = {
        "name": "small",
        "input": {"width": 16, "steps": 32},
        "neck": {"type": "pyramid", "width": 16, "levels": 3, "depth": 1},
        "head": {"type": "anchor_free", "width": 16, "depth": 1},
        "classes": 4,
    }
    data.update(changes)
    return LocalizationSpec.model_validate(data)


BMN = {"neck": None, "head": {"type": "bmn", "width": 8, "width_3d": 16, "width_2d": 8,
                              "samples": 4}}  # fmt: skip


@pytest.mark.parametrize("changes", [{}, BMN], ids=["anchor_free", "bmn"])
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_the_simulated_step_keeps_what_a_real_step_keeps(changes: dict, optimizer: str) -> None:
    spec = small(**changes)
    torch.manual_seed(0)
    net = FlatOutputs(build_localizer(spec))
    shape = (spec.input.width, spec.input.steps)
    measured = measure_train_memory(net, shape, batch=8, optimizer=optimizer)
    simulated = precheck_localizer(spec, batch=8, optimizer=optimizer).train_memory
    for name in (*KEPT, "saved_bytes"):
        assert getattr(simulated, name) == getattr(measured, name), name
    assert measured.peak_bytes is not None and simulated.peak_bytes is not None
    assert simulated.peak_bytes <= measured.peak_bytes
    if not changes:
        assert 0.85 * measured.peak_bytes <= simulated.peak_bytes
    # NOTE: BMN's small (samples x 1 x 1) 3D convolution takes a CPU workspace (unfolded
    # columns) of the size of its input while it runs; kernel workspaces are left out of
    # the simulation by design (harness.measure.memory), so only the lower bound holds.


def test_the_cost_room_gives_a_window_s_figures(tmp_path) -> None:
    spec = small()
    cache = CostCache(tmp_path)
    request = CostRequest(batch=4, optimizer="adamw")
    names = ["gflops", "gflops_all", "train_gflops", "params", "train_memory_mb"]
    row = measure_costs(spec, request, names, cache=cache)
    counted = count_localizer(spec)
    assert row.get("params") == counted.params
    assert row.get("gflops") == pytest.approx(counted.gflops, abs=0)
    assert row.get("train_gflops") == pytest.approx(3 * counted.gflops)
    fvcore = count_flops(build_localizer(spec), torch.zeros(1, 16, 32))
    assert row.get("gflops_all") == pytest.approx(fvcore.flops_all / 1e9)
    assert row.input_shape == (16, 32)
    bigger = measure_costs(small(input={"width": 16, "steps": 64}), request, names, cache=cache)
    assert bigger.get("train_memory_mb") > row.get("train_memory_mb")
    # cached: the same figures from the cache file, and another batch is another entry
    assert measure_costs(spec, request, names, cache=cache).values == row.values
    eight = measure_costs(spec, CostRequest(batch=8, optimizer="adamw"), names, cache=cache)
    assert eight.get("train_memory_mb") > row.get("train_memory_mb")


def test_a_backbone_is_left_out_of_a_window_s_cost_and_said_so(tmp_path) -> None:
    spec = small(input={"width": 32, "steps": 8, "backbone": "tiny_c2d", "window": 8})
    row = measure_costs(spec, CostRequest(), ["gflops"], cache=CostCache(tmp_path))
    counted = count_localizer(spec)
    assert counted.backbone_flops > 0
    assert row.get("gflops") == pytest.approx(counted.gflops)
    assert counted.gflops < counted.total_gflops
    assert "features given" in row.methods["gflops"]


def test_overrides_and_the_hash() -> None:
    base = load_localization_spec("pyramid_conv")
    changed = load_localization_spec("pyramid_conv", **{"neck.levels": 2, "head.depth": 1})
    assert (changed.neck and changed.neck.levels, changed.head.depth) == (2, 1)
    again = load_localization_spec(base, **{"neck.levels": 2, "head.depth": 1})
    assert localizer_hash(again) == localizer_hash(changed) != localizer_hash(base)
    renamed = base.model_copy(update={"name": "other", "description": "x", "classes": 3})
    assert localizer_hash(renamed) == localizer_hash(base)  # runtime and names: not hashed
    with pytest.raises(SpecError) as info:
        load_localization_spec("pyramid_conv", **{"neck.levels": 0})
    assert info.value.path == ("neck", "levels")
    assert info.value.location is not None and info.value.location.file.endswith(
        "pyramid_conv.yaml"
    )
