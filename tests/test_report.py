"""The per-module table of ``harness compile``: one row per pathway's stem and stage, per
lateral and for the join, which add up to the whole network; a single pathway as before."""

from __future__ import annotations

import json

import pytest

import harness
from harness.compiler import build_model
from harness.compiler.network import row_group
from harness.measure._policy import MetaBuild
from harness.report import ModelReport, describe_model

SLOWFAST_ROWS = [
    "slow/stem", "fast/stem", "fast->slow/stem",
    "slow/stages.0", "fast/stages.0", "fast->slow/stages.0",
    "slow/stages.1", "fast/stages.1", "fast->slow/stages.1",
    "slow/stages.2", "fast/stages.2", "fast->slow/stages.2",
    "slow/stages.3", "fast/stages.3",
    "join",
]  # fmt: skip
TWO_STREAM_ROWS = [
    *(f"{p}/{where}" for where in ("stem", *(f"stages.{i}" for i in range(4))) for p in
      ("rgb", "flow")),
    "join",
]  # fmt: skip


@pytest.fixture(scope="module")
def slowfast() -> ModelReport:
    return describe_model("slowfast_r50_4x16", size=32)


@pytest.fixture(scope="module")
def two_stream() -> ModelReport:
    return describe_model("i3d_r50_two_stream", size=32)


def _adds_up(report: ModelReport) -> None:
    assert sum(row.params for row in report.stages) == report.params
    assert sum(row.gflops for row in report.stages) == pytest.approx(report.gflops, rel=1e-9)
    groups = report.group_totals()  # with several pathways
    if groups:
        assert sum(g.params for g in groups) == report.params
        assert sum(g.gflops for g in groups) == pytest.approx(report.gflops, rel=1e-9)


def test_slowfast_has_a_row_per_pathway_stage_and_lateral(slowfast: ModelReport) -> None:
    assert [row.name for row in slowfast.stages] == SLOWFAST_ROWS
    shapes = {row.name: row.output_shape for row in slowfast.stages}
    # alpha 8, beta 1/8: the slow pathway sees 4 of the 32 frames, the fast one 1/8 the width
    assert shapes["slow/stem"] == [64, 4, 8, 8] and shapes["fast/stem"] == [8, 32, 8, 8]
    # the lateral's row is the slow pathway after the fusion: 64 + 2 x 8 channels
    assert shapes["fast->slow/stem"] == [80, 4, 8, 8]
    assert shapes["join"] == [400]
    assert all(row.params > 0 and row.gflops > 0 for row in slowfast.stages)
    assert slowfast.inputs == {"rgb": [3, 32, 32, 32]}
    _adds_up(slowfast)
    groups = {g.name: g for g in slowfast.group_totals()}
    assert list(groups) == ["slow", "fast", "laterals", "join"]
    assert groups["slow"].params > 30 * groups["fast"].params  # beta = 1/8 of the widths


def test_two_stream_names_its_inputs_and_splits_its_streams(two_stream: ModelReport) -> None:
    assert [row.name for row in two_stream.stages] == TWO_STREAM_ROWS
    assert two_stream.inputs == {"rgb": [3, 8, 32, 32], "flow": [2, 8, 32, 32]}
    rows = {row.name: row for row in two_stream.stages}
    # the same network on 3 and 2 input channels: the stems differ by one channel's kernels
    assert rows["rgb/stem"].params - rows["flow/stem"].params == 64 * 5 * 7 * 7
    rgb, flow = rows["rgb/stages.3"], rows["flow/stages.3"]
    assert (rgb.output_shape, rgb.params, rgb.gflops) == (
        flow.output_shape,
        flow.params,
        flow.gflops,
    )
    _adds_up(two_stream)
    assert [g.name for g in two_stream.group_totals()] == ["rgb", "flow", "join"]


def test_the_json_has_the_same_rows_and_inputs(two_stream: ModelReport) -> None:
    data = json.loads(json.dumps(two_stream.to_json()))
    assert data["inputs"] == {"rgb": [3, 8, 32, 32], "flow": [2, 8, 32, 32]}
    assert [row["name"] for row in data["stages"]] == TWO_STREAM_ROWS
    assert ModelReport.from_json(data) == two_stream


def test_a_single_pathway_keeps_its_rows_and_keys() -> None:
    report = describe_model("tiny_c2d")
    names = [row.name for row in report.stages]
    assert names == ["stem", *(f"stages.{i}" for i in range(len(names) - 2)), "head"]
    assert report.inputs == {} and report.group_totals() == []
    data = report.to_json()
    assert "inputs" not in data
    assert all(set(row) == {"name", "output_shape", "params", "gflops"} for row in data["stages"])
    _adds_up(report)


@pytest.mark.parametrize("name", harness.list_zoo())
def test_every_row_names_a_module_of_the_network(name: str) -> None:
    # The rows come from the plan (VideoNet.rows()); the modules from the builders.
    with MetaBuild():
        model = build_model(name)
    rows = model.rows()
    assert len({row.name for row in rows}) == len(rows)
    modules = [row.module for row in rows]
    assert modules == model.stage_names()
    params = sum(p.numel() for m in modules for p in model.get_submodule(m).parameters())
    assert params == sum(p.numel() for p in model.parameters())
    multi = model.plan.pathways[0].path != ()
    assert all((row_group(row.name) is not None) == multi for row in rows)
