"""Where studies live: an embedded journal file by default, a database URL, or a gRPC proxy.

- Embedded (no URL, ``journal:PATH`` or ``*.log``): ``results/<study>/journal.log``, Optuna's
  journal file storage. Several worker processes share it safely (a lock file serialises
  appends), on one host or on several through NFS; no server. A record torn by kill -9 or a
  full disk during an append is cut off when the journal is next opened (kept beside it as
  ``journal.log.torn-<unix time>``, with one warning line), so the study resumes.
- ``sqlite:///...``, ``postgresql://...``, ``mysql://...``: Optuna's RDB storage.
- ``grpc://HOST:PORT``: Optuna's gRPC storage proxy, which ``harness storage serve URL``
  runs in front of a database; the way to go past a hundred workers.

Dead workers. While a trial runs, its worker beats a heartbeat (:class:`Heartbeat`): an RDB
storage records Optuna's own every ``HARNESS_HEARTBEAT_SECONDS`` (20 s), any other storage
gets the trial system attribute ``harness.heartbeat`` (unix time of the beat) as often. Before
each ``ask`` every worker calls :func:`recover_interrupted`, which fails and enqueues again a
running trial when

- it ran on this host under a process id that no longer exists (kill -9, a power cut), or
- it ran on another host, or under no known process, and its last sign of life (its harness
  heartbeat, or its start when that is later) is older than ``HARNESS_GRACE_SECONDS`` (90 s),
- or, in an RDB storage, its Optuna heartbeat is that old (Optuna's retry callback enqueues
  it again, at most 3 times).

So the survivors of a study retry what a dead worker left running, whichever storage it is in;
a trial is failed once (the storage refuses to fail a finished trial, so of two workers that
find the same dead trial only one enqueues it). A trial that never beat a harness heartbeat
is judged by the process check alone. The grace period should be several heartbeat
intervals, and the hosts' clocks must agree to well within it (NTP).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import threading
import time
import urllib.parse
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import (
    BaseStorage,
    GrpcStorageProxy,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError

from harness.errors import Location, SpecError, warn
from harness.search._signals import held_signals

if TYPE_CHECKING:
    import grpc

__all__ = [
    "HEARTBEAT_ATTR",
    "WORKER_ATTR",
    "Heartbeat",
    "check_settings",
    "create_proxy_server",
    "open_storage",
    "recover_interrupted",
    "requeue",
    "worker_id",
]

HEARTBEAT_SECONDS = 20  # default; HARNESS_HEARTBEAT_SECONDS overrides
GRACE_SECONDS = 90  # default; HARNESS_GRACE_SECONDS overrides
WORKER_ATTR = "worker"  # system attribute: "host:pid" of the process running the trial
HEARTBEAT_ATTR = "harness.heartbeat"  # system attribute: unix time (s) of the trial's last beat
# A running trial without a worker is one whose process died inside ``ask`` (before it could
# record itself); asking takes milliseconds, so one this old is dead.
ASK_SECONDS = 60.0
PROXY_READY_SECONDS = 3.0  # how long open_storage waits for a gRPC proxy to answer
PROXY_THREADS = 10  # requests a proxy serves at once (Optuna's default)
# NOTE: Optuna's JournalStorage writes each record as one compact JSON object whose first key
# is "op_code" (``_write_log``); a torn first record is recognised by this start.
RECORD_START = b'{"op_code":'


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


def check_settings() -> None:
    """Read the heartbeat settings now: a bad value stops a study before its first trial."""
    _seconds("HARNESS_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS)
    _seconds("HARNESS_GRACE_SECONDS", GRACE_SECONDS)


def _cli_error(message: str, option: str = "--storage") -> SpecError:
    return SpecError(message, path=(option,), file="<command line>")


def open_storage(url: str | None, results_dir: Path, study: str) -> BaseStorage:
    """The storage for ``url`` (None: the embedded journal file of ``study``).

    A journal is checked on opening: a torn last record is cut off (see the module
    docstring), a damaged record before it is a :class:`SpecError`.
    """
    if url is not None and url.startswith("grpc:"):
        return _open_proxy(url)
    if url is None or url.startswith("journal:") or url.endswith(".log"):
        if url is None:
            return _open_journal(Path(results_dir) / study / "journal.log", "--results")
        return _open_journal(Path(url.removeprefix("journal:")), "--storage")
    if "://" not in url:
        raise _cli_error(
            "a storage is a database URL (postgresql://..., sqlite:///...), grpc://HOST:PORT "
            "or journal:PATH"
        )
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna: we know
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _open_database(
            url,
            heartbeat_interval=_seconds("HARNESS_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS),
            grace_period=_seconds("HARNESS_GRACE_SECONDS", GRACE_SECONDS),
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
        )


def _open_database(url: str, option: str = "--storage", **options: object) -> RDBStorage:
    try:
        return RDBStorage(
            _with_driver(url),
            engine_kwargs={"pool_pre_ping": True},
            **options,  # type: ignore[arg-type]
        )
    except (ImportError, SQLAlchemyError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _cli_error(f"cannot open storage {_redacted(url)}: {reason}", option) from None


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


# --- the gRPC proxy ------------------------------------------------------------------------


def _proxy_address(url: str) -> tuple[str, int]:
    """(host as gRPC wants it, port) of ``grpc://HOST:PORT``."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname
    extra = parts.path not in ("", "/") or parts.query or parts.fragment or parts.username
    if parts.scheme != "grpc" or not host or port is None or port < 1 or extra:
        raise _cli_error(f"a storage proxy is grpc://HOST:PORT, got '{url}'")
    return (f"[{host}]" if ":" in host else host), port


