"""Many workers through Optuna's gRPC storage proxy (``harness storage serve``), with real
processes: a proxy over SQLite (or PostgreSQL, with HARNESS_TEST_POSTGRES_URL) and searches
that point at it with ``--storage grpc://HOST:PORT``."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from harness.cli import main
from harness.errors import SpecError
from harness.search._storage import (
    HEARTBEAT_ATTR,
    WORKER_ATTR,
    open_storage,
    recover_interrupted,
)

POSTGRES = os.environ.get("HARNESS_TEST_POSTGRES_URL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(url: str, port: int) -> tuple[subprocess.Popen[str], str]:
    """A ``harness storage serve`` process and the first line it printed."""
    command = [sys.executable, "-m", "harness", "storage", "serve", url, "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=60):
            proc.kill()
            pytest.fail("harness storage serve printed nothing in 60 s")
    return proc, proc.stdout.readline()


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


@pytest.fixture(scope="module")
def sqlite_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(database URL, grpc:// URL) of a proxy over a fresh SQLite file."""
    url = f"sqlite:///{tmp_path_factory.mktemp('proxy') / 'db.sqlite'}"
    port = _free_port()
    proc, line = _serve(url, port)
    assert f"listening on 127.0.0.1:{port}" in line, proc.stderr.read() if proc.stderr else ""
    yield url, f"grpc://127.0.0.1:{port}"
    code, err = _stop(proc)
    assert code == 0 and "storage proxy stopped" in err and "Traceback" not in err


@pytest.fixture
def proxy(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_proxy")
        return
    assert POSTGRES is not None
    port = _free_port()
    proc, line = _serve(POSTGRES, port)
    assert "listening on" in line
    yield POSTGRES, f"grpc://127.0.0.1:{port}"
    assert _stop(proc)[0] == 0


BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not POSTGRES, reason="HARNESS_TEST_POSTGRES_URL is not set"),
        ],
    ),
]


@pytest.mark.parametrize("proxy", BACKENDS, indirect=True)
def test_three_searches_share_one_study_through_the_proxy(
    proxy: tuple[str, str], tiny_space, tmp_path: Path
) -> None:
    database, grpc_url = proxy
    space = tiny_space("grpc_search", budget=1e-6)
    study = f"grpc-{uuid.uuid4().hex[:8]}"
    # NOTE: --trials is what the study reaches, shared by the three; 24 keeps the first
    # process to start from finishing them all before the others have imported torch.
    command = [
        sys.executable, "-m", "harness", "search", str(space), "--storage", grpc_url,
        "--study", study, "--trials", "24", "--json", "--draws", "0",
    ]  # fmt: skip
    procs = [
        subprocess.Popen(
            [*command, "--results", str(tmp_path / f"r{i}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert json.loads(out)["study"] == study
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name=study, storage=open_storage(database, tmp_path, study))
    numbers = [t.number for t in trials.get_trials()]
    assert sorted(numbers) == list(range(len(numbers)))  # each number once
    finished = [t for t in trials.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) >= 24
    assert len({t.system_attrs[WORKER_ATTR] for t in finished}) >= 2  # really several
    assert all(HEARTBEAT_ATTR in t.system_attrs for t in finished)  # beat through the proxy


def test_a_silent_trial_is_requeued_through_the_proxy(
    sqlite_proxy: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, grpc_url = sqlite_proxy
    monkeypatch.setenv("HARNESS_GRACE_SECONDS", "1")
    storage = open_storage(grpc_url, tmp_path, "unused")
    assert isinstance(storage, optuna.storages.GrpcStorageProxy)
    study = optuna.create_study(storage=storage, study_name=f"hb-{uuid.uuid4().hex[:8]}")
    dead, alive = study.ask(), study.ask()
    for trial in (dead, alive):
        trial.suggest_int("x", 0, 9)
        storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, "elsewhere:4242")
        storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_ATTR, time.time())
    time.sleep(1.5)  # past the grace period; only `alive` beats again
    storage.set_trial_system_attr(alive._trial_id, HEARTBEAT_ATTR, time.time())
    assert recover_interrupted(study) == [dead.number]
    assert recover_interrupted(study) == []  # never twice
    trials = study.get_trials()
    assert trials[dead.number].state == optuna.trial.TrialState.FAIL
    assert trials[dead.number].user_attrs["interrupted"] is True
    assert trials[alive.number].state == optuna.trial.TrialState.RUNNING
    waiting = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].user_attrs["retry_of"] == dead.number


def test_an_unreachable_proxy_is_one_line(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(SpecError) as error:
        open_storage(f"grpc://127.0.0.1:{_free_port()}", tmp_path, "s")
    assert time.monotonic() - started < 10
    message = str(error.value)
    assert message.startswith("<command line>: --storage: no storage proxy answers at grpc://")
    assert "harness storage serve" in message and "\n" not in message


@pytest.mark.parametrize(
    "url", ["grpc://", "grpc://host", "grpc://host:port", "grpc://host:0", "grpc://h:1/db"]
)
def test_a_malformed_proxy_url_is_one_line(url: str, tmp_path: Path) -> None:
    with pytest.raises(SpecError) as error:
        open_storage(url, tmp_path, "s")
    assert str(error.value) == (
        f"<command line>: --storage: a storage proxy is grpc://HOST:PORT, got '{url}'"
    )


@pytest.mark.parametrize("url", ["results/s/journal.log", "journal:x", "grpc://h:1", "db"])
def test_serve_refuses_what_is_no_database(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["storage", "serve", url])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1
    assert "URL: the storage proxy serves a database URL" in err


def test_serve_on_a_busy_port_is_one_line(sqlite_proxy: tuple[str, str], tmp_path: Path) -> None:
    port = sqlite_proxy[1].rpartition(":")[2]
    command = [
        sys.executable, "-m", "harness", "storage", "serve",
        f"sqlite:///{tmp_path / 'other.sqlite'}", "--port", port,
    ]  # fmt: skip
    # NOTE: grpc binds with SO_REUSEPORT unless told not to: a second proxy would start
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"harness: <command line>: --port: cannot listen on 127.0.0.1:{port}: the port is taken"
    )


def test_serve_stops_on_ctrl_c_with_status_0(tmp_path: Path) -> None:
    port = _free_port()
    proc, line = _serve(f"sqlite:///{tmp_path / 'db.sqlite'}", port)
    assert line.strip() == (
        f"storage proxy listening on 127.0.0.1:{port}; workers: --storage grpc://127.0.0.1:{port}"
    )
    code, err = _stop(proc, signal.SIGINT)
    assert code == 0 and err.strip().splitlines()[-1] == "storage proxy stopped"
