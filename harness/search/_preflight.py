"""Before a study trains anything: can its results directory take what the study writes?

A study writes checkpoints and the results table under ``--results``; finding out after an
hour of training that the directory is read-only or the disk is full wastes the hour. The
check creates the directory, writes and removes a probe file, and asks for a little free
space (``HARNESS_MIN_FREE_MB``, default 50 MB). The same check tells a trial that failed
because of the disk from one that failed on its own (:func:`results_dir_problem`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

from harness.errors import SpecError

__all__ = [
    "MIN_FREE_MB",
    "check_results_dir",
    "check_study_name",
    "default_study_name",
    "results_dir_problem",
]

MIN_FREE_MB = 50.0  # default; HARNESS_MIN_FREE_MB overrides


def _min_free_mb() -> float:
    text = os.environ.get("HARNESS_MIN_FREE_MB", "").strip()
    if not text:
        return MIN_FREE_MB
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # NOTE: also rejects nan
        raise SpecError(
            f"must be a number of megabytes >= 0, got '{text}'",
            path=("HARNESS_MIN_FREE_MB",),
            file="<environment>",
        )
    return value


def results_dir_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot hold a study's results (created if missing), or None if it can."""
    path = Path(path)
    probe = path / f".harness-probe-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"harness")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
        return f"cannot write to results directory {path} ({exc.strerror or exc})"
    free_mb = shutil.disk_usage(path).free / 2**20
    need_mb = _min_free_mb()
    if free_mb < need_mb:
        return (
            f"results directory {path} has {free_mb:.1f} MB free, less than the {need_mb:g} MB "
            "a study needs (HARNESS_MIN_FREE_MB sets the minimum)"
        )
    return None


def check_results_dir(path: str | Path) -> None:
    """Raise a one-line :class:`SpecError` naming ``path`` when it cannot hold results."""
    problem = results_dir_problem(path)
    if problem is not None:
        raise SpecError(problem, path=("--results",), file="<command line>")


_STUDY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,119}")


def check_study_name(name: str) -> str:
    """``name`` if it is a study name: a folder name under ``--results``, never a path.

    Raises:
        SpecError: slashes, ``..``, a leading dot or dash, spaces, or over 120 characters.
    """
    if not _STUDY_NAME.fullmatch(name):
        shown = name if len(name) <= 60 else f"{name[:57]}..."
        raise SpecError(
            f"'{shown}' is not a study name: letters, digits, '_', '.' and '-' (not first), "
            "at most 120; a study lives in a folder of that name under --results",
            path=("--study",),
            file="<command line>",
        )
    return name


def default_study_name(name: str) -> str:
    """A study name made from a space's or spec's ``name`` (``my space`` -> ``my-space``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).lstrip(".-")[:120]
    return cleaned or "study"