def _open_proxy(url: str) -> GrpcStorageProxy:
    host, port = _proxy_address(url)
    try:
        with warnings.catch_warnings():  # the proxy is "experimental" in Optuna: we know
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            proxy = GrpcStorageProxy(host=host, port=port)
    except ImportError as exc:
        raise _cli_error(f"a grpc:// storage needs the grpcio package ({exc})") from None
    try:
        proxy.wait_server_ready(timeout=PROXY_READY_SECONDS)
    except ConnectionError:
        proxy.close()
        raise _cli_error(
            f"no storage proxy answers at {url} (waited {PROXY_READY_SECONDS:g} s); start one "
            f"with: harness storage serve DATABASE_URL --port {port}"
        ) from None
    return proxy


def create_proxy_server(url: str, *, host: str, port: int) -> grpc.Server:
    """Optuna's gRPC storage proxy over the database at ``url``, bound to ``host:port``.

    The server is not started. It keeps Optuna's in-process cache in front of the database
    (``optuna.storages.get_storage``), as Optuna recommends for the proxy.

    Raises:
        SpecError: ``url`` is a journal, a proxy, malformed or cannot be opened, or the
            address cannot be bound.
    """
    if url.startswith(("journal:", "grpc:")) or url.endswith(".log") or "://" not in url:
        raise _cli_error(
            "the storage proxy serves a database URL (postgresql://..., sqlite:///...); "
            "Optuna's proxy cannot serve a journal file",
            "URL",
        )
    storage = optuna.storages.get_storage(_open_database(url, "URL"))
    # NOTE: grpc core logs a failed bind on stderr besides raising; the error below says it
    # in one line (GRPC_VERBOSITY=debug still shows grpc's own).
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    import grpc
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    # NOTE: this is Optuna's ``make_server`` (what ``run_grpc_proxy_server`` starts and waits
    # on), with one change: grpc binds with SO_REUSEPORT by default, so a second proxy on a
    # busy port would start and share the port silently; here it fails to bind instead.
    server = grpc.server(
        ThreadPoolExecutor(max_workers=PROXY_THREADS), options=[("grpc.so_reuseport", 0)]
    )
    api_pb2_grpc.add_StorageServiceServicer_to_server(OptunaStorageProxyService(storage), server)
    address = f"[{host}]" if ":" in host else host
    try:
        server.add_insecure_port(f"{address}:{port}")
    except RuntimeError as exc:  # grpc: "Failed to bind to address ..."
        raise _cli_error(
            f"cannot listen on {address}:{port}: the port is taken, or the address is not "
            f"one of this machine's ({str(exc).split(';')[0]})",
            "--port",
        ) from None
    return server


# --- the journal file ----------------------------------------------------------------------


def _open_journal(path: Path, option: str) -> JournalStorage:
    def error(message: str) -> SpecError:
        return SpecError(message, path=(option,), file=str(path))

    if path.is_dir():
        raise error("is a directory; a journal storage is a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot create its folder {path.parent} ({exc.strerror or exc})") from None
    lock = JournalFileSymlinkLock(str(path))
    try:
        with held_signals():
            _repair_journal(path, option, lock)
        return _Journal(_WholeAppends(str(path), lock_obj=lock))
    except OSError as exc:
        raise error(f"cannot open the journal ({exc.strerror or exc})") from None


