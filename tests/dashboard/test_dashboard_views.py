"""Pure view functions (plain asserts) and their figures (trace counts)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard import data, figures, views

PROTOCOL = "kinetics400|frames=16|size=160|views=1|epochs=100|subset=1.0"
SHORT = "kinetics400|frames=16|size=160|views=1|epochs=10|subset=1.0"


@pytest.fixture(scope="module")
def store(results_store: Path) -> data.Store:
    return data.load_store(results_store)


def kinds(fig) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trace in fig.data:
        kind = trace.meta["kind"]
        counts[kind] = counts.get(kind, 0) + len(
            trace.x if trace.x is not None else trace.dimensions
        )
    return counts


def legend(fig) -> list[str]:
    """The legend's entries: one per trace that shows in it (not hidden in a group)."""
    return [t.name for t in fig.data if t.showlegend is not False]


def test_pareto_info_one_protocol(store: data.Store) -> None:
    df = store.trials
    info = views.get_pareto_front_info(df, x="gflops", y="top1", protocol=PROTOCOL, zoo=store.zoo)
    mine = df[(df["protocol"] == PROTOCOL) & df["state"].isin(["complete", "infeasible"])]
    assert len(info.points) == mine["top1"].notna().sum()
    assert set(info.points["protocol"]) == {PROTOCOL}
    assert list(info.fronts) == [PROTOCOL]
    front = info.fronts[PROTOCOL]
    assert front["feasible"].all() and (front["state"] == "complete").all()
    assert front["gflops"].is_monotonic_increasing and front["top1"].is_monotonic_increasing
    assert info.budgets_x == [views.Budget(2.0, ("tpe_x3d",))] and info.budgets_y == []
    assert sorted(info.zoo["name"]) == ["x3d_m", "x3d_s", "x3d_xs"]  # slow_r50: other protocol
    assert info.hover_params[0].startswith("param.")
    assert info.param_labels["param.stages.1.block.type"] == "s1.block"
    assert info.color_by == "study" and info.paths == {}
    # infeasible trials rejected before training: no accuracy, drawn at their cost
    untrained = mine[mine["state"].eq("infeasible") & mine["top1"].isna()]
    assert len(untrained) > 10 and info.untrained.index.equals(untrained.index)
    fig = figures.plot_pareto_front(info)
    assert kinds(fig) == {
        "trials": len(info.points),
        "untrained": len(untrained),
        "front": len(front),
        "zoo": 3,
    }
    assert len(fig.layout.shapes) == 1  # the budget line
    # one study shown: the budget line names no study
    assert [a.text for a in fig.layout.annotations] == ["budget GFLOPs ≤ 2"]
    assert legend(fig) == [
        "tpe_x3d",
        "infeasible (over budget)",
        "Pareto front",
        "zoo (published)",
        "infeasible (not trained)",
    ]
    strip = next(t for t in fig.data if t.meta["kind"] == "untrained")
    assert strip.yaxis == "y2" and fig.layout.xaxis.anchor == "y2"
    assert list(strip.x) == untrained["gflops"].tolist()  # at their cost
    # a log cost axis: full tick labels, and the budget's label where its line is
    log = figures.plot_pareto_front(info, log_x=True)
    assert log.layout.xaxis.type == "log" and log.layout.xaxis.tickformat == "~g"
    assert log.layout.shapes[0].x0 == 2.0
    assert log.layout.annotations[0].x == pytest.approx(np.log10(2.0))


def test_pareto_info_all_protocols_has_separate_fronts(store: data.Store) -> None:
    info = views.get_pareto_front_info(
        store.trials, x="params", y="top1", protocol=None, zoo=store.zoo
    )
    # the expansion run's candidates are protocols of their own, but make no fronts
    assert sorted(info.fronts) == sorted([SHORT, PROTOCOL])
    for label, front in info.fronts.items():
        assert set(front["protocol"]) == {label}
    assert not info.points.loc[info.points["step"].notna(), "on_front"].any()
    per_study = views.get_pareto_front_info(
        store.trials, x="gflops", y="top1", protocol=None, per_study=True
    )
    assert sorted(per_study.fronts) == sorted([f"{SHORT} · tpe_short", f"{PROTOCOL} · tpe_x3d"])
    assert sorted(info.zoo["name"]) == ["x3d_m", "x3d_s", "x3d_xs"]  # zoo protocols shown only


