"""The local worker processes of one search (``harness search --workers N``).

Each worker is a fresh Python process (:func:`main`, given its parent's pid) that reads its
arguments (pickled, from its parent only) on stdin and runs
:func:`harness.search.run.run_worker` until the study is done.

Workers run in a process group of their own. Ctrl-C in a terminal reaches the command
alone, which stops each worker with SIGTERM: a worker that trains queues its trial again
and exits 130; one still starting (importing torch) just ends, without the traceback that
Python prints for a SIGINT in the middle of an import. On Linux a worker is sent SIGTERM
when its parent dies (kill -9), so no orphan trains on alone; its trial runs again on resume.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

__all__ = ["STOP_SECONDS", "main", "run_workers"]

STOP_SECONDS = 60.0  # how long stopped workers get to queue their trials again
_PR_SET_PDEATHSIG = 1  # prctl(2)
_ENTRY = "from harness.search._workers import main; main()"


def run_workers(workers: int, on_poll: Callable[[], None] | None, **kwargs: Any) -> None:
    """Run ``workers`` processes of ``run_worker(**kwargs)``; ``on_poll`` while they run.

    A ``KeyboardInterrupt`` here (the stop signal, see ``_signals``) stops every worker,
    waits up to :data:`STOP_SECONDS` for them to queue their trials again, and re-raises.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(workers):
            procs.append(proc := _start())  # NOTE: kept before its arguments are sent
            _send(proc, {**kwargs, "worker": i, "threads": threads})
        while any(p.poll() is None for p in procs):
            for p in procs:
                _wait(p, 1.0 / workers)
            if on_poll is not None:
                on_poll()
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + STOP_SECONDS
        for p in procs:
            _wait(p, max(0.0, deadline - time.monotonic()))
        raise
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    bad = [p.returncode for p in procs if p.returncode != 0]
    if bad:
        raise HarnessError(f"{len(bad)} worker process(es) failed (exit codes {bad})")


def _start() -> subprocess.Popen[bytes]:
    root = str(Path(__file__).resolve().parents[2])  # where this harness is imported from
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-c", _ENTRY, str(os.getpid()), str(int(_main_thread()))],
        stdin=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": path},
        process_group=0,
    )


def _send(proc: subprocess.Popen[bytes], kwargs: dict[str, Any]) -> None:
    """Write ``kwargs`` to the worker's stdin, and close it."""
    assert proc.stdin is not None
    try:
        proc.stdin.write(pickle.dumps(kwargs))
        proc.stdin.close()
    except BrokenPipeError:
        pass  # it died starting; its exit status says so


def _wait(proc: subprocess.Popen[bytes], seconds: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=seconds)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _die_with_parent(parent: int, *, from_main_thread: bool) -> None:
    """SIGTERM this process when ``parent`` dies (Linux); end now if it has died already.

    NOTE: Linux sends the signal when the *thread* that started the child ends, so only a
    child started from the parent's main thread asks for it.
    """
    if from_main_thread and sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit(130)


def main() -> None:
    """A worker process: ``run_worker`` with the arguments its parent writes on stdin."""
    _die_with_parent(int(sys.argv[1]), from_main_thread=sys.argv[2] == "1")
    try:
        kwargs = pickle.load(sys.stdin.buffer)
    except (EOFError, pickle.UnpicklingError):  # its parent stopped while sending them
        sys.exit(130)
    import torch

    from harness.search._signals import stop_on_signals
    from harness.search.run import run_worker

    torch.set_num_threads(kwargs.pop("threads"))
    with stop_on_signals():
        try:
            run_worker(**kwargs)
        except HarnessError as exc:  # one line, as the command line prints it; no traceback
            sys.stderr.write(f"harness: worker {kwargs['worker']}: {exc}\n")
            sys.exit(2)
        except KeyboardInterrupt:  # its trial is queued again; the parent reports
            sys.exit(130)