class _Journal(JournalStorage):
    """Optuna's journal storage, whose view of the file a stop signal cannot tear.

    NOTE: each look at the study replays the records appended since the last one, and Optuna
    counts a record as read before it applies it: a Ctrl-C in between would leave this
    process one record short for good (trial numbers shifted, a requeue failing the wrong
    trial). ``_sync_with_backend`` is Optuna's private replay step;
    ``tests/faults/test_interrupt.py`` fails if it is no longer the one every look takes.
    """

    def _sync_with_backend(self) -> None:
        with held_signals():
            super()._sync_with_backend()


class _WholeAppends(JournalFileBackend):
    """Optuna's journal file, whose appends a stop signal cannot cut short.

    NOTE: a Ctrl-C that lands between taking the lock and writing would leave the lock file
    behind (every worker then waits Optuna's 30 s grace period) or the record unwritten;
    since Ctrl-C reaches every worker at once, one is often waiting for the lock just then.
    The signal takes effect once the record is written and the lock released.
    """

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        with held_signals():
            super().append_logs(logs)


@dataclass(frozen=True)
class _Tail:
    """The last line of a journal file."""

    offset: int  # where it starts in the file, bytes
    number: int  # its line number, from 1
    text: bytes  # without its line end
    ended: bool  # whether a line end follows it


def _is_record(line: bytes) -> bool:
    try:
        record = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
        return False
    return isinstance(record, dict) and "op_code" in record