def test_all_protocols_chart_groups_its_legend(store: data.Store) -> None:
    info = views.get_pareto_front_info(
        store.trials, x="gflops", y="top1", protocol=None, zoo=store.zoo
    )
    assert info.color_by == "protocol"
    assert info.protocol_labels[PROTOCOL] == "epochs=100"
    assert info.protocol_labels[SHORT] == "epochs=10"
    fig = figures.plot_pareto_front(info)
    # one entry per protocol, one for all fronts, one per expansion run: never one per
    # candidate, although each expansion candidate has a protocol of its own
    assert legend(fig) == [
        "epochs=10",
        "epochs=100",
        "infeasible (over budget)",
        "Pareto fronts (one per protocol)",
        "x3d_expand · expansion path",
        "zoo (published)",
        "infeasible (not trained)",
    ]
    fronts = [t for t in fig.data if t.meta["kind"] == "front"]
    assert {t.legendgroup for t in fronts} == {"fronts"} and len(fronts) == 2
    # every budget line names its study, since several are shown
    assert sorted(a.text for a in fig.layout.annotations) == [
        "budget GFLOPs ≤ 2 (tpe_x3d)",
        "budget GFLOPs ≤ 2.5 (tpe_short)",
    ]
    assert [b.studies for b in info.budgets_x] == [("tpe_x3d",), ("tpe_short",)]


def test_expansion_run_is_one_path_on_the_pareto_chart(store: data.Store) -> None:
    info = views.get_pareto_front_info(store.trials, x="gflops", y="top1", protocol=None)
    expansion = store.trials[store.trials["study"] == "x3d_expand"]
    assert expansion["protocol"].nunique() > 5  # one protocol per clip it tried
    assert list(info.paths) == ["x3d_expand"]
    path = info.paths["x3d_expand"]
    assert path["step"].tolist() == list(range(7)) and path["kept"].all()
    fig = figures.plot_pareto_front(info)
    paths = [t for t in fig.data if t.meta["kind"] == "path"]
    assert len(paths) == 1 and len(paths[0].x) == 7
    candidates = [t for t in fig.data if t.meta.get("expansion") == "x3d_expand"]
    assert len(candidates) == 1 and len(candidates[0].x) == len(expansion)
    assert candidates[0].legendgroup == paths[0].legendgroup


def test_budgets_per_study() -> None:
    df = pd.DataFrame(
        {
            "study": ["a", "a", "b", "c", "d"],
            "trial": [0, 1, 0, 0, 0],
            # a: tightened when resumed (its latest trial's budget counts); d: no budget
            "budgets": ['{"gflops": 3}', '{"gflops": 2}', '{"gflops": 2.0}', '{"gflops": 5}', "{}"],
        }
    )
    assert views.get_budgets(df, "gflops") == [
        views.Budget(2.0, ("a", "b")),
        views.Budget(5.0, ("c",)),
    ]
    assert views.get_budgets(df, "params") == []


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(0.40, 0.80, ".0%"), (0.13, 0.146, ".1%"), (0.5, 0.52, ".1%"), (0.6, 0.6012, ".2%")],
)
def test_percent_tickformat_has_enough_decimals(low: float, high: float, expected: str) -> None:
    assert figures.percent_tickformat([low, high]) == expected
    # the ticks plotly would place (a step of 1, 2 or 5 x 10^k, at most 10 ticks) all differ
    span = high - low
    step = next(m * 10.0**k for k in range(-6, 1) for m in (1, 2, 5) if m * 10.0**k >= span / 10)
    ticks = np.arange(np.floor(low / step) * step, high + step, step)
    labels = [f"{t:{expected}}" for t in ticks]
    assert len(set(labels)) == len(labels), labels


def test_percent_ticks_are_distinct() -> None:
    for low, high in [(0.55, 0.73), (0.131, 0.146), (0.6, 0.6008)]:
        values, text = figures.percent_ticks(np.linspace(low, high, 7))
        assert 3 <= len(values) <= 12 and len(set(text)) == len(text), text
        assert values[0] >= low - 1e-12 and values[-1] <= high + 1e-12
    assert figures.percent_ticks([]) == ([], [])


