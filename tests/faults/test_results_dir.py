"""An unwritable or full results directory: a one-line error before anything trains, and a
disk that fills up mid-study loses no finished trial (they live in the study's storage)."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest
from _faults import load_journal_study, run_harness, search_command, storage_rows, tmpfs
from optuna.trial import TrialState

from harness.results import load_study_results


def _refused(result: subprocess.CompletedProcess[str], directory: Path, words: str) -> None:
    """Exit 2 with one line naming ``directory`` (``{d}`` in ``words``), no traceback."""
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert str(directory) in result.stderr, result.stderr
    assert words.format(d=directory) in result.stderr, result.stderr
    assert result.stdout == ""


def test_results_under_a_file_is_refused(fault_space, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    results = blocker / "results"
    result = run_harness(search_command(fault_space("blocked"), results, "--trials", "2"))
    _refused(result, results, "cannot write to results directory {d} (Not a directory)")


def test_read_only_results_dir_is_refused(fault_space, tmp_path: Path) -> None:
    space = fault_space("read_only")
    if os.geteuid() != 0:  # chmod binds everyone but root
        results = tmp_path / "results"
        results.mkdir(mode=0o500)
        result = run_harness(search_command(space, results, "--trials", "2"))
        _refused(result, results, "cannot write to results directory {d} (Permission denied)")
        assert list(results.iterdir()) == []  # no journal, nothing trained
        return
    with tmpfs("1m", read_only=True) as mount:
        if mount is None:
            pytest.skip("running as root and cannot mount a read-only tmpfs")
        result = run_harness(search_command(space, mount, "--trials", "2"))
        _refused(result, mount, "cannot write to results directory {d} (Read-only file system)")


def test_full_disk_is_refused_before_training(fault_space, tmp_path: Path) -> None:
    space = fault_space("full")
    results = tmp_path / "results"
    # more free space asked for than any disk has: the disk counts as full
    result = run_harness(
        search_command(space, results, "--trials", "2"), env={"HARNESS_MIN_FREE_MB": "1e12"}
    )
    _refused(result, results, "MB free, less than the 1e+12 MB")
    assert not (results / "full").exists()  # no study, no journal, nothing trained
    with tmpfs("1m") as mount:  # a real disk of 1 MB, below the default 50 MB
        if mount is None:
            return
        result = run_harness(search_command(space, mount, "--trials", "2"))
        _refused(result, mount, "MB free, less than the 50 MB")
        assert list(mount.iterdir()) == []


def _fill(directory: Path) -> Path:
    """Write a file until the disk under ``directory`` has no space left."""
    filler = directory / "filler.bin"
    block = b"\0" * 2**20
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(block)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_disk_full_mid_study_keeps_finished_trials(fault_space, tmp_path: Path) -> None:
    name = "filled"
    journal = tmp_path / "journal.log"  # the storage lives apart from the results
    with tmpfs("64m") as results:
        if results is None:
            pytest.skip("cannot mount a tmpfs to fill (needs root)")
        command = search_command(
            fault_space(name), results, "--trials", "2", "--storage", f"journal:{journal}"
        )
        env = {**os.environ, "HARNESS_MIN_FREE_MB": "1"}
        proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 120
        done: dict[int, dict] = {}
        while not done and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            try:
                rows = storage_rows(load_journal_study(results, name, f"journal:{journal}"))
            except (KeyError, ValueError):
                continue
            done = {n: r for n, r in rows.items() if r["state"] == "complete"}
        assert done and proc.poll() is None, "the study ended before the disk could fill"
        filler = _fill(results)
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 2, stderr
        assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
        # NOTE: the checkpoint or the table write fails first, depending on timing
        assert str(results) in stderr, stderr
        assert "No space left on device" in stderr or "MB free" in stderr, stderr
        assert "run the same command again" in stderr, stderr

        study = load_journal_study(results, name, f"journal:{journal}")
        kept = storage_rows(study)
        for number, row in done.items():  # still in the storage, unchanged
            assert kept[number]["state"] == "complete"
            assert kept[number]["top1"] == row["top1"]
        assert not [t for t in study.get_trials() if t.state == TrialState.RUNNING]

        filler.unlink()  # room again: the same command continues and writes the table
        rerun = run_harness(command)
        assert rerun.returncode == 0, rerun.stderr
        df = load_study_results(results / name)
        assert df["trial"].is_unique
        finished = df[~df["reason"].fillna("").str.startswith("interrupted")]
        assert len(finished) == 2 and (finished["state"] == "complete").all()
        for number, row in done.items():
            assert df.set_index("trial").loc[number, "top1"] == row["top1"]