def _read_tail(path: Path, offset: int, number: int, option: str) -> _Tail | None:
    """The last line of ``path`` from byte ``offset`` (line ``number``) on, once every line
    before it is checked to be a journal record; None when nothing follows ``offset``."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    if not data:
        return None
    lines = data.split(b"\n")
    ended = lines[-1] == b""
    if ended:
        lines.pop()
    for line in lines[:-1]:
        if not _is_record(line):
            raise SpecError(
                f"line {number} is not an Optuna journal record: the file is damaged before "
                "its last line (or is no journal), which harness cannot repair",
                path=(option,),
                location=Location(str(path), number, 1),
            )
        offset += len(line) + 1
        number += 1
    return _Tail(offset, number, lines[-1], ended)


def _repair_journal(path: Path, option: str, lock: JournalFileSymlinkLock) -> None:
    """Cut a torn last record off the journal at ``path`` (keeping its bytes beside it), or
    give a complete last record its missing line end; one warning line on stderr for each.

    Raises:
        SpecError: a line before the last is no journal record, or the only line does not
            start like one (the file is no journal).
    """
    if not path.exists():
        return
    try:
        tail = _read_tail(path, 0, 1, option)
        if tail is None or (tail.ended and _is_record(tail.text)):
            return  # NOTE: the common case, read without the lock
        offset, number = tail.offset, tail.number
    except SpecError:
        # NOTE: seen without the lock, a damaged line could be an append in progress (NFS
        # may show its bytes out of order); only a look under the lock decides.
        offset, number = 0, 1
    # A torn tail, or one that a live worker is appending at this moment: look again under
    # the lock that appends take, from the start of that tail on.
    lock.acquire()
    try:
        tail = _read_tail(path, offset, number, option)
        if tail is None or (tail.ended and _is_record(tail.text)):
            return
        where = f"{path}:{tail.number}"
        if _is_record(tail.text):
            with open(path, "ab") as f:
                f.write(b"\n")
                os.fsync(f.fileno())
            warn(f"{where}: the last journal record had no line end; added one")
            return
        start = tail.text.rstrip(b"\0")[: len(RECORD_START)]  # NOTE: a crash may leave NULs
        if tail.offset == 0 and not RECORD_START.startswith(start):
            raise SpecError(
                "line 1 is not an Optuna journal record (the file is no journal)",
                path=(option,),
                location=Location(str(path), 1, 1),
            )
        kept = _keep_torn(path, tail)
        os.truncate(path, tail.offset)
        warn(
            f"{where}: the last journal record was torn (a worker killed or a disk full while "
            f"writing it); dropped its {len(tail.text) + tail.ended} bytes, kept in {kept}; "
            "the study resumes from the record before it"
        )
    finally:
        lock.release()


def _keep_torn(path: Path, tail: _Tail) -> Path:
    """Write the torn record beside the journal (``journal.log.torn-<unix time>``)."""
    stamp = int(time.time())
    kept = path.with_name(f"{path.name}.torn-{stamp}")
    n = 1
    while kept.exists():
        kept, n = path.with_name(f"{path.name}.torn-{stamp}-{n}"), n + 1
    with open(kept, "xb") as f:
        f.write(tail.text + (b"\n" if tail.ended else b""))
        os.fsync(f.fileno())
    return kept


# --- dead workers --------------------------------------------------------------------------


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


def _why_dead(trial: FrozenTrial, *, host: str, grace: int) -> str | None:
    """Why running ``trial`` is known dead (the reason its row gets), or None."""
    owner = str(trial.system_attrs.get(WORKER_ATTR, ""))
    owner_host, _, pid = owner.rpartition(":")
    if not owner:
        started = trial.datetime_start or datetime.datetime.now()
        if (datetime.datetime.now() - started).total_seconds() < ASK_SECONDS:
            return None
        return "interrupted (worker unknown died); re-run"
    if owner_host == host and pid.isdigit():
        return None if _alive(int(pid)) else f"interrupted (worker {owner} died); re-run"
    beat = trial.system_attrs.get(HEARTBEAT_ATTR)
    if not isinstance(beat, int | float):
        return None  # no harness heartbeat: Optuna's (RDB) or nobody's to judge
    # NOTE: a retry made by Optuna's callback copies the old trial's system attributes, the
    # old beat among them; its start is then the later sign of life.
    start = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
    silent = time.time() - max(float(beat), start)
    if silent <= grace:
        return None
    return f"interrupted (worker {owner} silent for {silent:.0f} s); re-run"


def recover_interrupted(study: optuna.Study) -> list[int]:
    """Fail the running trials of dead workers and enqueue each again.

    Dead is decided as the module docstring says: the process check on this host, the
    harness heartbeat for other hosts, and Optuna's heartbeat in an RDB storage (Optuna's
    retry callback enqueues those). Returns the numbers of the trials recovered here through
    the process check or the harness heartbeat.
    """
    host = socket.gethostname()
    grace = _seconds("HARNESS_GRACE_SECONDS", GRACE_SECONDS)
    recovered = []
    # NOTE: our checks first: a dead worker on this host is known at once, and its trial is
    # marked interrupted; Optuna's stale-heartbeat sweep (which marks nothing) then takes
    # only what they cannot judge. The other order raced under load (a survivor busy for
    # longer than the grace let Optuna's sweep take a trial our process check knew).
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = _why_dead(trial, host=host, grace=grace)
        if reason is not None and requeue(study, trial, reason):
            recovered.append(trial.number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # RDB storages: Optuna's heartbeats
    return recovered


class Heartbeat:
    """Beats a heartbeat for a trial while the block runs; the beating thread stops when the
    block ends.

    An RDB storage records Optuna's heartbeat (``study.optimize`` does this itself; an
    ask/tell loop has to); any other storage gets the :data:`HEARTBEAT_ATTR` system
    attribute. The first beat is recorded on entering, the next every heartbeat interval.
    """

    def __init__(self, study: optuna.Study, trial: optuna.Trial) -> None:
        storage = study._storage  # NOTE: Optuna exposes no public getter for it
        self._storage = storage
        self._optuna = is_heartbeat_enabled(storage)
        if isinstance(storage, BaseHeartbeat) and self._optuna:
            self._interval = float(storage.get_heartbeat_interval() or HEARTBEAT_SECONDS)
        else:
            self._interval = float(_seconds("HARNESS_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS))
        self._trial_id = trial._trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name="harness-heartbeat")

    def _record(self) -> bool:
        """One beat; False once the trial is finished (another worker failed it)."""
        try:
            if self._optuna:
                assert isinstance(self._storage, BaseHeartbeat)
                self._storage.record_heartbeat(self._trial_id)
            else:
                beat = round(time.time(), 3)
                self._storage.set_trial_system_attr(self._trial_id, HEARTBEAT_ATTR, beat)
        except UpdateFinishedTrialError:
            return False
        except Exception:
            # NOTE: a storage that fails for a moment (a proxy restarting, NFS) must not end
            # the trial; the next beat tries again, and a long silence is what the grace
            # period is for.
            pass
        return True

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            if not self._record():
                return

    def __enter__(self) -> Heartbeat:
        if self._record():
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
