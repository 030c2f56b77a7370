"""Every bad input in the corpus (``_bad_inputs.CASES``) meets the command line's contract.

The contract (README, "Bad input"): exit status 2; exactly one line on stderr, starting with
``harness:`` and naming file, line, column and key path where there is one
(``harness: FILE:LINE:COL: key.path: message``, or ``harness: <command line>: --option:
message``); no traceback; no file of the user's changed or lost; and memory bounded: every
case runs the real command line (``harness.cli.main``, in a process of its own forked from a
server that has imported torch once: ``_cli_runner``) under a 4 GiB address-space limit, so
an attempt to build a 12 GB network is a MemoryError or a kill, not a pass.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
from pathlib import Path

import pytest
from _bad_inputs import CASES, Case
from _cli_runner import run_cli

MEMORY = 4 * 2**30  # address space of one run: far less than the networks some cases name
STATE = ".harness-state"  # the run's caches, under the case folder (not the user's files)


def _snapshot(root: Path) -> dict[str, str]:
    """Digest of every file and link the case wrote (what the user owns)."""
    digests = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != STATE]
        for name in filenames + [d for d in dirnames if os.path.islink(Path(dirpath, d))]:
            path = Path(dirpath, name)
            key = str(path.relative_to(root))
            if path.is_symlink():
                digests[key] = "-> " + os.readlink(path)
            elif path.is_file() and os.access(path, os.R_OK):
                digests[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                digests[key] = "special"
    return digests


def _run(case: Case, tmp_path: Path) -> tuple[int, str, str, list[str]]:
    call = case.setup(tmp_path)
    before = _snapshot(tmp_path)
    env = {
        **os.environ,
        "HARNESS_CACHE_DIR": str(tmp_path / STATE / "cache"),
        "HARNESS_DATA_CACHE": str(tmp_path / STATE / "data"),
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "120",
        **call.env,
    }
    problems = []
    result = run_cli(call.argv, env=env, cwd=tmp_path, memory=MEMORY, timeout=case.timeout)
    code, out, err = result.code, result.stdout, result.stderr
    if result.timed_out:
        problems.append(f"no answer in {case.timeout} s (a hang, or a server that started)")
    after = _snapshot(tmp_path)
    for key, digest in before.items():
        if key not in after:
            problems.append(f"the user's file {key} was removed")
        elif after[key] != digest:
            problems.append(f"the user's file {key} was changed")
    return code, out, err, problems


def _text(data: bytes | str | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data or ""


def _contract(case: Case, code: int, out: str, err: str) -> list[str]:
    """What the run did against the contract; empty when it kept it."""
    problems = []
    if "Traceback" in out + err:
        problems.append("a traceback reached the user")
    if code < 0:
        problems.append(f"killed by {signal.Signals(-code).name}" if code != -1 else "timed out")
    elif code not in case.codes:
        problems.append(f"exit status {code}, not {' or '.join(map(str, case.codes))}")
    if code != 2:
        return problems
    lines = err.splitlines()
    if len(lines) != 1 or not err.endswith("\n"):
        problems.append(f"{len(lines)} lines on stderr, not one")
    first = lines[0] if lines else ""
    if not first.startswith("harness: "):
        problems.append("stderr's first line does not start with 'harness: '")
    if "harness: warning:" in first:
        problems.append("the first line is a warning, not the error")
    if out:
        problems.append("stdout is not empty")
    line = next((x for x in lines if x.startswith("harness: ") and "warning:" not in x), first)
    if case.expect and not re.search(case.expect, line):
        problems.append(f"the error line does not match {case.expect!r}")
    if case.forbid and re.search(case.forbid, line):
        problems.append(f"the error line matches {case.forbid!r} (misleading)")
    if not case.root_ok and ": <root>:" in line:
        problems.append("the error is at '<root>' though the mistake has a key path")
    if "MemoryError" in err or "Killed" in err:
        problems.append("ran out of memory before refusing")
    return problems


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    code, out, err, problems = _run(case, tmp_path)
    problems += _contract(case, code, out, err)
    if case.after is not None and (found := case.after(tmp_path)):
        problems.append(found)
    head = "\n".join(err.splitlines()[:2])[:600]
    assert not problems, f"{'; '.join(problems)}\nexit {code}\nstderr: {head}"
