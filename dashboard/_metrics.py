"""Pure helpers the results store does not provide: best under budget, importance.

The Pareto set, hypervolume and knee point come from ``harness.results`` (see
``dashboard.data``). Plain numpy and pandas, tested with plain asserts. ``objectives`` maps
a column to ``"maximize"`` or ``"minimize"``; *minimisation form* negates maximised columns.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["best_under_budget", "minimization_points", "param_importance"]

_DIRECTIONS = {"maximize": -1.0, "minimize": 1.0}


def minimization_points(df: pd.DataFrame, objectives: Mapping[str, str]) -> np.ndarray:
    """The objective columns of ``df`` as a float ``(n, d)`` array to minimise (NaN kept)."""
    columns = []
    for column, direction in objectives.items():
        if direction not in _DIRECTIONS:
            raise ValueError(f"objective {column!r}: direction must be maximize or minimize")
        values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        columns.append(_DIRECTIONS[direction] * values)
    return np.column_stack(columns) if columns else np.empty((len(df), 0))


def best_under_budget(
    df: pd.DataFrame, *, metric: str, cost: str, budget: float, maximize: bool = True
) -> object | None:
    """Index label of the row with the best ``metric`` among rows with ``cost <= budget``.

    Ties go to the cheaper row. ``None`` when no row fits.
    """
    values = pd.to_numeric(df[metric], errors="coerce")
    costs = pd.to_numeric(df[cost], errors="coerce")
    fits = df[(costs <= budget) & values.notna()]
    if fits.empty:
        return None
    ranked = pd.DataFrame({"m": values[fits.index], "c": costs[fits.index]})
    ranked = ranked.sort_values(["m", "c"], ascending=[not maximize, True], kind="stable")
    return ranked.index[0]


def param_importance(
    df: pd.DataFrame, params: list[str], objective: str, *, bins: int = 8
) -> pd.Series:
    """Share of the objective's variance that each parameter explains on its own.

    A one-way variance decomposition (the first-order term of fANOVA, Hutter et al. 2014)
    over binned parameter values: numeric parameters with many values are cut into
    ``bins`` quantile bins, categorical ones keep their values, a missing value is its own
    group. The score is the bias-corrected epsilon-squared ``(SS_between - (k - 1) MS_within)
    / SS_total``, clipped at 0, so a parameter unrelated to the objective scores about 0.
    Interactions between parameters are not counted. Sorted, largest first.
    """
    y = pd.to_numeric(df[objective], errors="coerce")
    rows = y.notna()
    y = y[rows].to_numpy(dtype=float)
    scores = {}
    total = float(np.sum((y - y.mean()) ** 2)) if len(y) else 0.0
    for param in params:
        if len(y) < 3 or total <= 0:
            scores[param] = 0.0
            continue
        groups = _bin(df.loc[rows, param], bins)
        scores[param] = _epsilon_squared(y, groups, total)
    return pd.Series(scores, dtype=float, name="importance").sort_values(ascending=False)


def _bin(values: pd.Series, bins: int) -> np.ndarray:
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().sum() == values.notna().sum() and numeric.nunique() > bins:
        codes = pd.qcut(numeric, q=bins, labels=False, duplicates="drop")
        return codes.fillna(-1).to_numpy(dtype=float)
    return pd.factorize(values.astype("string").fillna("<missing>"))[0].astype(float)


def _epsilon_squared(y: np.ndarray, groups: np.ndarray, total: float) -> float:
    labels, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    k = len(labels)
    if k < 2 or len(y) <= k:
        return 0.0
    means = np.bincount(inverse, weights=y) / counts
    between = float(np.sum(counts * (means - y.mean()) ** 2))
    within = (total - between) / (len(y) - k)
    return float(max(0.0, (between - (k - 1) * within) / total))
