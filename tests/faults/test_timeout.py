"""``harness search SPACE --trials N --timeout S`` stops asking for trials after S seconds,
records the trials it ran and exits 0 (issue 6's command-line contract)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from _faults import run_harness, search_command

from harness.results import load_study_results

TIMEOUT = 8.0


def test_timeout_stops_a_long_search(fault_space, tmp_path: Path) -> None:
    # over budget: each candidate is measured and rejected in well under a second
    command = search_command(
        fault_space("timed", budget=1e-6), tmp_path, "--trials", "1000", "--draws", "0"
    )
    start = time.monotonic()
    done = run_harness([*command, "--timeout", str(TIMEOUT)])
    wall = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)

    df = load_study_results(tmp_path / "timed")
    assert 2 <= len(df) < 1000 and df["trial"].is_unique
    assert (df["state"] == "infeasible").all()  # none left running
    counts = ("n_complete", "n_infeasible", "n_pruned", "n_failed")
    assert sum(out[key] for key in counts) == len(df)
    # no trial started after the deadline (start times are whole seconds) ...
    starts = [datetime.fromisoformat(s) for s in df["datetime_start"]]
    assert (max(starts) - min(starts)).total_seconds() <= TIMEOUT + 1
    # ... and the command ended once the last one finished (start-up takes a few seconds)
    assert wall < TIMEOUT + float(df["duration_seconds"].max()) + 60
