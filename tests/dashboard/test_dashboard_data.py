"""The store reader: contract columns, tolerance of broken files, read-only access."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from dashboard import data


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}


def test_load_store_reads_every_study(results_store: Path) -> None:
    before = snapshot(results_store)
    store = data.load_store(results_store)
    assert snapshot(results_store) == before  # read-only: nothing written, nothing touched
    df = store.trials
    assert store.problems == ()
    assert set(df["study"]) == {"x3d_expand", "tpe_x3d", "tpe_short"}
    assert (
        df.groupby("study").size() == pd.Series({"tpe_short": 12, "tpe_x3d": 120, "x3d_expand": 31})
    ).all()
    assert df["feasible"].dtype == bool
    assert str(df["trial"].dtype) == "Int64" and df["top1"].dtype == float
    assert set(df["state"]) <= set(data.STATES)
    assert list(store.zoo.columns) == ["name", "protocol", "top1", "params", "gflops", "source"]


def test_missing_and_empty_directories(tmp_path: Path) -> None:
    with pytest.raises(data.StoreError, match="does not exist"):
        data.load_store(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(data.StoreError, match="not a directory"):
        data.load_store(tmp_path / "file")
    (tmp_path / "empty" / "study_without_files").mkdir(parents=True)
    store = data.load_store(tmp_path / "empty")
    assert store.trials.empty and store.problems == ()
    assert "top1" in store.trials.columns  # contract columns even when empty


def test_damaged_study_is_skipped_and_reported(fresh_store: Path) -> None:
    (fresh_store / "tpe_x3d" / "trials.parquet").write_bytes(b"PAR1 truncated")
    table = pd.read_parquet(fresh_store / "x3d_expand" / "trials.parquet")
    table["trial"] = table["trial"].astype("Int64")
    table.loc[0, "trial"] = None
    table.to_parquet(fresh_store / "x3d_expand" / "trials.parquet")
    (fresh_store / "zoo_reference.csv").write_bytes(b"\x00\x01\x02")
    store = data.load_store(fresh_store)
    text = " | ".join(store.problems)
    assert "tpe_x3d" in text and "cannot read" in text
    assert "1 row(s) without a study or trial number" in text
    assert set(store.trials["study"]) == {"x3d_expand", "tpe_short"}
    assert (store.trials["study"] == "x3d_expand").sum() == 30
    assert store.zoo.empty


def test_zoo_in_percent_is_read_as_fractions(fresh_store: Path) -> None:
    zoo = pd.read_csv(fresh_store / "zoo_reference.csv")
    zoo["top1"] *= 100
    zoo.to_csv(fresh_store / "zoo_reference.csv", index=False)
    assert data.load_store(fresh_store).zoo["top1"].max() == pytest.approx(0.748)


def test_store_signature_changes_when_a_study_writes(fresh_store: Path) -> None:
    before = data.store_signature(fresh_store)
    path = fresh_store / "tpe_x3d" / "trials.parquet"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert data.store_signature(fresh_store) != before
    assert data.store_signature(fresh_store / "missing") == ()


def test_pareto_sets_never_cross_protocols() -> None:
    df = pd.DataFrame(
        {
            "protocol": ["A", "A", "B", "B"],
            "state": ["complete"] * 4,
            "feasible": [True] * 4,
            "top1": [70.0, 60.0, 50.0, 40.0],
            "gflops": [1.0, 2.0, 5.0, 6.0],
        }
    )
    mask = data.pareto_mask_by_protocol(df, {"top1": "maximize", "gflops": "minimize"})
    # B's best trial is dominated by A's, but A and B are not comparable
    assert mask.tolist() == [True, False, True, False]
    df.loc[0, "feasible"] = False
    mask = data.pareto_mask_by_protocol(df, {"top1": "maximize", "gflops": "minimize"})
    assert mask.tolist() == [False, True, True, False]


def test_apply_filters(results_store: Path) -> None:
    df = data.load_store(results_store).trials
    some = data.apply_filters(df, data.Filters(studies=("tpe_x3d",), states=("complete",)))
    assert set(some["study"]) == {"tpe_x3d"} and set(some["state"]) == {"complete"}
    ranged = data.apply_filters(df, data.Filters(ranges={"gflops": (0.5, 1.0)}))
    assert ranged["gflops"].between(0.5, 1.0).all() and len(ranged) > 0
    assert len(data.apply_filters(df, data.Filters())) == len(df)


def test_list_protocols_most_complete_first(results_store: Path) -> None:
    df = data.load_store(results_store).trials
    protocols = data.list_protocols(df)
    assert protocols[:2] == [
        "kinetics400|frames=16|size=160|views=1|epochs=100|subset=1.0",
        "kinetics400|frames=16|size=160|views=1|epochs=10|subset=1.0",
    ]
    # the expansion run's candidates change the clip: each clip is a protocol of its own
    assert sorted(protocols[2:]) == sorted(set(df.loc[df["step"].notna(), "protocol"]))


def test_short_param_names() -> None:
    names = data.short_param_names(
        [
            "param.stages.1.block.type",
            "param.stages.0.block.temporal_kernel",
            "param.stem.kernel.0",
            "param.expansion.width",
            "param.pathways.1.stages.2.width",
            "param.stages.2.blocks.1.type",
            "param.width",
        ]
    )
    assert list(names.values()) == [
        "s1.block",
        "s0.temporal_kernel",
        "stem.kernel[0]",
        "expansion.width",
        "p1.s2.width",
        "s2.b1",
        "width",
    ]
    # two keys that would read the same keep their full paths
    clash = data.short_param_names(["param.stages.1.block.type", "param.stages.1.block"])
    assert clash == {
        "param.stages.1.block.type": "stages.1.block.type",
        "param.stages.1.block": "stages.1.block",
    }


def test_short_protocol_labels_keep_what_differs() -> None:
    e100 = "kinetics400|frames=16|size=160|views=1|epochs=100|subset=1.0"
    e10 = "kinetics400|frames=16|size=160|views=1|epochs=10|subset=1.0"
    f8 = "kinetics400|frames=8|size=160|views=1|epochs=10|subset=1.0"
    assert data.short_protocol_labels([e100, e10]) == {e100: "epochs=100", e10: "epochs=10"}
    assert data.short_protocol_labels([e100, f8])[f8] == "frames=8, epochs=10"
    assert data.short_protocol_labels([e100]) == {e100: e100}
    assert data.short_protocol_labels(["a|b", "c"]) == {"a|b": "a|b", "c": "c"}


def test_architecture_summaries(results_store: Path) -> None:
    df = data.load_store(results_store).trials
    rows = df[(df["study"] == "tpe_x3d") & (df["param.stages.1.block.type"] == "csn")].head(3)
    summaries = data.architecture_summaries(rows)
    assert summaries.index.equals(rows.index)
    for summary, width in zip(summaries, rows["param.expansion.width"], strict=True):
        # base spec, then stem and four stages: block kinds with temporal kernels, widths
        assert summary.startswith("x3d_s: stem 24 | ")
        stages = summary.split(" | ")[1:]
        assert len(stages) == 4 and "csn(t" in stages[1] and "x3d(t3)" in stages[0]
        assert stages[3].endswith(f" {int(8 * round(192 * width / 8))}")  # realised width
    # without a stored spec: the family and the search parameters
    bare = rows.head(1).assign(spec_yaml="")
    (fallback,) = data.architecture_summaries(bare)
    assert fallback.startswith("x3d_s:csn+x3d (") and "stages.1.block.type=csn" in fallback
    assert data.architecture_summaries(df.iloc[:0]).empty


def test_column_label() -> None:
    assert data.column_label("top1") == "top-1"
    assert data.column_label("gflops") == "GFLOPs"
    assert data.column_label("something_else") == "something_else"


def test_parse_json_column_tolerates_bad_cells() -> None:
    assert data.parse_json_column(['{"a": 1}', "", "{oops", '{"a": 1}']) == [
        {"a": 1},
        None,
        None,
        {"a": 1},
    ]