def test_picks(store: data.Store) -> None:
    info = views.get_pareto_front_info(store.trials, x="gflops", y="top1", protocol=PROTOCOL)
    knee = views.get_picks(info, mode="knee")
    assert list(knee) == [PROTOCOL] and knee[PROTOCOL] in info.fronts[PROTOCOL].index
    best = views.get_picks(info, mode="budget", budget=1.0)
    row = info.points.loc[best[PROTOCOL]]
    fits = info.points[info.points["on_front"] & (info.points["gflops"] <= 1.0)]
    assert row["gflops"] <= 1.0 and row["top1"] == fits["top1"].max()
    assert views.get_picks(info, mode="budget", budget=1e-9) == {}


def test_expansion_info(store: data.Store) -> None:
    assert views.list_expansion_studies(store.trials) == ["x3d_expand"]
    info = views.get_expansion_info(store.trials, study="x3d_expand", x="gflops", y="top1")
    assert len(info.candidates) == 31
    assert info.path["step"].tolist() == list(range(7))
    assert info.path["kept"].all()
    # each kept candidate's parent is the previous kept one
    assert info.path["parent"].iloc[1:].tolist() == info.path["spec_hash"].iloc[:-1].tolist()
    counts = kinds(figures.plot_expansion(info))
    assert counts == {"candidates": 31, "path": 7}


def test_hypervolume_history_is_monotone(store: data.Store) -> None:
    one = store.trials[store.trials["protocol"] == PROTOCOL]
    history, ref = views.get_hypervolume_history(one, x="gflops", y="top1")
    assert ref == (0.0, 2.0)  # the budget bounds the cost
    assert set(history["study"]) == {"tpe_x3d"}
    for _, rows in history.groupby("study"):
        assert rows["hypervolume"].is_monotonic_increasing
        assert rows["n"].tolist() == list(range(1, len(rows) + 1))
    last = history.groupby("study")["hypervolume"].last()
    done = one[(one["study"] == "tpe_x3d") & one["state"].eq("complete") & one["feasible"]]
    points = data.minimization_points(done, {"top1": "maximize", "gflops": "minimize"})
    assert last["tpe_x3d"] == pytest.approx(data.hypervolume(points, np.array([0.0, 2.0])))
    assert kinds(figures.plot_hypervolume_history(history))["hypervolume"] == len(history)


def test_state_history(store: data.Store) -> None:
    states = views.get_state_history(store.trials)
    final = states.groupby("state")["trials"].max()
    assert final.to_dict() == store.trials["state"].value_counts().to_dict()
    assert len(figures.plot_state_history(states).data) == store.trials["state"].nunique()
    assert views.get_state_history(store.trials.iloc[:0]).empty


def test_few_trials_get_whole_number_ticks() -> None:
    history = pd.DataFrame({"study": "s", "n": [1, 2, 3], "trial": [0, 1, 2], "hypervolume": 0.1})
    assert figures.plot_hypervolume_history(history).layout.xaxis.dtick == 1  # not 1.5, 2.5
    many = history.assign(n=[1, 50, 100])
    assert figures.plot_hypervolume_history(many).layout.xaxis.dtick is None
    nothing = pd.DataFrame({"param": ["a"], "label": ["a"], "importance": [0.0]})
    assert figures.plot_param_importance(nothing).layout.xaxis.rangemode == "tozero"


def test_importance_and_parallel(store: data.Store) -> None:
    tpe = store.trials[store.trials["study"] == "tpe_x3d"]
    importance = views.get_importance_info(tpe, objective="top1")
    assert importance["param"].iloc[0] == "param.expansion.width"  # drives GFLOPs, so accuracy
    assert importance["label"].iloc[0] == "expansion.width"
    bars = figures.plot_param_importance(importance).data[0]
    assert len(bars.x) == len(importance) and "s1.block" in bars.y
    axes = views.get_parallel_info(tpe, x="gflops", y="top1")
    labels = [a.label for a in axes]
    assert labels == [
        "expansion.depth",
        "expansion.width",
        "s1.temporal_kernel",
        "s1.block",
        "s2.width",
        "GFLOPs",
        "top-1",
    ]
    by_label = dict(zip(labels, axes, strict=True))
    assert by_label["s1.block"].ticktext == ["bottleneck", "csn", "x3d"]
    # numbers with few values are categories too, read as written; a conditional
    # parameter's trials that did not use it get a category of their own
    assert by_label["s2.width"].ticktext == ["64", "96", "128"]
    assert by_label["s1.temporal_kernel"].ticktext == ["1", "3", "5", views.MISSING]
    assert by_label["GFLOPs"].ticktext is None and by_label["top-1"].percent
    n = int((tpe["state"].eq("complete") & tpe["top1"].notna()).sum())
    assert all(len(a.values) == n and np.isfinite(a.values).all() for a in axes)
    fig = figures.plot_parallel_coordinates(axes)
    dims = fig.data[0].dimensions
    assert len(dims) == len(axes)
    assert list(dims[3].ticktext) == ["bottleneck", "csn", "x3d"]
    assert len(set(dims[-1].ticktext)) == len(dims[-1].ticktext) and "%" in dims[-1].ticktext[0]


