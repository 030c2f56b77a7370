"""Multi-objective successive halving: promote by non-dominated rank.

Optuna cannot prune multi-objective studies, so this is our rule (asynchronous, as ASHA):
when a candidate reaches a rung (an epoch count), it is ranked by non-dominated sorting
against every candidate that reached the same rung, on the study's objectives (metrics at
that rung, costs as measured). It goes on if its rank is no worse than that of the
``ceil(n / eta)``-th best; with fewer than ``eta`` candidates at the rung, everyone goes on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from harness.results import Direction, non_dominated_rank

__all__ = ["promote", "rungs"]


def rungs(min_epochs: int, eta: int, max_epochs: int) -> list[int]:
    """Epoch counts at which promotion is decided: min_epochs * eta^k below max_epochs."""
    out, epochs = [], min_epochs
    while epochs < max_epochs:
        out.append(epochs)
        epochs *= eta
    return out


def promote(
    candidate: Sequence[float],
    others: Sequence[Sequence[float]],
    directions: Sequence[Direction],
    eta: int,
) -> bool:
    """Whether ``candidate`` continues past a rung reached by ``others`` too."""
    points = np.asarray([candidate, *others], dtype=float).reshape(-1, len(directions))
    n = len(points)
    if n < eta:
        return True
    ranks = non_dominated_rank(points, directions)
    cutoff = np.sort(ranks)[math.ceil(n / eta) - 1]
    return bool(ranks[0] <= cutoff)
