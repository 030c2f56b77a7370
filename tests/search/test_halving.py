"""Multi-objective successive halving: rungs and promotion by non-dominated rank."""

from __future__ import annotations

from harness.search._halving import promote, rungs

D = ["maximize", "minimize"]


def test_rungs() -> None:
    assert rungs(1, 2, 8) == [1, 2, 4]
    assert rungs(1, 3, 9) == [1, 3]
    assert rungs(2, 2, 2) == []


def test_promote_few_candidates_go_on() -> None:
    assert promote([0.1, 9.0], [[0.9, 1.0]], D, eta=3)


def test_promote_by_rank() -> None:
    others = [[0.9, 1.0], [0.8, 0.5], [0.5, 2.0], [0.4, 3.0], [0.3, 4.0]]
    assert promote([0.95, 0.4], others, D, eta=2)  # dominates everything
    assert not promote([0.2, 5.0], others, D, eta=2)  # dominated by all
    # on the front with the two best: rank 0, the cut (3 of 6) is rank <= 1
    assert promote([0.99, 9.0], others, D, eta=2)
