"""Searches a user can trust when they grow them, change their budgets and costs.

Each test here is one path of the search-trust issue: proposals that continue across
invocations, verdicts against the budgets in force, costs of the training step that runs at
the input it runs at, every cost as objective and budget, and ``--trained``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest

from harness.costs import list_costs
from harness.measure import precheck
from harness.results import load_study_results
from harness.search import evaluate_candidates, load_space, run_search
from harness.search._storage import open_storage

HARNESS = [sys.executable, "-m", "harness"]

SPACE = """\
name: {name}
base: tiny_c2d
data: synthetic:ci
objectives: {objectives}
budgets: {budgets}
fidelity: {{epochs: 1, subset: 0.1, frames: 4, size: 16}}
train: {train}
sampler: {sampler}
params:
  stages.1.width: {{type: int, low: 16, high: 64, step: 16}}
  stages.1.block.type: [basic, r2plus1d]
  stages.1.block.temporal_kernel:
    {{type: categorical, choices: [1, 3], when: {{stages.1.block.type: basic}}}}
  stages.2.width: {{type: int, low: 32, high: 128, step: 32}}
"""


@pytest.fixture
def space_file(tmp_path: Path):
    def write(
        name: str,
        *,
        budgets: str = "{gflops: 1e-6}",
        objectives: str = "{top1: maximize, gflops: minimize}",
        train: str = "{batch_size: 16, num_workers: 0}",
        sampler: str = "random",
    ) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            SPACE.format(
                name=name, budgets=budgets, objectives=objectives, train=train, sampler=sampler
            )
        )
        return path

    return write


def _proposals(results: Path, study: str, storage: str | None = None) -> list[str]:
    loaded = optuna.load_study(study_name=study, storage=open_storage(storage, results, study))
    trials = sorted(loaded.get_trials(deepcopy=False), key=lambda t: t.number)
    return [json.dumps(t.params, sort_keys=True) for t in trials]


# -- 1. proposals continue across invocations --------------------------------------------------
@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_a_study_grown_in_chunks_proposes_what_one_run_would(
    space_file, tmp_path: Path, sampler: str
) -> None:
    # Every candidate is over budget (nothing trains), so the history each sampler sees is
    # the same in both studies, and so must be the proposals.
    space = load_space(space_file("chunks", sampler=sampler))
    results = tmp_path / "results"
    for trials in (4, 8, 12):
        run_search(space, trials=trials, study="grown", results_dir=results, check=False)
    run_search(space, trials=12, study="whole", results_dir=results, check=False)
    grown, whole = _proposals(results, "grown"), _proposals(results, "whole")
    assert grown == whole
    assert len(set(grown[4:8]) - set(grown[:4])) >= 3  # not the first chunk again


def test_separate_commands_continue_the_stream(space_file, tmp_path: Path) -> None:
    path = space_file("commands")
    results = tmp_path / "results"
    for trials in ("4", "8"):
        command = [*HARNESS, "search", str(path), "--trials", trials, "--draws", "0"]
        done = subprocess.run(
            [*command, "--results", str(results), "--json"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    proposals = _proposals(results, "commands")
    assert len(proposals) == 8
    space = load_space(path)
    run_search(space, trials=8, study="one_run", results_dir=results, check=False)
    assert proposals == _proposals(results, "one_run")
    df = load_study_results(results / "commands")
    assert not df["reason"].str.contains("duplicate").any()


# -- 3. verdicts follow the budgets in force ---------------------------------------------------
CANDIDATE = {"stages.1.width": 16, "stages.1.block.type": "basic",
             "stages.1.block.temporal_kernel": 1, "stages.2.width": 32}  # fmt: skip


def test_a_loosened_budget_trains_what_a_tight_one_rejected(
    space_file, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tight = load_space(space_file("loosened"))
    first = evaluate_candidates(tight, [CANDIDATE], study="loosened", results_dir=tmp_path)
    assert first.table["state"].tolist() == ["infeasible"]
    capsys.readouterr()
    loose = tight.with_budgets({"gflops": 10.0})
    # indices 1 and 2 are new: index 0 was enqueued (and judged) by the first call
    again = evaluate_candidates(loose, [CANDIDATE] * 3, study="loosened", results_dir=tmp_path)
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and warning.startswith("harness: warning: study 'loosened'")
    assert "budgets gflops<=1e-06 -> gflops<=10" in warning
    rows = again.table.set_index("trial")
    assert rows.loc[0, "state"] == "infeasible"  # kept the verdict it was given
    assert rows.loc[1, "state"] == "complete" and rows.loc[1, "feasible"]  # trained now
    assert rows.loc[1, "violations"] == "" and rows.loc[1, "top1"] >= 0
    assert rows.loc[1, "budgets"] == json.dumps({"gflops": 10.0})
    assert rows.loc[2, "reason"] == "duplicate of trial 1: result reused"
    assert [r["trial"] for r in again.to_json()["pareto"]] == [1]


def test_a_tightened_budget_rejects_a_reused_result(space_file, tmp_path: Path) -> None:
    loose = load_space(space_file("tightened", budgets="{gflops: 10}"))
    evaluate_candidates(loose, [CANDIDATE], study="tightened", results_dir=tmp_path)
    tight = loose.with_budgets({"gflops": 0.001})
    result = evaluate_candidates(
        tight, [CANDIDATE, CANDIDATE], study="tightened", results_dir=tmp_path
    )
    rows = result.table.set_index("trial")
    assert rows.loc[0, "state"] == "complete"
    assert rows.loc[1, "state"] == "infeasible" and rows.loc[1, "violations"] == "gflops<=0.001"
    assert rows.loc[1, "gflops"] == rows.loc[0, "gflops"]  # the same measurements
    assert result.to_json()["pareto"] == []  # trial 0 is over the budget in force


def test_changed_objectives_are_refused(space_file, tmp_path: Path) -> None:
    path = space_file("objectives")
    command = [*HARNESS, "search", str(path), "--trials", "1", "--draws", "0",
               "--results", str(tmp_path), "--json"]  # fmt: skip
    assert subprocess.run(command, capture_output=True, timeout=300).returncode == 0
    path.write_text(path.read_text().replace("gflops: minimize", "params: minimize"))
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "objectives are fixed when it is created" in done.stderr


# -- 4. the memory of the step that trains, at the input it trains at --------------------------
def test_costs_are_those_of_the_training_step_at_both_inputs(space_file, tmp_path: Path) -> None:
    train = "{batch_size: 4, grad_accum: 2, optimizer: sgd, num_workers: 0}"
    space = load_space(space_file("step", train=train))
    result = evaluate_candidates(space, [CANDIDATE], study="step", results_dir=tmp_path)
    row = result.table.iloc[0]
    spec = space.create_spec(CANDIDATE)
    kwargs = dict(batch=4, grad_accum=2, optimizer="sgd", classes=8)
    deployed = precheck(spec, **kwargs).train_memory.peak_mb  # type: ignore[arg-type]
    trained = precheck(spec, frames=4, size=16, **kwargs).train_memory.peak_mb  # type: ignore[arg-type]
    assert row["train_memory_mb"] == pytest.approx(deployed)
    assert row["trained.train_memory_mb"] == pytest.approx(trained) and trained < deployed
    assert row["memory_method"] == "meta_simulation: sgd step, batch 4 x 2 accumulated, fp32, cpu"
    assert (row["input_shape"], row["trained.input_shape"]) == ("3x8x32x32", "3x4x16x16")
    assert row["trained.gflops"] < row["gflops"]


def test_a_budget_on_the_trained_network(space_file, tmp_path: Path) -> None:
    # 0.006 GFLOPs: over it at the spec's 8x32 clip, within it at the fidelity's 4x16.
    budgets = "{trained.gflops: 0.006}"
    space = load_space(space_file("trained_budget", budgets=budgets))
    result = evaluate_candidates(space, [CANDIDATE], study="tb", results_dir=tmp_path)
    row = result.table.iloc[0]
    assert row["gflops"] > 0.006 >= row["trained.gflops"]
    assert row["state"] == "complete" and row["feasible"]


# -- 5. every cost is an objective and a budget -------------------------------------------------
@pytest.mark.parametrize("cost", list_costs())
def test_every_cost_is_an_objective_and_a_budget(space_file, tmp_path: Path, cost: str) -> None:
    path = space_file(
        cost.replace(".", "_"),
        budgets=f"{{{cost}: 1e-9}}",
        objectives=f"{{top1: maximize, {cost}: minimize}}",
    )
    space = load_space(path)
    result = evaluate_candidates(space, [CANDIDATE], study="every", results_dir=tmp_path)
    row = result.table.iloc[0]
    assert row["state"] == "infeasible", row["reason"]
    assert row["violations"] == f"{cost}<=1e-09"
    assert math.isfinite(float(row[cost])) and float(row[cost]) > 0
    loaded = optuna.load_study(study_name="every", storage=open_storage(None, tmp_path, "every"))
    (trial,) = loaded.get_trials()
    assert trial.values[1] == pytest.approx(float(row[cost]))  # told as the objective
    assert trial.constraints[cost] > 0


def test_latency_in_search_is_timed_once_at_fixed_threads(space_file, tmp_path: Path) -> None:
    budgets = "{latency_ms: 1e-9}"
    space = load_space(space_file("latency", budgets=budgets))
    first = evaluate_candidates(space, [CANDIDATE], study="lat1", results_dir=tmp_path)
    second = evaluate_candidates(space, [CANDIDATE], study="lat2", results_dir=tmp_path)
    a, b = first.table.iloc[0], second.table.iloc[0]
    assert a["latency_ms"] == b["latency_ms"]  # the cached timing, not a second one
    assert "1 thread(s)" in a["latency_method"] and "batch 1" in a["latency_method"]


# -- --trained ----------------------------------------------------------------------------------
def test_trained_counts_trials_that_trained(space_file, tmp_path: Path) -> None:
    # About a fifth of the draws are within 0.03 GFLOPs: --trained 2 runs until two trained.
    space = load_space(space_file("until_trained", budgets="{gflops: 0.03}"))
    result = run_search(space, trained=2, study="until", results_dir=tmp_path, check=False)
    assert result.trained() == 2
    assert result.count("infeasible") >= 1 and len(result.table) > 2


POSTGRES = os.environ.get("HARNESS_TEST_POSTGRES_URL")


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES, reason="HARNESS_TEST_POSTGRES_URL is not set")
def test_commands_and_workers_on_postgresql_continue_one_stream(space_file, tmp_path: Path) -> None:
    # Three commands of three workers each grow one PostgreSQL study to 4, 8, then 12
    # trials. Whichever process asks for trial n, it proposes what trial n of one
    # sequential run proposes (the random sampler ignores the history, so the comparison
    # is exact even though the workers race).
    path = space_file("pg_stream")
    study = f"pg-stream-{uuid.uuid4().hex[:8]}"
    for trials in ("4", "8", "12"):
        command = [*HARNESS, "search", str(path), "--trials", trials, "--workers", "3",
                   "--storage", str(POSTGRES), "--study", study, "--draws", "0",
                   "--results", str(tmp_path), "--json"]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    pg = _proposals(tmp_path, study, str(POSTGRES))
    assert 12 <= len(pg) <= 16
    run_search(load_space(path), trials=len(pg), study="one", results_dir=tmp_path, check=False)
    assert pg == _proposals(tmp_path, "one")
    assert len(set(pg)) == len(set(_proposals(tmp_path, "one")))
