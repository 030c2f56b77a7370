"""Pareto sets, ranks, hypervolume and knee points against hand-computed cases."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from harness.results import hypervolume, knee_point, non_dominated_rank, pareto_mask


def _brute_hv(points: np.ndarray, ref: np.ndarray) -> float:
    """Inclusion-exclusion over every subset: exact, exponential, for tiny sets only."""
    total = 0.0
    for k in range(1, len(points) + 1):
        for subset in itertools.combinations(points, k):
            corner = np.max(subset, axis=0)
            total += (-1) ** (k + 1) * np.prod(np.clip(ref - corner, 0, None))
    return float(total)


def test_pareto_mask_by_hand() -> None:
    df = pd.DataFrame({"top1": [0.5, 0.6, 0.4, 0.6, None], "gflops": [1.0, 2.0, 1.5, 2.0, 0.1]})
    mask = pareto_mask(df, {"top1": "maximize", "gflops": "minimize"})
    # 2 dominated by 0; 3 equal to 1 (both kept); 4 has no accuracy
    assert mask.tolist() == [True, True, False, True, False]


def test_pareto_mask_unknown_column() -> None:
    with pytest.raises(KeyError, match="latency_ms"):
        pareto_mask(pd.DataFrame({"top1": [1.0]}), {"latency_ms": "minimize"})


def test_non_dominated_rank() -> None:
    pts = np.array([[1, 1], [2, 2], [3, 3], [1, 3], [3, 1]])
    assert non_dominated_rank(pts, ["minimize", "minimize"]).tolist() == [0, 1, 2, 1, 1]


def test_hypervolume_2d_by_hand() -> None:
    # staircase (1,3), (2,2), (3,1) below ref (4,4): 3 + 2 + 1 = 6
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [4, 4]) == pytest.approx(6.0)
    # a dominated point and a point outside the reference add nothing
    assert hypervolume([[1, 3], [2, 2], [3, 1], [3, 3], [5, 0]], [4, 4]) == pytest.approx(6.0)
    assert hypervolume([], [1, 1]) == 0.0


def test_hypervolume_maximised_objective() -> None:
    # accuracy up, cost down: (0.8, 2) and (0.5, 1) against (0, 4)
    hv = hypervolume([[0.8, 2.0], [0.5, 1.0]], [0.0, 4.0], ["maximize", "minimize"])
    assert hv == pytest.approx(0.8 * 2 + 0.5 * 1)


def test_hypervolume_3d_by_hand() -> None:
    # two unit-offset boxes: [0,2]^3 and [1,3]x[1,3]x[-1,... ] style union
    pts = [[0, 0, 1], [1, 1, 0]]
    ref = [2, 2, 2]
    # box A: 2*2*1 = 4, box B: 1*1*2 = 2, overlap: 1*1*1 = 1
    assert hypervolume(pts, ref) == pytest.approx(5.0)


@pytest.mark.parametrize("dim", [2, 3, 4])
def test_hypervolume_matches_inclusion_exclusion(dim: int) -> None:
    rng = np.random.default_rng(dim)
    for _ in range(5):
        pts = rng.random((7, dim))
        ref = np.ones(dim) * 1.1
        assert hypervolume(pts, ref) == pytest.approx(_brute_hv(pts, ref), rel=1e-9)


def test_hypervolume_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    pts = rng.random((20, 3))
    ref = np.ones(3)
    samples = rng.random((200_000, 3))
    dominated = (samples[:, None, :] >= pts[None, :, :]).all(axis=2).any(axis=1)
    assert hypervolume(pts, ref) == pytest.approx(dominated.mean(), abs=0.005)


def test_knee_point() -> None:
    df = pd.DataFrame({"top1": [0.2, 0.7, 0.8, 0.5], "gflops": [0.1, 0.3, 2.0, 1.0]})
    objectives = {"top1": "maximize", "gflops": "minimize"}
    assert knee_point(df, objectives) == 1
    assert knee_point(df.iloc[0:0], objectives) is None
