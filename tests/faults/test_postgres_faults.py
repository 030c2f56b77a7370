"""A worker of a multi-worker PostgreSQL study dies inside a trial: the others retry it, and
every trial lands exactly once.

Needs HARNESS_TEST_POSTGRES_URL (``. scripts/postgres.sh`` starts a throwaway server).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import optuna
import pytest
from _faults import search_command
from optuna.trial import TrialState

from harness.results import load_study_results
from harness.search import create_study, load_space, run_search
from harness.search._records import export_results
from harness.search._storage import WORKER_ATTR, open_storage

URL = os.environ.get("HARNESS_TEST_POSTGRES_URL")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not URL, reason="HARNESS_TEST_POSTGRES_URL is not set"),
]
TRIALS = 4
FAST_HEARTBEAT = {"HARNESS_HEARTBEAT_SECONDS": "1", "HARNESS_GRACE_SECONDS": "3"}


def _running_trial_of(study: optuna.Study, pid: int) -> optuna.trial.FrozenTrial | None:
    owner = f"{socket.gethostname()}:{pid}"
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.system_attrs.get(WORKER_ATTR) == owner and "row" in trial.user_attrs:
            return trial  # sampled and measured: about to train
    return None


def test_killed_worker_trial_is_retried(fault_space, tmp_path: Path) -> None:
    space_file = fault_space("pg_killed")
    study = f"pg-kill-{uuid.uuid4().hex[:8]}"
    # NOTE: the study (and Optuna's schema) is created once, before the workers start
    create_study(
        load_space(space_file), study=study, storage=URL, results_dir=tmp_path,
        sampler="tpe", seed=0,
    )  # fmt: skip
    env = {**os.environ, **FAST_HEARTBEAT, "OMP_NUM_THREADS": "1"}  # three on a small CPU
    args = ["--trials", str(TRIALS), "--storage", str(URL), "--study", study]
    workers = [
        subprocess.Popen(
            # NOTE: one seed for all: each trial's proposal derives from its number
            search_command(space_file, tmp_path, *args),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    victim = workers[0]
    handle = optuna.load_study(study_name=study, storage=open_storage(URL, tmp_path, study))
    killed = None
    deadline = time.monotonic() + 120
    try:
        while killed is None and time.monotonic() < deadline and victim.poll() is None:
            killed = _running_trial_of(handle, victim.pid)
            time.sleep(0.05)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    assert killed is not None, "the victim never ran a trial"
    for worker in workers[1:]:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr

    trials = handle.get_trials()
    assert len({t.number for t in trials}) == len(trials)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    dead = trials[killed.number]
    assert dead.state == TrialState.FAIL and dead.user_attrs.get("interrupted")
    retries = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(retries) == 1  # retried once, by a survivor, with the same candidate
    assert (
        retries[0].params == dead.params == killed.params
        and retries[0].state == TrialState.COMPLETE
    )
    assert retries[0].system_attrs[WORKER_ATTR] != killed.system_attrs[WORKER_ATTR]
    done = [t for t in trials if t.state.is_finished() and not t.user_attrs.get("interrupted")]
    assert TRIALS <= len(done) <= TRIALS + 2  # racing survivors may each start one more
    table = load_study_results(export_results(handle, tmp_path).parent)
    assert table["trial"].is_unique and sorted(table["trial"]) == [t.number for t in trials]
    assert table.set_index("trial").loc[killed.number, "reason"].startswith("interrupted")


def test_silent_remote_worker_trial_is_retried(
    fault_space, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker on another machine took a trial, beat once, then went silent (its host lost
    # power): no local process check applies; the heartbeat's grace period must run out.
    for key, value in FAST_HEARTBEAT.items():
        monkeypatch.setenv(key, value)
    space = load_space(fault_space("pg_silent", budget=1e-6))  # cheap: rejected untrained
    study = f"pg-silent-{uuid.uuid4().hex[:8]}"
    created = create_study(
        space, study=study, storage=URL, results_dir=tmp_path, sampler="tpe", seed=0
    )
    lost = created.ask()
    space.sample(lost)
    storage = open_storage(URL, tmp_path, study)
    storage.set_trial_system_attr(lost._trial_id, WORKER_ATTR, "elsewhere:4242")
    assert isinstance(storage, optuna.storages.RDBStorage)
    storage.record_heartbeat(lost._trial_id)
    time.sleep(3.5)  # past the grace period

    result = run_search(
        space, trials=3, study=study, storage=URL, results_dir=tmp_path, check=False
    )
    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    assert trials[lost.number].state == TrialState.FAIL
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == lost.number]
    assert len(retry) == 1 and retry[0].params == trials[lost.number].params
    assert retry[0].state == TrialState.COMPLETE
    df = result.table.set_index("trial")
    assert df.loc[lost.number, "reason"].startswith("interrupted (its worker stopped")
    assert (df.drop(index=lost.number)["state"] == "infeasible").sum() == 3
