"""A candidate whose training diverges (NaN) or that does not fit in memory is recorded as a
failed trial with the reason, and the study goes on to finish its other trials."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from _faults import run_harness

from harness.results import load_study_results
from harness.search import evaluate_candidates, load_space

# Without normalisation the tiny network is linear between ReLUs: a huge learning rate
# makes its activations overflow within a few steps, while the batch-normalised candidates
# keep a finite (if useless) loss at the same rate.
NAN_PARAMS = """\
  stem.norm: [batch, none]
  stages.2.width: [32, 64]
tied:
  stages.0.block.norm: stem.norm
  stages.1.block.norm: stem.norm
  stages.2.block.norm: stem.norm
"""


def test_nan_trial_is_failed_and_the_study_goes_on(fault_space, tmp_path: Path) -> None:
    space = load_space(
        fault_space(
            "diverges",
            params=NAN_PARAMS,
            train="{batch_size: 16, num_workers: 0, lr: 1000.0, warmup_epochs: 0, device: cpu}",
        )
    )
    candidates = [
        {"stem.norm": "none", "stages.2.width": 64},
        {"stem.norm": "batch", "stages.2.width": 64},
        {"stem.norm": "batch", "stages.2.width": 32},
    ]
    result = evaluate_candidates(space, candidates, study="diverges", results_dir=tmp_path)
    df = result.table.set_index("trial").sort_index()
    assert df.loc[0, "state"] == "failed"
    assert "training nan: the training loss became nan" in df.loc[0, "reason"]
    assert (df.loc[[1, 2], "state"] == "complete").all()
    assert df.loc[[1, 2], "top1"].notna().all()
    assert result.to_json()["n_failed"] == 1 and result.to_json()["n_complete"] == 2


# Runs ``harness`` with its address space capped a few GB above what the imports took, so a
# candidate whose weights need far more truly fails to allocate, whatever the machine.
CAPPED = """\
import resource, sys
import harness.cli, harness.search, torch  # noqa: F401 -- before the cap
with open("/proc/self/status") as f:
    size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (size + 3 * 2**30, resource.RLIM_INFINITY))
harness.cli.main(sys.argv[1:])
"""

# 16384 channels: stage 2's second 3x3 convolution alone holds 2.4 G weights (9.7 GB).
OOM_PARAMS = """\
  stages.2.width: [32, 16384, 64]
"""


def test_out_of_memory_trial_is_failed_and_the_study_goes_on(fault_space, tmp_path: Path) -> None:
    space_file = fault_space(
        "too_big",
        budget=1e9,  # no budget stops it: it reaches the real allocation
        params=OOM_PARAMS,
        sampler="grid",
        train="{batch_size: 16, num_workers: 0, device: cpu}",
    )
    # NOTE: seed 2 makes the grid try the huge candidate second, between two that train
    command = [sys.executable, "-c", CAPPED, "search", str(space_file), "--trials", "3"]
    command += ["--seed", "2"]
    done = run_harness([*command, "--results", str(tmp_path), "--json"])
    assert done.returncode == 0, done.stderr
    df = load_study_results(tmp_path / "too_big")
    assert len(df) == 3 and df["trial"].is_unique
    width = pd.to_numeric(df["param.stages.2.width"])
    big = df[width == 16384].iloc[0]
    assert big["state"] == "failed"
    assert big["reason"].startswith("out of memory: "), big["reason"]
    assert big["train_seconds"] == 0  # it never started training
    assert (df.loc[width != 16384, "state"] == "complete").all()
    assert big["trial"] < df["trial"].max()  # a trial after it trained
