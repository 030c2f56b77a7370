"""Ctrl-C and SIGTERM are a normal way to stop a search: exit 130, one line saying how to
resume, the running trial recorded as interrupted and queued again, and a results table that
holds every finished trial; the re-run trains the interrupted candidate, never fails on it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest
from _faults import load_journal_study, run_harness, search_command, storage_rows
from optuna.trial import TrialState

from harness.errors import Interrupted
from harness.results import load_study_results
from harness.search import load_space, run_search
from harness.search._evaluate import ROW_ATTR
from harness.search._signals import Stop, stop_on_signals
from harness.search._storage import open_storage

# Enough epochs that a trial lasts seconds: the signal lands inside its training.
TRAIN = "{batch_size: 16, num_workers: 0, checkpoint_every: 1}"


def _training(study: optuna.Study | None) -> bool:
    """Whether a trial of ``study`` has started to train (its costs are recorded)."""
    if study is None:
        return False
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return any((t.user_attrs.get(ROW_ATTR) or {}).get("spec_hash") for t in running)


def _load(results: Path, name: str) -> optuna.Study | None:
    try:
        return load_journal_study(results, name)
    except (KeyError, ValueError, FileNotFoundError):
        return None


def _stop_inside_a_trial(command: list[str], results: Path, name: str, sig: int) -> str:
    """Run ``command``, send ``sig`` once a trial trains and has written a checkpoint;
    return stderr after checking the exit status and the last line."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if _training(_load(results, name)) and any((results / name / "runs").glob("*/last.pt")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the search ended before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("harness: interrupted ("), err
    assert f"study '{name}' keeps its" in last and "resume it with: harness search" in last
    return err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_stopped_search_keeps_every_trial_and_resumes(
    fault_space, tmp_path: Path, sig: int
) -> None:
    name = f"stopped_{signal.Signals(sig).name.lower()}"
    results = tmp_path / "results"
    space = fault_space(name, train=TRAIN)
    space.write_text(space.read_text().replace("epochs: 1,", "epochs: 3,"))
    command = search_command(space, results, "--trials", "4", "--draws", "0")
    _stop_inside_a_trial(command, results, name, sig)

    study = load_journal_study(results, name)
    stored = storage_rows(study)
    table = load_study_results(results / name).set_index("trial")
    assert sorted(table.index) == sorted(stored)  # the table is the storage's, all of it
    interrupted = [n for n, r in stored.items() if str(r["reason"]).startswith("interrupted")]
    assert len(interrupted) == 1
    assert table.loc[interrupted[0], "state"] == "failed"
    assert "SIGINT" in stored[interrupted[0]]["reason"] or sig == signal.SIGTERM
    assert not (table["state"] == "running").any()

    rerun = run_harness(command)
    assert rerun.returncode == 0, rerun.stderr
    trials = {t.number: t for t in load_journal_study(results, name).get_trials()}
    retries = [t for t in trials.values() if t.user_attrs.get("retry_of") == interrupted[0]]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    row = retries[0].user_attrs[ROW_ATTR]
    assert row["state"] == "complete" and "different run" not in row["reason"]
    assert retries[0].params == trials[interrupted[0]].params  # the same candidate again
    done = load_study_results(results / name)
    finished = done[~done["reason"].fillna("").str.startswith("interrupted")]
    assert len(finished) == 4 and not finished["state"].isin(["running", "failed"]).any()


def test_a_retry_resumes_its_own_checkpoint(fault_space, tmp_path: Path) -> None:
    # The retry trains with the first try's seed and settings, so the checkpoint the first
    # try left is its own: the retry continues it (its first epoch is not trained again).
    name = "resumed"
    results = tmp_path / "results"
    space = fault_space(name, train=TRAIN)
    space.write_text(space.read_text().replace("epochs: 1,", "epochs: 4,"))
    command = search_command(space, results, "--trials", "1", "--draws", "0")
    _stop_inside_a_trial(command, results, name, signal.SIGINT)
    first = next(iter((results / name / "runs").glob("*/metrics.jsonl")))
    before = [json.loads(line) for line in first.read_text().splitlines()]
    assert before
    rerun = run_harness(command)
    assert rerun.returncode == 0, rerun.stderr
    assert not list((results / name / "runs").glob("*/last.pt.other-*"))  # nothing set aside
    table = load_study_results(results / name)
    retry = table[table["state"] == "complete"].iloc[0]
    history = json.loads(retry["history"])
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    # the epochs before the stop are the checkpoint's, timings and all: not trained again
    assert history[: len(before)] == before


def test_the_table_is_rebuilt_from_the_storage_first(fault_space, tmp_path: Path) -> None:
    # After kill -9 the table lags the storage (or is gone); the next run rewrites it from
    # the storage before its first trial.
    name = "rebuilt"
    results = tmp_path / "results"
    space = load_space(fault_space(name, budget=1e-6))
    run_search(space, trials=3, results_dir=results, check=False)
    (results / name / "trials.parquet").unlink()
    (results / name / "trials.csv").write_text("damaged")
    seen: list[pd.DataFrame] = []
    run_search(
        space, trials=4, results_dir=results, check=False,
        on_start=lambda: seen.append(load_study_results(results / name)),
    )  # fmt: skip
    assert sorted(seen[0]["trial"]) == [0, 1, 2]
    assert (results / name / "trials.csv").read_text().startswith("study,")


POSTGRES = os.environ.get("HARNESS_TEST_POSTGRES_URL")
STORAGES = [
    pytest.param(None, id="journal"),
    pytest.param(
        POSTGRES,
        id="postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not POSTGRES, reason="HARNESS_TEST_POSTGRES_URL is not set"),
        ],
    ),
]


