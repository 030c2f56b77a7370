"""End-to-end searches on real journal storages in temporary directories."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from harness.results import load_study_results
from harness.search import evaluate_candidates, load_space, run_search
from harness.search._storage import open_storage


def _study(results: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(None, results, name))


def test_over_budget_rejected_before_training(tiny_space, tmp_path: Path) -> None:
    space = load_space(tiny_space("over", budget=1e-6))
    # NOTE: no space check: its feasibility scan would refuse a space with nothing in budget
    result = run_search(space, trials=4, results_dir=tmp_path / "results", seed=0, check=False)
    df = result.table
    assert len(df) == 4
    assert (df["state"] == "infeasible").all()
    assert (df["train_seconds"] == 0).all()
    assert not df["feasible"].any()
    assert df["violations"].str.startswith("gflops<=").all()
    assert (df["gflops"] > 1e-6).all() and (df["params"] > 0).all()
    assert not (tmp_path / "results" / "over" / "runs").exists()  # nothing was trained
    study = _study(tmp_path / "results", "over")
    for trial in study.trials:
        assert trial.constraints["gflops"] > 0  # the sampler sees them as infeasible
    assert result.to_json()["n_infeasible"] == 4


def test_duplicates_reuse_the_recorded_result(tiny_space, tmp_path: Path) -> None:
    space = load_space(tiny_space("dups", budget=1e-6))
    same = {"stages.1.width": 8, "stages.1.block.type": "r2plus1d"}
    result = evaluate_candidates(space, [same, same, same], study="dups", results_dir=tmp_path)
    df = result.table.sort_values("trial")
    assert len(df) == 3 and df["spec_hash"].nunique() == 1
    # an over-budget candidate is judged again each time (measurements from the cache)
    over = "over budget: gflops<=1e-06 (rejected before training); same candidate as trial 0"
    assert df["reason"].tolist()[1:] == [over] * 2
    # calling again with the same candidates adds nothing (they were enqueued once)
    again = evaluate_candidates(space, [same, same, same], study="dups", results_dir=tmp_path)
    assert len(again.table) == 3


def test_resume_after_sigkill(tiny_space, tmp_path: Path) -> None:
    # Feasible candidates train for a few seconds each, so the kill lands inside a trial.
    space_file = tiny_space("killed", budget=100.0)
    results = tmp_path / "results"
    command = [
        sys.executable, "-m", "harness", "search", str(space_file),
        "--trials", "3", "--results", str(results), "--json",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = results / "killed" / "journal.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if journal.exists():
            try:
                trials = _study(results, "killed").get_trials(deepcopy=False)
            except KeyError:  # the journal exists before the study is written into it
                continue
            states = [t.state for t in trials]
            if (
                states.count(optuna.trial.TrialState.COMPLETE) >= 1
                and states[-1].is_finished() is False
            ):
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _study(results, "killed").get_trials(deepcopy=False)
    done_before = {t.number: t.params for t in before if t.state.is_finished()}
    running = [t.number for t in before if t.state == optuna.trial.TrialState.RUNNING]
    # NOTE: the kill almost always lands inside a trial; if the trial finished in the same
    # instant, the resume checks below still hold and the retry checks have nothing to do.

    rerun = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    df = load_study_results(results / "killed")
    assert df["trial"].is_unique
    finished = df[df["reason"].fillna("").str.startswith("interrupted") == False]  # noqa: E712
    assert len(finished) == 3 and (finished["state"] == "complete").all()
    after = {t.number: t for t in _study(results, "killed").get_trials(deepcopy=False)}
    for number, params in done_before.items():  # nothing finished was lost or re-run
        assert after[number].params == params and after[number].state.is_finished()
    for number in running:  # the interrupted trial was failed and run again
        assert after[number].state == optuna.trial.TrialState.FAIL
        retried = [t for t in after.values() if t.user_attrs.get("retry_of") == number]
        assert len(retried) == 1
        if after[number].params:  # killed after sampling: the retry uses the same candidate
            assert retried[0].params == after[number].params
        assert retried[0].state == optuna.trial.TrialState.COMPLETE


def test_changed_space_is_refused(tiny_space, tmp_path: Path) -> None:
    space = load_space(tiny_space("changed", budget=1e-6))
    run_search(space, trials=1, results_dir=tmp_path, check=False)
    other = space.model_copy(update={"data": "synthetic:small"})
    with pytest.raises(Exception, match=r"different search space \(data differ\)"):
        run_search(other, trials=2, results_dir=tmp_path, check=False)


TINY = Path(__file__).resolve().parents[2] / "search_spaces" / "tiny.yaml"


def test_tiny_space_trains_feasible_and_skips_infeasible(tmp_path: Path) -> None:
    space = load_space(TINY)
    small = {"stages.0.block.type": "basic", "stages.0.block.temporal_kernel": 1,
             "stages.1.block.type": "basic", "stages.1.block.temporal_kernel": 1,
             "stages.1.width": 16, "stages.2.width": 32}  # fmt: skip
    wide = {**small, "stages.1.block.type": "r2plus1d", "stages.1.width": 64,
            "stages.2.width": 128}  # fmt: skip
    del wide["stages.1.block.temporal_kernel"]
    result = evaluate_candidates(space, [small, wide], study="tiny_e2e", results_dir=tmp_path)
    df = result.table.set_index("trial")
    assert df.loc[0, "state"] == "complete" and df.loc[0, "feasible"]
    assert df.loc[0, "train_seconds"] > 0 and 0 <= df.loc[0, "top1"] <= 1
    assert df.loc[0, "protocol"].startswith("synthetic:ci|frames=4|size=16")
    assert df.loc[1, "state"] == "infeasible" and df.loc[1, "train_seconds"] == 0
    assert [r["trial"] for r in result.to_json()["pareto"]] == [0]
