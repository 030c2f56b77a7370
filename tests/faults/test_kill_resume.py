"""kill -9 a search at random moments, several times; the re-run command finishes the study
with every finished trial kept, none trained twice, and every interrupted one run again."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import optuna
import pandas as pd
from _faults import load_journal_study, run_harness, search_command, storage_rows
from optuna.trial import TrialState

from harness.results import load_study_results

TRIALS = 5
KILLS = 3
METRICS = ("spec_hash", "protocol", "top1", "top5", "train_seconds", "params", "gflops")


def _same(a: object, b: object) -> bool:
    missing_a, missing_b = a is None or bool(pd.isna(a)), b is None or bool(pd.isna(b))
    return (missing_a and missing_b) or (not missing_a and not missing_b and a == b)


def _study(results: Path, name: str) -> optuna.Study | None:
    try:
        return load_journal_study(results, name)
    except (KeyError, ValueError, FileNotFoundError):  # not created (or half written) yet
        return None


def _inside_trial(study: optuna.Study | None, pid: int, *, after_complete: bool) -> bool:
    """Whether the process ``pid`` is running a trial (and, if asked, one trial is done)."""
    if study is None:
        return False
    trials = study.get_trials(deepcopy=False)
    owner = f"{socket.gethostname()}:{pid}"
    running = any(
        t.state == TrialState.RUNNING and t.system_attrs.get("worker") == owner for t in trials
    )
    return running and (not after_complete or any(t.state == TrialState.COMPLETE for t in trials))


def _wait_inside_trial(
    proc: subprocess.Popen, results: Path, name: str, *, after_complete: bool
) -> bool:
    """Poll the journal until ``proc`` is inside a trial; False if it exited first."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if _inside_trial(_study(results, name), proc.pid, after_complete=after_complete):
            return True
        time.sleep(0.05)
    return False


def _kill_at_random(
    command: list[str], results: Path, name: str, rng: random.Random, kill: int
) -> tuple[dict[int, dict], list[int]]:
    """Run ``command``, SIGKILL it inside a trial after a random delay; returns the rows
    finished at the kill and the trials it left running."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # The first kill may land in the very first trial; later ones after a trial is
        # complete, so that there is something finished to lose.
        if _wait_inside_trial(proc, results, name, after_complete=kill > 0):
            time.sleep(rng.uniform(0.0, 4.0))
            # NOTE: land inside a trial (not between two), as a crash mid-training would
            _wait_inside_trial(proc, results, name, after_complete=False)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    study = load_journal_study(results, name)
    rows = storage_rows(study)
    finished = {n: r for n, r in rows.items() if r["state"] != "running"}
    running = [n for n, r in rows.items() if r["state"] == "running"]
    return finished, running


def test_random_sigkills_then_resume(fault_space, tmp_path: Path) -> None:
    rng = random.Random(20240609)
    name = "killed_often"
    results = tmp_path / "results"
    command = search_command(fault_space(name), results, "--trials", str(TRIALS))

    finished_at_kill: dict[int, dict] = {}
    interrupted: set[int] = set()
    for kill in range(KILLS):
        finished, running = _kill_at_random(command, results, name, rng, kill)
        for number, row in finished_at_kill.items():  # a later kill loses nothing earlier
            assert all(_same(finished[number].get(k), row.get(k)) for k in METRICS), number
        finished_at_kill = finished
        interrupted.update(running)
    assert interrupted, "no kill landed inside a trial"
    assert any(r["state"] == "complete" for r in finished_at_kill.values())

    final = run_harness(command)
    assert final.returncode == 0, final.stderr

    df = load_study_results(results / name)
    assert df["trial"].is_unique
    assert not (df["state"] == "running").any()
    is_interrupted = df["reason"].fillna("").str.startswith("interrupted")
    done = df[~is_interrupted]
    assert len(done) == TRIALS and (done["state"] == "complete").all()
    # nothing that had finished before a kill was lost, re-run or changed
    by_trial = df.set_index("trial")
    for number, row in finished_at_kill.items():
        assert by_trial.loc[number, "state"] == row["state"]
        for key in METRICS:
            assert _same(by_trial.loc[number, key], row.get(key)), (number, key)
    # no candidate trained twice: a repeated spec is a reused duplicate, not a second run
    trained = done[~done["reason"].fillna("").str.startswith("duplicate of trial")]
    assert not trained.duplicated(["spec_hash", "protocol"]).any()
    # every trial a kill interrupted was failed and run again exactly once, same candidate
    trials = {t.number: t for t in load_journal_study(results, name).get_trials()}
    for number in interrupted:
        assert trials[number].state == TrialState.FAIL
        assert trials[number].user_attrs.get("interrupted")
        root = trials[number].user_attrs.get("retry_of", number)
        runs = [
            t
            for t in trials.values()
            if t.user_attrs.get("retry_of", t.number) == root
            and not t.user_attrs.get("interrupted")
        ]
        assert len(runs) == 1 and runs[0].state == TrialState.COMPLETE
        if trials[number].params:  # killed after sampling: the same candidate again
            assert runs[0].params == trials[number].params
    assert set(df.loc[is_interrupted, "trial"]) == interrupted
    assert os.path.isfile(results / name / "trials.csv")