@pytest.mark.parametrize("storage", STORAGES)
def test_ctrl_c_stops_every_worker_and_queues_their_trials(
    fault_space, tmp_path: Path, storage: str | None
) -> None:
    # Ctrl-C in a terminal reaches the whole process group: the parent and both workers.
    name = f"workers-{uuid.uuid4().hex[:6]}"
    results = tmp_path / "results"
    space = fault_space(name, train=TRAIN)
    space.write_text(space.read_text().replace("epochs: 1,", "epochs: 4,"))
    extra = ["--storage", storage] if storage else []
    command = search_command(
        space, results, "--trials", "6", "--workers", "2", "--draws", "0", *extra
    )
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    handle = None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        handle = handle or _open(results, name, storage)
        if handle is not None and _training(handle):
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the search ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.splitlines()[-1].startswith("harness: interrupted (SIGINT, Ctrl-C)"), err
    study = _open(results, name, storage)
    assert study is not None
    assert not study.get_trials(states=(TrialState.RUNNING,))  # none left running
    stored = storage_rows(study)
    table = load_study_results(results / name)
    assert sorted(table["trial"]) == sorted(stored)
    interrupted = [n for n, r in stored.items() if str(r["reason"]).startswith("interrupted")]
    waiting = study.get_trials(states=(TrialState.WAITING,))
    seen = [(t.number, t.state.name, t.user_attrs.get("retry_of")) for t in study.get_trials()]
    assert interrupted and len(waiting) == len(interrupted), seen  # each queued to run again
    assert {t.user_attrs["retry_of"] for t in waiting} == set(interrupted)


def test_ctrl_c_while_the_workers_start_prints_one_line(fault_space, tmp_path: Path) -> None:
    # The workers are still importing torch when Ctrl-C reaches the process group: they must
    # not die of it with tracebacks under (or torn into) the command's last line.
    name = "starting"
    results = tmp_path / "results"
    command = search_command(
        fault_space(name, train=TRAIN), results, "--trials", "4", "--workers", "2", "--draws", "0"
    )
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(_children(proc.pid)) < 2:
        time.sleep(0.01)
    assert proc.poll() is None and len(_children(proc.pid)) >= 2, "the workers never started"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.splitlines()[-1].startswith("harness: interrupted (SIGINT, Ctrl-C)"), err


def test_workers_stop_when_their_command_is_killed(fault_space, tmp_path: Path) -> None:
    # kill -9 of the command: its workers must not train on as orphans; each queues its trial.
    name = "orphans"
    results = tmp_path / "results"
    space = fault_space(name, train=TRAIN)
    space.write_text(space.read_text().replace("epochs: 1,", "epochs: 4,"))
    command = search_command(space, results, "--trials", "6", "--workers", "2", "--draws", "0")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if _training(_open(results, name, None)):
            break
        time.sleep(0.1)
    workers = _children(proc.pid)
    assert proc.poll() is None and len(workers) == 2, "the search ended before it was killed"
    proc.kill()
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(map(_alive, workers)):
        time.sleep(0.1)
    assert not any(map(_alive, workers)), "orphaned workers train on"
    study = load_journal_study(results, name)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert study.get_trials(states=(TrialState.WAITING,))  # the trials they held, queued again


