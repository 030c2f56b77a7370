"""Storage URLs (the driver harness installs, a storage that cannot be opened), heartbeats
and the recovery of dead workers' trials."""

from __future__ import annotations

import datetime
import time
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import FrozenTrial, TrialState

from harness.cli import main
from harness.errors import SpecError
from harness.search._storage import (
    HEARTBEAT_ATTR,
    WORKER_ATTR,
    Heartbeat,
    open_storage,
    recover_interrupted,
    worker_id,
)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_bare_postgresql_url_uses_psycopg2(scheme: str, tmp_path: Path) -> None:
    # Nothing listens on port 1: the error must come from psycopg2 connecting (the driver
    # harness installs), not from a missing psycopg module.
    url = f"{scheme}://user:secret@127.0.0.1:1/db"
    with pytest.raises(SpecError) as error:
        open_storage(url, tmp_path, "study")
    message = str(error.value)
    assert "psycopg2.OperationalError" in message and "Connection refused" in message
    assert "secret" not in message and "user:***@127.0.0.1:1" in message
    assert "\n" not in message


def test_search_with_an_unreachable_storage_is_one_line(
    tiny_space, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tiny_space("unreachable")
    url = "postgresql://user:secret@127.0.0.1:1/db"
    with pytest.raises(SystemExit) as exit_:
        main(["search", str(space), "--storage", url, "--results", str(tmp_path), "--json"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2
    assert len(err.splitlines()) == 1 and "--storage: cannot open storage" in err
    assert "secret" not in err and "Traceback" not in err


# --- heartbeats and dead workers ------------------------------------------------------------

OTHER = "elsewhere:4242"  # a worker on another host


def _study(kind: str, tmp_path: Path) -> optuna.Study:
    url = None if kind == "journal" else f"sqlite:///{tmp_path / 'db.sqlite'}"
    return optuna.create_study(storage=open_storage(url, tmp_path, "hb"), study_name="hb")


def _running(
    study: optuna.Study, *, worker: str, beat_ago: float | None, started_ago: float
) -> int:
    """A running trial made through the storage API, as a worker elsewhere left it."""
    attrs: dict[str, object] = {WORKER_ATTR: worker}
    if beat_ago is not None:
        attrs[HEARTBEAT_ATTR] = time.time() - beat_ago
    template = FrozenTrial(
        number=-1, trial_id=-1, state=TrialState.RUNNING, value=None, values=None,
        datetime_start=datetime.datetime.now() - datetime.timedelta(seconds=started_ago),
        datetime_complete=None, params={"x": 3}, distributions={"x": IntDistribution(0, 9)},
        user_attrs={}, system_attrs=attrs, intermediate_values={},
    )  # fmt: skip
    trial_id = study._storage.create_new_trial(study._study_id, template_trial=template)
    return study._storage.get_trial(trial_id).number


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_a_silent_trial_of_another_host_is_requeued_once(kind: str, tmp_path: Path) -> None:
    study = _study(kind, tmp_path)
    dead = _running(study, worker=OTHER, beat_ago=200, started_ago=300)
    alive = [
        _running(study, worker=OTHER, beat_ago=5, started_ago=300),  # beat recently
        _running(study, worker=OTHER, beat_ago=None, started_ago=300),  # not ours to judge
        _running(study, worker=worker_id(), beat_ago=200, started_ago=300),  # this process
        # a retry that copied the old trial's beat (Optuna's callback does), started now
        _running(study, worker=OTHER, beat_ago=200, started_ago=5),
    ]
    assert recover_interrupted(study) == [dead]
    assert recover_interrupted(study) == []  # never twice
    trials = study.get_trials()
    failed = trials[dead]
    assert failed.state == TrialState.FAIL and failed.user_attrs["interrupted"] is True
    assert f"worker {OTHER} silent for 2" in failed.user_attrs["row"]["reason"]
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].system_attrs["fixed_params"] == {"x": 3}
    assert waiting[0].user_attrs["retry_of"] == dead
    assert all(trials[n].state == TrialState.RUNNING for n in alive)


def test_the_grace_period_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = _study("journal", tmp_path)
    number = _running(study, worker=OTHER, beat_ago=5, started_ago=300)
    assert recover_interrupted(study) == []  # 5 s of silence: within the default 90 s
    monkeypatch.setenv("HARNESS_GRACE_SECONDS", "1")
    assert recover_interrupted(study) == [number]


def test_heartbeat_beats_a_journal_trial_until_the_block_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_HEARTBEAT_SECONDS", "1")
    study = _study("journal", tmp_path)
    trial = study.ask()

    def beat() -> float:
        return study._storage.get_trial(trial._trial_id).system_attrs[HEARTBEAT_ATTR]

    with Heartbeat(study, trial) as heartbeat:
        first = beat()  # on entering
        assert abs(first - time.time()) < 1
        time.sleep(1.5)
        assert beat() > first and heartbeat._thread.is_alive()
    assert not heartbeat._thread.is_alive()
    last = beat()
    time.sleep(1.2)
    assert beat() == last


def test_heartbeat_stops_when_another_worker_failed_the_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_HEARTBEAT_SECONDS", "1")
    study = _study("journal", tmp_path)
    trial = study.ask()
    with Heartbeat(study, trial) as heartbeat:
        study.tell(trial, state=TrialState.FAIL)  # as recover_interrupted elsewhere would
        time.sleep(1.5)
        assert not heartbeat._thread.is_alive()  # stopped at its next beat, no traceback


def test_an_rdb_trial_beats_optunas_heartbeat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_HEARTBEAT_SECONDS", "1")
    monkeypatch.setenv("HARNESS_GRACE_SECONDS", "1")
    study = _study("sqlite", tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeats "want" study.optimize
        trial = study.ask()
    with Heartbeat(study, trial):
        time.sleep(0.2)
    time.sleep(2.2)  # the worker "died": its Optuna heartbeat goes stale
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recover_interrupted(study)
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL  # by Optuna's stale-heartbeat check
    assert HEARTBEAT_ATTR not in trials[0].system_attrs  # RDB keeps Optuna's own
    retry = [t for t in trials if t.state == TrialState.WAITING]
    assert len(retry) == 1 and retry[0].system_attrs["failed_trial"] == 0
