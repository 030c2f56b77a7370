"""Pareto set, hypervolume, knee point, best-under-budget and importance: plain asserts.

The first three are ``harness.results``'s, reached through ``dashboard.data`` as the pages
reach them; these tests pin the semantics the dashboard relies on.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from dashboard.data import (
    best_under_budget,
    hypervolume,
    knee_point,
    minimization_points,
    param_importance,
    pareto_mask,
)

ACC_COST = {"top1": "maximize", "gflops": "minimize"}


def brute_force_mask(points: np.ndarray) -> np.ndarray:
    n = len(points)
    finite = np.isfinite(points).all(axis=1)
    mask = finite.copy()
    for i, j in itertools.product(range(n), range(n)):
        if finite[i] and finite[j]:
            p, q = points[j], points[i]
            if np.all(p <= q) and np.any(p < q):
                mask[i] = False
    return mask


def test_pareto_mask_small_case() -> None:
    df = pd.DataFrame({"top1": [70, 75, 60, 75, 80, np.nan], "gflops": [1, 2, 1, 2, 5, 0.1]})
    mask = np.asarray(pareto_mask(df, ACC_COST))
    # (70,1) front; (75,2) twice: equal points share the front; (60,1) dominated by (70,1);
    # (80,5) front; NaN never on it.
    assert mask.tolist() == [True, True, False, True, True, False]


def test_pareto_mask_direction_matters() -> None:
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 3.0]})

    def mask(objectives: dict[str, str]) -> list[bool]:
        return np.asarray(pareto_mask(df, objectives)).tolist()

    assert mask({"a": "minimize", "b": "minimize"}) == [True, False, False]
    assert mask({"a": "maximize", "b": "maximize"}) == [False, False, True]
    assert mask({"a": "maximize", "b": "minimize"}) == [True, True, True]


@pytest.mark.parametrize("dims", [2, 3])
def test_pareto_mask_matches_brute_force(dims: int) -> None:
    rng = np.random.default_rng(dims)
    for _ in range(20):
        values = rng.integers(0, 6, size=(40, dims)).astype(float)  # many ties
        values[rng.random(40) < 0.1, 0] = np.nan
        df = pd.DataFrame(values, columns=[f"c{i}" for i in range(dims)])
        objectives = {c: "minimize" for c in df.columns}
        assert (np.asarray(pareto_mask(df, objectives)) == brute_force_mask(values)).all()


def test_pareto_mask_empty_and_unknown_direction() -> None:
    assert list(pareto_mask(pd.DataFrame({"top1": [], "gflops": []}), ACC_COST)) == []
    with pytest.raises(ValueError, match="direction"):
        pareto_mask(pd.DataFrame({"a": [1.0]}), {"a": "up"})


def test_hypervolume_two_dimensions() -> None:
    points = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    # staircase under reference (4, 4): 3*1 + 2*1 + 1*1 = 6
    assert hypervolume(points, np.array([4.0, 4.0])) == pytest.approx(6.0)
    # a dominated point and a point outside the reference add nothing
    more = np.vstack([points, [[3.0, 3.0], [5.0, 0.0]]])
    assert hypervolume(more, np.array([4.0, 4.0])) == pytest.approx(6.0)
    assert hypervolume(np.empty((0, 2)), np.array([1.0, 1.0])) == 0.0


def test_hypervolume_three_dimensions_matches_grid_count() -> None:
    rng = np.random.default_rng(0)
    points = rng.integers(0, 5, size=(8, 3)).astype(float)
    ref = np.array([5.0, 5.0, 5.0])
    # exact count of unit cells dominated by some point (integer coordinates)
    cells = np.array(list(itertools.product(range(5), repeat=3)), dtype=float)
    covered = (cells[:, None, :] >= points[None, :, :]).all(axis=2).any(axis=1)
    assert hypervolume(points, ref) == pytest.approx(float(covered.sum()))


def test_hypervolume_grows_when_the_front_improves() -> None:
    ref = np.array([0.0, 10.0])  # minimisation form of (top1 >= 0, gflops <= 10)
    base = minimization_points(pd.DataFrame({"top1": [0.6], "gflops": [2.0]}), ACC_COST)
    better = np.vstack([base, [[-0.7, 3.0]]])
    assert hypervolume(better, ref) > hypervolume(base, ref) == pytest.approx(0.6 * 8)


def test_knee_point_is_the_most_balanced_trade_off() -> None:
    df = pd.DataFrame(
        {
            "top1": [0.60, 0.70, 0.72, 0.74, 0.65],
            "gflops": [0.5, 1.0, 3.0, 6.0, 2.0],  # the last one is dominated
        },
        index=[10, 11, 12, 13, 14],
    )
    # scaled to [0, 1] over the front, (0.70, 1.0) is nearest the ideal corner
    assert knee_point(df, ACC_COST) == 11
    assert knee_point(df.loc[[13]], ACC_COST) == 13  # one point is its own knee
    assert knee_point(df.iloc[:0], ACC_COST) is None


def test_best_under_budget() -> None:
    df = pd.DataFrame(
        {"top1": [70.0, 75.0, 75.0, 80.0, np.nan], "gflops": [1.0, 1.8, 1.5, 2.5, 0.5]},
        index=[10, 11, 12, 13, 14],
    )
    assert best_under_budget(df, metric="top1", cost="gflops", budget=2.0) == 12  # tie: cheaper
    assert best_under_budget(df, metric="top1", cost="gflops", budget=1.0) == 10
    assert best_under_budget(df, metric="top1", cost="gflops", budget=0.9) is None
    assert best_under_budget(df, metric="top1", cost="gflops", budget=3, maximize=False) == 10


def test_param_importance_finds_the_parameter_that_matters() -> None:
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame(
        {
            "param.width": rng.choice([0.5, 1.0, 1.5, 2.0], n),
            "param.noise": rng.normal(size=n),
            "param.block": rng.choice(["a", "b", "c"], n),
        }
    )
    df["top1"] = 50 + 10 * df["param.width"] + 2 * (df["param.block"] == "a") + rng.normal(0, 1, n)
    scores = param_importance(df, ["param.noise", "param.block", "param.width"], "top1")
    assert list(scores.index) == ["param.width", "param.block", "param.noise"]
    assert scores["param.width"] > 0.8
    assert scores["param.noise"] < 0.02
    assert ((scores >= 0) & (scores <= 1)).all()


def test_param_importance_degenerate_inputs() -> None:
    df = pd.DataFrame({"param.a": [1, 2, 3], "top1": [5.0, 5.0, 5.0]})
    assert param_importance(df, ["param.a"], "top1").tolist() == [0.0]
    assert param_importance(df.iloc[:0], ["param.a"], "top1").tolist() == [0.0]
