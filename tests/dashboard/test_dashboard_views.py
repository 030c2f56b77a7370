"""Pure view functions (plain asserts) and their figures (trace counts)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard import data, figures, views

PROTOCOL = "kinetics400/val|16x160|center|1x1|e100"


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
    assert info.budgets_x == [2.0] and info.budgets_y == []
    assert sorted(info.zoo["name"]) == ["x3d_m", "x3d_s", "x3d_xs"]  # slow_r50: other protocol
    assert info.hover_params[0].startswith("param.")
    fig = figures.plot_pareto_front(info)
    assert kinds(fig) == {"trials": len(info.points), "front": len(front), "zoo": 3}
    assert len(fig.layout.shapes) == 1  # the budget line


def test_pareto_info_all_protocols_has_separate_fronts(store: data.Store) -> None:
    info = views.get_pareto_front_info(
        store.trials, x="params", y="top1", protocol=None, zoo=store.zoo
    )
    assert len(info.fronts) == 2
    for label, front in info.fronts.items():
        assert set(front["protocol"]) == {label}
    per_study = views.get_pareto_front_info(
        store.trials, x="gflops", y="top1", protocol=None, per_study=True
    )
    assert sorted(per_study.fronts) == [
        "kinetics400/val|16x160|center|1x1|e10 · tpe_short",
        f"{PROTOCOL} · tpe_x3d",
        f"{PROTOCOL} · x3d_expand",
    ]
    assert sorted(info.zoo["name"]) == ["x3d_m", "x3d_s", "x3d_xs"]  # zoo protocols shown only


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
    assert set(history["study"]) == {"tpe_x3d", "x3d_expand"}
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


def test_importance_and_parallel(store: data.Store) -> None:
    tpe = store.trials[store.trials["study"] == "tpe_x3d"]
    importance = views.get_importance_info(tpe, objective="top1")
    assert importance["param"].iloc[0] == "param.width_factor"  # drives GFLOPs, so accuracy
    assert len(figures.plot_param_importance(importance).data[0].x) == len(importance)
    axes = views.get_parallel_info(tpe, x="gflops", y="top1")
    labels = [a.label for a in axes]
    assert labels[-2:] == ["gflops", "top1"] and "block" in labels
    block = axes[labels.index("block")]
    assert block.ticktext == ["bottleneck", "csn", "x3d"]
    n = int((tpe["state"].eq("complete") & tpe["top1"].notna()).sum())
    assert all(len(a.values) == n for a in axes)
    fig = figures.plot_parallel_coordinates(axes)
    assert len(fig.data[0].dimensions) == len(axes)


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
    assert [t.name for t in fig.data] == ["train loss", "top1", "top5"]


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
