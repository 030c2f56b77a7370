"""Helpers of the fault tests: commands, storages, mounts."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna

from harness.search._records import trials_frame
from harness.search._storage import open_storage

HARNESS = [sys.executable, "-m", "harness"]

SPACE = """\
name: {name}
base: tiny_c2d
data: synthetic:ci
objectives: {{top1: maximize, gflops: minimize}}
budgets: {{gflops: {budget}}}
fidelity: {{epochs: 1, subset: 0.1, frames: 4, size: 16}}
train: {train}
sampler: {sampler}
params:
{params}
"""

PARAMS = """\
  stages.1.width: {type: int, low: 16, high: 64, step: 16}
  stages.1.block.temporal_kernel: [1, 3]
  stages.2.width: {type: int, low: 32, high: 128, step: 32}
"""


def search_command(space_file: Path, results: Path, *args: str) -> list[str]:
    return [*HARNESS, "search", str(space_file), "--results", str(results), "--json", *args]


def run_harness(
    command: list[str], *, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def load_journal_study(results: Path, name: str, storage: str | None = None) -> optuna.Study:
    """The study as its storage holds it (the journal under ``results`` by default)."""
    return optuna.load_study(study_name=name, storage=open_storage(storage, results, name))


def storage_rows(study: optuna.Study) -> dict[int, dict]:
    """The results rows the storage would export now, by trial number."""
    df = trials_frame(study)
    return {int(r["trial"]): r for r in df.to_dict("records")} if len(df) else {}


@contextlib.contextmanager
def tmpfs(size: str, *, read_only: bool = False) -> Iterator[Path | None]:
    """A fresh tmpfs of ``size`` (``mount -o size=``), or None where mounting is not allowed
    (not root, no CAP_SYS_ADMIN); unmounted at exit."""
    with tempfile.TemporaryDirectory(prefix="harness-tmpfs-") as root:
        options = f"size={size}" + (",ro" if read_only else "")
        mounted = (
            os.geteuid() == 0
            and shutil.which("mount") is not None
            and subprocess.run(
                ["mount", "-t", "tmpfs", "-o", options, "tmpfs", root], capture_output=True
            ).returncode
            == 0
        )
        try:
            yield Path(root) if mounted else None
        finally:
            if mounted:
                subprocess.run(["umount", "-l", root], capture_output=True)
