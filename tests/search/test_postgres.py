"""Many workers on a real PostgreSQL server: every trial lands exactly once.

Needs HARNESS_TEST_POSTGRES_URL (scripts/test.sh starts a throwaway server and sets it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest

from harness.search import evaluate_candidates, load_space

URL = os.environ.get("HARNESS_TEST_POSTGRES_URL")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not URL, reason="HARNESS_TEST_POSTGRES_URL is not set"),
]


def test_three_workers_each_candidate_once(tiny_space, tmp_path: Path) -> None:
    space = load_space(tiny_space("pg_candidates", budget=1e-6))
    study = f"pg-{uuid.uuid4().hex[:8]}"
    # NOTE: enough candidates that no worker finishes them all before the others have
    # started (each is rejected by the pre-check in milliseconds).
    widths = list(range(8, 8 * 25, 8))
    candidates = [{"stages.1.width": w, "stages.1.block.type": "r2plus1d"} for w in widths]
    result = evaluate_candidates(
        space, candidates, study=study, storage=URL, results_dir=tmp_path, workers=3
    )
    df = result.table
    assert df["trial"].is_unique and len(df) == len(candidates)
    assert sorted(df["param.stages.1.width"].astype(int)) == widths
    assert (df["state"] == "infeasible").all()
    hosts = optuna.load_study(study_name=study, storage=URL).get_trials()
    assert len({t.system_attrs.get("worker") for t in hosts}) >= 2  # really several workers


def test_search_command_three_workers(tiny_space, tmp_path: Path) -> None:
    space_file = tiny_space("pg_search", budget=1e-6)
    study = f"pg-{uuid.uuid4().hex[:8]}"
    command = [
        sys.executable, "-m", "harness", "search", str(space_file), "--trials", "6",
        "--workers", "3", "--storage", URL, "--study", study, "--results", str(tmp_path),
        "--json", "--draws", "0",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    trials = optuna.load_study(study_name=study, storage=URL).get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    # --trials is reached; racing workers may each start one more, never lose one
    assert 6 <= out["n_infeasible"] == len(trials) <= 6 + 2
