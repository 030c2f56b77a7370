"""Where studies live: an embedded journal file by default, or a database URL.

- Embedded (no URL): ``results/<study>/journal.log``, Optuna's journal file storage. Several
  local worker processes share it safely (the file lock serialises appends); no server.
- ``sqlite:///...``, ``postgresql://...``, ``mysql://...``: Optuna's RDB storage, with
  heartbeats so that a trial whose worker died is failed and retried by whoever looks next.
  ``HARNESS_HEARTBEAT_SECONDS`` and ``HARNESS_GRACE_SECONDS`` override the heartbeat interval
  (20 s) and how long a silent trial is trusted (90 s).

Every worker looks for such trials before each ``ask`` (:func:`recover_interrupted`), so the
survivors of a study retry what a dead worker left running.
"""

from __future__ import annotations

import datetime
import os
import socket
import threading
import warnings
from pathlib import Path

import optuna
from optuna.storages import (
    BaseStorage,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError

from harness.errors import SpecError

__all__ = ["Heartbeat", "open_storage", "recover_interrupted", "requeue", "worker_id"]

HEARTBEAT_SECONDS = 20  # default; HARNESS_HEARTBEAT_SECONDS overrides
GRACE_SECONDS = 90  # default; HARNESS_GRACE_SECONDS overrides
WORKER_ATTR = "worker"  # system attribute: "host:pid" of the process running the trial
# A running trial without a worker is one whose process died inside ``ask`` (before it could
# record itself); asking takes milliseconds, so one this old is dead.
ASK_SECONDS = 60.0


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _seconds(variable: str, default: int) -> int:
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise SpecError(
            f"must be a whole number of seconds >= 1, got '{text}'",
            path=(variable,),
            file="<environment>",
        )
    return int(text)


def open_storage(url: str | None, results_dir: Path, study: str) -> BaseStorage:
    """The storage for ``url`` (None: the embedded journal file of ``study``)."""
    if url is None or url.startswith("journal:") or url.endswith(".log"):
        path = (
            Path(url.removeprefix("journal:")) if url else Path(results_dir) / study / "journal.log"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if "://" not in url:
        raise SpecError(
            "a storage is a database URL (postgresql://..., sqlite:///...) or journal:PATH",
            path=("--storage",),
            file="<command line>",
        )
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna: we know
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                _with_driver(url),
                heartbeat_interval=_seconds("HARNESS_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS),
                grace_period=_seconds("HARNESS_GRACE_SECONDS", GRACE_SECONDS),
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
                engine_kwargs={"pool_pre_ping": True},
            )
    except (ImportError, SQLAlchemyError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpecError(
            f"cannot open storage {_redacted(url)}: {reason}",
            path=("--storage",),
            file="<command line>",
        ) from None


def _with_driver(url: str) -> str:
    """``url`` with psycopg2 named for PostgreSQL, the driver harness installs.

    NOTE: SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg (version 3), which is
    not a dependency; an explicit ``postgresql+driver://`` is left as written.
    """
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url.removeprefix(scheme)
    return url


def _redacted(url: str) -> str:
    """``url`` without its password (``user:***@host``)."""
    head, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{head}{sep}{user}:***@{host}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def requeue(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """Fail ``trial`` as interrupted (``reason``) and enqueue its candidate again.

    The retry carries ``retry_of`` (the first trial of the candidate), so that it resumes
    that trial's checkpoint. Returns False when another worker finished the trial first.
    """
    from harness.search._evaluate import ROW_ATTR

    handle = optuna.trial.Trial(study, trial._trial_id)
    row = dict(trial.user_attrs.get(ROW_ATTR) or {})
    row.update(state="failed", reason=reason)
    try:
        handle.set_user_attr(ROW_ATTR, row)
        handle.set_user_attr("interrupted", True)
        study.tell(trial.number, state=TrialState.FAIL)
    except (RuntimeError, ValueError):
        return False
    root = trial.user_attrs.get("retry_of", trial.number)
    keep = ("candidate", "step", "axis", "parent")
    extra: dict[str, object] = {k: v for k, v in trial.user_attrs.items() if k in keep}
    study.enqueue_trial(trial.params, user_attrs={"retry_of": root, **extra})
    return True


def recover_interrupted(study: optuna.Study) -> list[int]:
    """Fail the running trials of dead workers and enqueue each again.

    A trial is known dead when it ran on this host under a process id that no longer exists
    (kill -9, a power cut), or, in an RDB storage, when its heartbeat stopped for longer than
    the grace period (Optuna's retry callback enqueues those). Returns the numbers of the
    trials recovered through the process check.
    """
    host = socket.gethostname()
    recovered = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # RDB storages: heartbeats
    now = datetime.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(trial.system_attrs.get(WORKER_ATTR, ""))
        owner_host, _, pid = owner.rpartition(":")
        if not owner:
            started = trial.datetime_start or now
            if (now - started).total_seconds() < ASK_SECONDS:
                continue
        elif owner_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        if requeue(study, trial, f"interrupted (worker {owner or 'unknown'} died); re-run"):
            recovered.append(trial.number)
    return recovered


class Heartbeat:
    """Records a heartbeat for a trial every few seconds while the block runs (RDB only).

    ``study.optimize`` does this itself; an ask/tell loop has to.
    """

    def __init__(self, study: optuna.Study, trial: optuna.Trial) -> None:
        storage = study._storage  # NOTE: Optuna exposes no public getter for it
        self._storage = storage if isinstance(storage, RDBStorage) else None
        self._trial_id = trial._trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        assert self._storage is not None
        interval = self._storage.get_heartbeat_interval() or HEARTBEAT_SECONDS
        while True:
            self._storage.record_heartbeat(self._trial_id)
            if self._stop.wait(interval):
                return

    def __enter__(self) -> Heartbeat:
        if self._storage is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._storage is not None:
            self._stop.set()
            self._thread.join()
