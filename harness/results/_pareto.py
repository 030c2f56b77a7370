"""Pareto sets, non-dominated ranks, hypervolume and knee points.

Pure functions over numbers and results tables (numpy, pandas); no torch, no Optuna. Every
point is turned into a *minimisation* problem first: a maximised objective is negated. Our
own code, because Optuna's hypervolume is private API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Literal, cast

import numpy as np
import pandas as pd

__all__ = [
    "Direction",
    "hypervolume",
    "knee_point",
    "non_dominated_rank",
    "pareto_front",
    "pareto_mask",
    "study_budgets",
    "study_objectives",
    "to_minimisation",
]

Direction = Literal["minimize", "maximize"]


def to_minimisation(points: np.ndarray, directions: Sequence[Direction]) -> np.ndarray:
    """Negate the maximised columns so that smaller is better everywhere."""
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != len(directions):
        raise ValueError(
            f"points of shape {points.shape} do not match {len(directions)} directions"
        )
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    for d in directions:
        if d not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize', got {d!r}")
    return points * signs


def _dominated(points: np.ndarray) -> np.ndarray:
    """``out[i]`` is True when another point is <= on every axis and < on one (minimisation)."""
    le = np.all(points[None, :, :] <= points[:, None, :], axis=2)
    lt = np.any(points[None, :, :] < points[:, None, :], axis=2)
    return np.asarray(np.any(le & lt, axis=1))


def non_dominated_rank(points: np.ndarray, directions: Sequence[Direction]) -> np.ndarray:
    """Non-dominated sorting: 0 for the Pareto set, 1 for the front behind it, and so on."""
    pts = to_minimisation(points, directions)
    rank = np.full(len(pts), -1, dtype=int)
    remaining = np.arange(len(pts))
    level = 0
    while remaining.size:
        front = ~_dominated(pts[remaining])
        rank[remaining[front]] = level
        remaining = remaining[~front]
        level += 1
    return rank


def pareto_mask(df: pd.DataFrame, objectives: Mapping[str, Direction]) -> pd.Series:
    """True for the rows of ``df`` on the Pareto set of ``objectives`` (column -> direction).

    Rows with a missing value in any objective are never on the set. Identical points are all
    kept (none dominates the other).
    """
    columns = list(objectives)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"no column {missing[0]!r} in the results table")
    mask = pd.Series(False, index=df.index)
    values = df[columns].apply(pd.to_numeric, errors="coerce")
    valid = values.notna().all(axis=1)
    if valid.any():
        pts = to_minimisation(values[valid].to_numpy(), [objectives[c] for c in columns])
        mask[valid] = ~_dominated(pts)
    return mask


def _hv_2d(points: np.ndarray, reference: np.ndarray) -> float:
    order = np.lexsort((points[:, 1], points[:, 0]))
    volume, best_y = 0.0, reference[1]
    for x, y in points[order]:
        if y < best_y:
            volume += (reference[0] - x) * (best_y - y)
            best_y = y
    return float(volume)


def _hv(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact hypervolume by slicing along the last axis (HSO); points strictly inside ref."""
    if len(points) == 0:
        return 0.0
    dim = points.shape[1]
    if dim == 1:
        return float(reference[0] - points[:, 0].min())
    if dim == 2:
        return _hv_2d(points, reference)
    points = points[~_dominated(points)]
    order = np.argsort(points[:, -1], kind="stable")
    points = points[order]
    volume = 0.0
    for i in range(len(points)):
        upper = points[i + 1, -1] if i + 1 < len(points) else reference[-1]
        depth = upper - points[i, -1]
        if depth > 0:
            volume += depth * _hv(points[: i + 1, :-1], reference[:-1])
    return float(volume)


def hypervolume(
    points: np.ndarray | Sequence[Sequence[float]],
    reference: Sequence[float],
    directions: Sequence[Direction] | None = None,
) -> float:
    """Volume dominated by ``points`` and bounded by ``reference``.

    Exact: a sweep in 2-D, slicing along one axis (HSO) in more dimensions, which is fine for
    the few hundred points of a search. Points that do not strictly dominate the reference add
    nothing.

    Args:
        points: one row per point.
        reference: the bounding point, in the objectives' own units and signs.
        directions: per column; all ``minimize`` when omitted.
    """
    pts = np.asarray(points, dtype=float).reshape(-1, len(reference))
    directions = list(directions or ["minimize"] * len(reference))
    pts = to_minimisation(pts, directions)
    ref = to_minimisation(np.asarray([reference], dtype=float), directions)[0]
    pts = pts[np.isfinite(pts).all(axis=1)]
    pts = pts[(pts < ref).all(axis=1)]
    return _hv(pts, ref)


def knee_point(df: pd.DataFrame, objectives: Mapping[str, Direction]) -> object | None:
    """Index label of the knee of the Pareto set, or None when the set is empty.

    Each objective is scaled to [0, 1] over the Pareto set (0 = best); the knee is the point
    closest (Euclidean) to the ideal corner, i.e. the most balanced trade-off.
    """
    front = df[pareto_mask(df, objectives)]
    if front.empty:
        return None
    columns = list(objectives)
    pts = to_minimisation(front[columns].to_numpy(dtype=float), [objectives[c] for c in columns])
    low, span = pts.min(axis=0), np.ptp(pts, axis=0)
    scaled = (pts - low) / np.where(span > 0, span, 1.0)
    return front.index[int(np.argmin(np.linalg.norm(scaled, axis=1)))]


def pareto_front(
    table: pd.DataFrame,
    objectives: Mapping[str, Direction],
    budgets: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Complete, feasible trials of a results table on the Pareto set of ``objectives``.

    A candidate evaluated more than once (a reused duplicate: the same ``spec_hash`` and
    ``protocol``) appears once, as the trial that trained it. With ``budgets`` (the ones in
    force now), a trial judged feasible under looser budgets of an earlier run but over these
    is left out. Sorted by the first objective. What ``harness search`` prints, the
    dashboard shows and ``harness export`` chooses from.
    """
    if table.empty or "feasible" not in table:
        return table.iloc[0:0]
    done = table[(table["state"] == "complete") & table["feasible"].fillna(False).astype(bool)]
    for cost, limit in (budgets or {}).items():
        if cost in done:
            done = done[~(done[cost].astype("Float64") > limit).fillna(False)]
    done = done.sort_values("trial").drop_duplicates(["spec_hash", "protocol"], keep="first")
    if done.empty:
        return done
    return done[pareto_mask(done, objectives)].sort_values(next(iter(objectives)))


def _latest_json(table: pd.DataFrame, column: str) -> dict[str, object]:
    """The JSON object in ``column`` of the highest-numbered trial that has one."""
    if table.empty or column not in table:
        return {}
    rows = table.sort_values("trial", ascending=False) if "trial" in table else table
    for text in rows[column].dropna():
        try:
            value = json.loads(text)
        except (TypeError, ValueError):
            continue
        if isinstance(value, dict):
            return value
    return {}


def study_objectives(table: pd.DataFrame) -> dict[str, Direction]:
    """The objectives of one study's table (column -> direction), as its trials recorded
    them; empty when no row names them."""
    found = _latest_json(table, "objectives")
    return {str(k): cast(Direction, v) for k, v in found.items() if v in ("minimize", "maximize")}


def study_budgets(table: pd.DataFrame) -> dict[str, float]:
    """The budgets (cost -> limit) in force at one study's latest trial."""
    found = _latest_json(table, "budgets")
    return {str(k): float(v) for k, v in found.items() if isinstance(v, int | float)}
