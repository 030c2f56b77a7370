"""The Pareto set of a results table: the same set that ``harness search`` prints."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.results import (
    load_study_results,
    pareto_front,
    save_results,
    study_budgets,
    study_objectives,
)

OBJECTIVES = {"top1": "maximize", "gflops": "minimize"}
TIGHTER = json.dumps({"gflops": 1.8})


def _row(trial: int, top1: float, gflops: float, **extra: object) -> dict[str, object]:
    return {
        "study": "s", "trial": trial, "state": "complete", "feasible": True, "top1": top1,
        "gflops": gflops, "spec_hash": f"h{trial}", "protocol": "p",
        "objectives": json.dumps(OBJECTIVES), "budgets": json.dumps({"gflops": 2.0}), **extra,
    }  # fmt: skip


@pytest.fixture
def table(tmp_path: Path) -> pd.DataFrame:
    rows = [
        _row(0, 0.5, 1.0),
        _row(1, 0.6, 1.5),
        _row(2, 0.4, 1.2),  # dominated by 0
        _row(3, 0.6, 1.5, spec_hash="h1", reason="duplicate of trial 1: result reused"),
        # a later run, under a tighter budget: 4 was feasible under the earlier one
        _row(4, 0.9, 1.9),
        _row(5, 0.95, 0.5, state="infeasible", feasible=False, budgets=TIGHTER),
        _row(6, 0.99, 0.1, state="failed", budgets=TIGHTER),
    ]
    save_results(pd.DataFrame(rows), tmp_path / "s")
    return load_study_results(tmp_path / "s")


def test_by_hand(table: pd.DataFrame) -> None:
    assert study_objectives(table) == OBJECTIVES
    assert study_budgets(table) == {"gflops": 1.8}  # the latest trial's
    assert pareto_front(table, OBJECTIVES)["trial"].tolist() == [0, 1, 4]
    assert pareto_front(table, OBJECTIVES, study_budgets(table))["trial"].tolist() == [0, 1]
    assert pareto_front(table.iloc[0:0], OBJECTIVES).empty


def test_a_study_s_table_names_its_objectives_and_budgets(tiny_study: Path) -> None:
    # what the table carries is what the search ran with (tiny.yaml), so that a reader of
    # the table alone (export, the dashboard) finds the front the search printed
    real = load_study_results(tiny_study)
    assert study_objectives(real) == OBJECTIVES and study_budgets(real) == {"gflops": 0.08}
    assert not pareto_front(real, OBJECTIVES, study_budgets(real)).empty


def test_a_table_without_objectives_or_budgets() -> None:
    df = pd.DataFrame({"trial": [0], "objectives": [None], "budgets": ["not json"]})
    assert study_objectives(df) == {} and study_budgets(df) == {}
    assert study_objectives(pd.DataFrame()) == {}
