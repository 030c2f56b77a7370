"""``summarise_architecture``: rows of a real search, every zoo spec, damaged rows."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.results import (
    GroupBest,
    compare_time_mixing,
    load_study_results,
    summarise_architecture,
)
from harness.spec import load_spec, realise
from harness.zoo import list_zoo


def _realised_yaml(name: str) -> str:
    """The ``spec_yaml`` a search stores for ``name`` (the realised spec, as _evaluate dumps
    it)."""
    real = realise(load_spec(name))
    return yaml.safe_dump(real.model_dump(mode="json", exclude={"published"}), sort_keys=False)


def _param(row: pd.Series, key: str) -> object:
    value = row.get(f"param.{key}")
    return None if value is None or pd.isna(value) else value


def test_rows_of_a_real_search(tiny_study: Path) -> None:
    table = load_study_results(tiny_study)
    assert len(table) == 6
    for _, row in table.iterrows():
        summary = summarise_architecture(row)
        name, _, trunk = summary.partition(": ")
        stem, *stages = trunk.split(" | ")
        assert name == row["name"] == "tiny_c2d" and stem == "stem 16" and len(stages) == 3
        # the searched keys, as the trial drew them (tiny.yaml: stage 2's type is tied to 1's)
        kinds = [_param(row, f"stages.{i}.block.type") for i in (0, 1, 1)]
        widths = [16, _param(row, "stages.1.width"), _param(row, "stages.2.width")]
        for i, (stage, kind, width) in enumerate(zip(stages, kinds, widths, strict=True)):
            kernel = _param(row, f"stages.{i}.block.temporal_kernel") if i < 2 else None
            words = stage.split(" ")
            assert words[0].startswith(f"{kind}(t") and words[-1] == str(int(width)), stage
            if kind == "basic" and kernel is not None:
                assert words[0] == f"basic(t{int(kernel)})"
        assert row["family"].split(":")[1] == "+".join(sorted(set(kinds)))


def test_the_same_for_a_dict_and_a_table_row(tiny_study: Path) -> None:
    row = load_study_results(tiny_study).iloc[0]
    assert summarise_architecture(row.to_dict()) == summarise_architecture(row)


@pytest.mark.parametrize("name", list_zoo())
def test_every_zoo_spec(name: str) -> None:
    spec = realise(load_spec(name))
    summary = summarise_architecture({"spec_yaml": _realised_yaml(name)})
    assert summary.startswith(f"{name}: ") and "?" not in summary
    for pathway in spec.pathways or [spec]:
        trunk = summary if spec.pathways is None else summary.split(f"{pathway.name}: ")[1]
        stages = trunk.split(" ; ")[0].split(" | ")
        stem = 0 if (pathway.stem is None or pathway.stem.type == "none") else 1
        assert len(stages) == len(pathway.stages) + stem, summary
        for text, stage in zip(stages[stem:], pathway.stages, strict=True):
            if stage.width is not None:
                assert text.endswith(f" {stage.width}"), (text, stage.width)
            if stage.depth is not None and stage.depth > 1:
                assert text.startswith(f"{stage.depth}x "), text


def test_examples_by_hand() -> None:
    assert (
        summarise_architecture({"spec_yaml": _realised_yaml("i3d_r50")})
        == "i3d_r50: stem 64 | 3x bottleneck(t3) 256 | 4x bottleneck(t3/1) 512 | "
        "6x bottleneck(t3/1) 1024 | 3x bottleneck(t1/3) 2048"
    )
    assert (
        summarise_architecture({"spec_yaml": _realised_yaml("timesformer_base")})
        == "timesformer_base: patch 1x16x16 768 | 12x transformer(time+space) 768"
    )
    slowfast = summarise_architecture({"spec_yaml": _realised_yaml("slowfast_r50_8x8")})
    assert slowfast.startswith("slowfast_r50_8x8: slow: stem 64 | 3x bottleneck(t1) 256")
    assert " ; fast: stem 8 | 3x bottleneck(t3) 32 | " in slowfast
    s3d = summarise_architecture({"spec_yaml": _realised_yaml("s3d")})
    assert s3d.endswith("| 2x sep_inception(t3) | 5x sep_inception(t3) | 2x sep_inception(t3)")


@pytest.mark.parametrize(
    "spec_yaml",
    [None, math.nan, pd.NA, "", "not: [a spec", "- a list\n", "foo: 1\n", "name: x\nstages: 3\n"],
)
def test_a_row_without_a_readable_spec_falls_back_to_its_family(spec_yaml: object) -> None:
    row = {
        "spec_yaml": spec_yaml,
        "family": "tiny_c2d:basic",
        "param.stages.1.width": 32.0,  # pandas makes int columns with gaps floats
        "param.stages.1.block.temporal_kernel": math.nan,  # not drawn (a when: branch)
        "param.stages.1.block.type": "basic",
    }
    assert (
        summarise_architecture(row)
        == "tiny_c2d:basic (stages.1.width=32, stages.1.block.type=basic)"
    )


def test_an_empty_row_is_an_empty_summary() -> None:
    assert summarise_architecture({}) == ""
    assert summarise_architecture(pd.Series({"family": None})) == ""


def _trial(
    n: int, mixes: bool | None, top1: float, state: str = "complete", **extra: object
) -> dict:
    return {"trial": n, "state": state, "mixes_time": mixes, "top1": top1, "reason": "", **extra}


def test_the_best_of_the_networks_that_mix_frames_and_of_the_blind_ones() -> None:
    table = pd.DataFrame(
        [
            _trial(0, True, 0.8),
            _trial(1, True, 0.9, state="pruned"),  # did not finish: not compared
            _trial(2, False, 0.4),
            _trial(3, False, 0.45),
            _trial(4, True, 0.8, reason="duplicate of trial 0: result reused"),
            _trial(5, None, 0.99),  # a row of an older harness: unknown
        ]
    )
    groups = compare_time_mixing(table)
    assert groups["mixes_time"] == GroupBest(trained=1, best=0.8)
    assert groups["blind"] == GroupBest(trained=2, best=0.45)
    assert compare_time_mixing(table[table["mixes_time"] != False]) == {}  # noqa: E712
    assert compare_time_mixing(table.drop(columns=["mixes_time"])) == {}


def test_a_real_search_records_whether_each_network_mixes_frames(tiny_study: Path) -> None:
    table = load_study_results(tiny_study)
    for _, row in table[table["spec_yaml"].notna()].iterrows():
        spec = yaml.safe_load(row["spec_yaml"])
        blocks = [s["block"] for s in spec["stages"]]
        temporal = spec["stem"]["kernel"][0] > 1 or any(
            b["type"] == "r2plus1d" or max(b["temporal_kernel"]) > 1 for b in blocks
        )
        assert bool(row["mixes_time"]) is temporal


def test_a_tag_that_would_run_code_is_not_a_spec(tmp_path: Path) -> None:
    # A results table is a file anyone can hand over: its spec_yaml is loaded safely.
    marker = tmp_path / "ran"
    text = f"!!python/object/apply:os.system ['touch {marker}']\n"
    row = {"spec_yaml": text, "family": "tiny_c2d:basic"}
    assert summarise_architecture(row) == "tiny_c2d:basic"
    assert not marker.exists()


def test_a_reused_result_is_told_by_the_reason_the_search_writes() -> None:
    # The contract between the search (which writes the reason) and every reader of the
    # table (counts, the trained total, the time-mixing comparison).
    from harness.results import reused, reused_reason

    table = pd.DataFrame({"reason": [reused_reason(3), "", None, "interrupted (SIGINT)"]})
    assert reused(table).tolist() == [True, False, False, False]
    assert not reused(pd.DataFrame({"trial": [0]})).any()  # a table without reasons