def _alive(pid: str) -> bool:
    """Whether process ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[str]:
    """The child processes of ``pid`` (Linux's /proc)."""
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


def _open(results: Path, name: str, storage: str | None) -> optuna.Study | None:
    try:
        return load_journal_study(results, name, storage)
    except (KeyError, ValueError, FileNotFoundError):
        return None


def test_a_signal_while_a_trial_is_asked_for_queues_it(
    fault_space, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The signal lands in the narrowest window: the storage has made the trial, the worker
    # has not yet claimed it. It must still be queued again, not left running.
    import harness.search.run as run_module

    name = "asked"
    results = tmp_path / "results"
    space = load_space(fault_space(name, budget=1e-6))
    ask = run_module._ask

    def ask_then_signal(study: optuna.Study) -> optuna.Trial:
        trial = ask(study)
        if trial.number == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return trial

    monkeypatch.setattr(run_module, "_ask", ask_then_signal)
    with pytest.raises(Interrupted):
        run_search(space, trials=3, results_dir=results, check=False)
    study = load_journal_study(results, name)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.user_attrs["retry_of"] for t in waiting] == [1]
    assert storage_rows(study)[1]["reason"].startswith("interrupted (SIGINT")


def test_a_signal_while_waiting_for_the_journal_lock_still_appends(
    tmp_path: Path,
) -> None:
    # Ctrl-C reaches every worker at once, so one of them is often waiting for the journal's
    # lock while another holds it. The append it waits to make (a requeue's enqueue, say)
    # must still be made, and the holder's lock left to the holder; then the stop.
    results = tmp_path / "results"
    study = optuna.create_study(storage=open_storage(None, results, "locked"), study_name="locked")
    lock = results / "locked" / "journal.log.lock"
    os.symlink(results / "locked" / "journal.log", lock)  # another worker holds the lock
    held_at_release: list[bool] = []

    def other_worker() -> None:
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while we wait for the lock
        time.sleep(0.5)
        held_at_release.append(lock.is_symlink())
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()  # the holder releases it

    thread = threading.Thread(target=other_worker)
    with stop_on_signals(), pytest.raises(Stop):
        thread.start()
        study.set_user_attr("written", True)
    thread.join()
    assert held_at_release == [True]  # nobody took the holder's lock away
    assert load_journal_study(results, "locked").user_attrs == {"written": True}


def test_a_signal_while_the_journal_is_read_leaves_a_true_view(tmp_path: Path) -> None:
    # Every look at a journal study replays the records appended since the last look; Optuna
    # counts a record read before it applies it. A stop signal between the two used to leave
    # this process's view one record short for good (trial numbers shifted, a requeue
    # failing the wrong trial). The record now lands whole; the stop comes after the replay.
    results = tmp_path / "results"
    mine = optuna.create_study(storage=open_storage(None, results, "view"), study_name="view")
    other = optuna.load_study(study_name="view", storage=open_storage(None, results, "view"))
    for x in range(4):  # another worker's trials, unseen by ``mine`` so far
        other.enqueue_trial({"x": x})
    backend = mine._storage._backend  # type: ignore[attr-defined]
    read_logs = backend.read_logs

    class Record(dict):
        def __getitem__(self, key: str) -> object:  # Optuna reads "op_code" after counting
            if key == "op_code":
                os.kill(os.getpid(), signal.SIGINT)
            return super().__getitem__(key)

    def read_then_signal(start: int):  # Ctrl-C lands inside the replay, after one record
        for n, log in enumerate(read_logs(start)):
            yield Record(log) if n == 1 else log

    backend.read_logs = read_then_signal
    with stop_on_signals(), pytest.raises(Stop):
        mine.get_trials()
    backend.read_logs = read_logs
    seen = [t.system_attrs["fixed_params"] for t in mine.get_trials()]
    assert seen == [{"x": x} for x in range(4)]
