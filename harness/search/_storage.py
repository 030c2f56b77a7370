"""Where studies live: an embedded journal file by default, or a database URL.

- Embedded (no URL): ``results/<study>/journal.log``, Optuna's journal file storage. Several
  local worker processes share it safely (the file lock serialises appends); no server.
- ``sqlite:///...``, ``postgresql://...``, ``mysql://...``: Optuna's RDB storage, with
  heartbeats so that a trial whose worker died is failed and retried by whoever looks next.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import optuna
from optuna.storages import (
    BaseStorage,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from harness.errors import SpecError

__all__ = ["Heartbeat", "open_storage", "recover_interrupted", "worker_id"]

HEARTBEAT_SECONDS = 20
GRACE_SECONDS = 90
WORKER_ATTR = "worker"  # system attribute: "host:pid" of the process running the trial


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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
    return RDBStorage(
        url,
        heartbeat_interval=HEARTBEAT_SECONDS,
        grace_period=GRACE_SECONDS,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
        engine_kwargs={"pool_pre_ping": True},
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_interrupted(study: optuna.Study) -> list[int]:
    """Fail the running trials of dead local processes and enqueue each again.

    A trial is known dead when it ran on this host under a process id that no longer exists
    (kill -9, a power cut). Remote workers' trials are left to the RDB heartbeat. Returns
    the numbers of the trials recovered here.
    """
    from harness.search._evaluate import ROW_ATTR

    host = socket.gethostname()
    recovered = []
    optuna.storages.fail_stale_trials(study)  # RDB storages: heartbeats
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(trial.system_attrs.get(WORKER_ATTR, ""))
        owner_host, _, pid = owner.rpartition(":")
        if owner_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        handle = optuna.trial.Trial(study, trial._trial_id)
        row = dict(trial.user_attrs.get(ROW_ATTR) or {})
        row.update(state="failed", reason=f"interrupted (worker {owner} died); re-run")
        try:
            handle.set_user_attr(ROW_ATTR, row)
            handle.set_user_attr("interrupted", True)
            study.tell(trial.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError):
            continue  # another worker recovered it first
        root = trial.user_attrs.get("retry_of", trial.number)
        keep = ("candidate", "step", "axis", "parent")
        extra: dict[str, object] = {k: v for k, v in trial.user_attrs.items() if k in keep}
        study.enqueue_trial(trial.params, user_attrs={"retry_of": root, **extra})
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
        while True:
            self._storage.record_heartbeat(self._trial_id)
            if self._stop.wait(HEARTBEAT_SECONDS):
                return

    def __enter__(self) -> Heartbeat:
        if self._storage is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._storage is not None:
            self._stop.set()
            self._thread.join()
