"""Run ``harness ARGV`` as a real process, without paying for its imports every time.

The corpus runs a few hundred commands. A fresh ``python -m harness`` spends most of its
second or two importing torch and its friends; here a fork server imports them once (and
runs nothing with them, so no thread pool exists to be lost in a fork) and every command is
a process forked from it: its own address space, limit, working folder, environment, file
descriptors 1 and 2 and session, running the same ``main`` the console script runs.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import signal
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Result", "run_cli"]

# What ``harness`` imports on the way to any command's work.
PRELOAD = ["torch", "optuna", "pandas", "pydantic", "harness.cli", "harness.spec", "harness.report"]


@dataclass(frozen=True)
class Result:
    code: int  # exit status; -N for signal N; -1 when it timed out
    stdout: str
    stderr: str
    timed_out: bool


def _child(argv: list[str], env: dict[str, str], cwd: str, out: str, err: str, memory: int) -> None:
    """The forked command: everything a fresh process would have set, then ``main``."""
    os.setsid()
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    sys.argv = ["harness", *argv]
    # NOTE: a process forked from the server inherits its start method; a fresh one on
    # Linux (Python < 3.14) forks its own children (data loader workers).
    multiprocessing.set_start_method("fork", force=True)
    code = 1
    try:
        import torch

        torch.set_num_threads(1)
        from harness.cli import main

        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


_CONTEXT: multiprocessing.context.BaseContext | None = None


def _context() -> multiprocessing.context.BaseContext:
    global _CONTEXT
    if _CONTEXT is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        _CONTEXT = context
    return _CONTEXT


def run_cli(
    argv: list[str], *, env: dict[str, str], cwd: Path, memory: int, timeout: float
) -> Result:
    """``harness ARGV`` in a process forked from the preloaded server (see the docstring)."""
    with tempfile.TemporaryDirectory(prefix="harness-cli-") as tmp:
        out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        process = _context().Process(target=_child, args=(argv, env, str(cwd), out, err, memory))
        process.start()
        process.join(timeout)
        timed_out = process.is_alive()
        if timed_out:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the command and whatever it started
            process.join()
        code = -1 if timed_out else int(process.exitcode or 0)
        read = [
            Path(p).read_bytes().decode(errors="replace") if Path(p).exists() else ""
            for p in (out, err)
        ]
    return Result(code, read[0], read[1], timed_out)