def test_parallel_axis_with_many_numbers_is_numeric() -> None:
    df = pd.DataFrame(
        {
            "state": ["complete"] * 20,
            "top1": np.linspace(0.5, 0.7, 20),
            "gflops": np.linspace(1, 2, 20),
            "param.lr": np.geomspace(1e-3, 1e-1, 20),
            "param.use_se": [True, False] * 10,
        }
    )
    axes = {a.label: a for a in views.get_parallel_info(df, x="gflops", y="top1")}
    assert axes["lr"].ticktext is None
    assert axes["use_se"].ticktext == ["False", "True"]


def test_trials_table_offers_the_parameters(store: data.Store) -> None:
    tpe = store.trials[store.trials["study"] == "tpe_x3d"]
    table = views.get_trials_table(tpe, x="gflops", y="top1")
    assert list(table.columns[:10]) == [
        "study",
        "trial",
        "state",
        "top1",
        "gflops",
        "expansion.depth",
        "expansion.width",
        "s1.temporal_kernel",
        "s1.block",
        "s2.width",
    ]
    assert len(table) == len(tpe)
    chosen = views.get_trials_table(tpe, x="params", y="top5", params=["param.stages.2.width"])
    assert list(chosen.columns[:6]) == ["study", "trial", "state", "top5", "params", "s2.width"]
    assert not any(c.startswith("param.") for c in chosen.columns)


def test_architecture_table(store: data.Store) -> None:
    info = views.get_pareto_front_info(store.trials, x="gflops", y="top1", protocol=PROTOCOL)
    table = views.get_architecture_table(info.fronts[PROTOCOL], x="gflops", y="top1")
    assert list(table.columns) == [
        "study",
        "trial",
        "protocol",
        "top1",
        "gflops",
        "architecture",
        "spec",
    ]
    assert table["architecture"].str.startswith("x3d_s: stem 24 | ").all()
    assert table["spec"].str.len().eq(12).all()


def test_trial_detail(store: data.Store) -> None:
    detail = views.get_trial_detail(store.trials, study="tpe_x3d", trial=0)
    assert detail is not None and detail.notes == []
    assert detail.stages["name"].tolist() == ["stem", "res2", "res3", "res4", "head"]
    assert detail.stages["params"].sum() == detail.row["params"]
    assert detail.stages["output_shape"].iloc[-1] == "400"
    assert set(detail.costs["method"]) >= {"fvcore", "cuda_max_allocated", "cuda_median_of_50"}
    assert {"epoch", "train_loss", "top1"} <= set(detail.history.columns)
    assert "epochs" in detail.fidelity["setting"].tolist()
    assert views.get_trial_detail(store.trials, study="tpe_x3d", trial=10**6) is None
    fig = figures.plot_training_curves(detail.history)
    assert [t.name for t in fig.data] == ["train loss", "top-1", "top-5"]


def test_trial_detail_with_broken_json(store: data.Store) -> None:
    df = store.trials.copy()
    df.loc[df.index[0], "history"] = "{not json"
    row = df.iloc[0]
    detail = views.get_trial_detail(df, study=row["study"], trial=int(row["trial"]))
    assert detail is not None and detail.history.empty
    assert detail.notes == ["the history column of this trial is not valid JSON"]


def test_budget_values_ignore_bad_json() -> None:
    df = pd.DataFrame({"budgets": [json.dumps({"gflops": 2}), "{bad", json.dumps({"gflops": 3.5})]})
    assert views._budget_values(df, "gflops") == [2.0, 3.5]
