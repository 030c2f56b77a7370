"""``harness compile`` with costs: memory (--batch) and latency (--latency), as users run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HARNESS = [sys.executable, "-m", "harness"]
SMALL = ("tiny_c2d", "--frames", "4", "--size", "32")


def run(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HARNESS_CACHE_DIR": str(cache)}
    return subprocess.run(
        [*HARNESS, "compile", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_json_gains_memory_and_latency(tmp_path: Path) -> None:
    result = run(*SMALL, "--batch", "2", "--latency", "--threads", "1", "--json", cache=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["train_memory_mb"] > 0
    assert report["train_memory_method"] == "meta_simulation"  # auto: simulated on the CPU
    assert report["train_memory"]["batch"] == 2
    assert report["latency_ms"] > 0 and report["latency_iqr_ms"] >= 0
    assert report["latency_fwd_bwd_ms"] > 0
    assert report["latency_method"] == "cpu_wall_clock"
    assert report["latency"]["threads"] == 1
    assert report["input_shape"] == [3, 4, 32, 32]


def test_costs_are_null_unless_asked(tmp_path: Path) -> None:
    result = run(*SMALL, "--json", cache=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["train_memory_mb"] is None and report["latency_ms"] is None


def test_measured_memory_and_the_cache(tmp_path: Path) -> None:
    args = (*SMALL, "--batch", "2", "--memory", "measure", "--latency", "--threads", "1", "--json")
    first = json.loads(run(*args, cache=tmp_path).stdout)
    assert first["train_memory_method"] == "profiler_cpu_peak"
    second = json.loads(run(*args, cache=tmp_path).stdout)
    # Timings never repeat to the nanosecond: equal figures came from the cache.
    assert second["latency_ms"] == first["latency_ms"]
    assert second["train_memory_mb"] == first["train_memory_mb"]
    fresh = json.loads(run(*args, "--no-cache", cache=tmp_path).stdout)
    assert fresh["latency_ms"] != first["latency_ms"]


def test_table_shows_the_costs(tmp_path: Path) -> None:
    result = run(*SMALL, "--batch", "2", "--latency", "--threads", "1", cache=tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # undo the terminal's line wrapping
    assert "training-step memory (batch 2, cpu, fp32, sgd):" in text
    assert "(method: meta_simulation)" in text
    assert "latency (batch 2, cpu, threads=1, fp32): forward" in text
    assert "(method: cpu_wall_clock)" in text


def test_checkpointing_shows_the_step_with_and_without_it(tmp_path: Path) -> None:
    table = run(*SMALL, "--batch", "4", "--checkpoint", "all", cache=tmp_path)
    assert table.returncode == 0, table.stderr
    text = " ".join(table.stdout.split())
    assert "activation checkpointing (stages 0, 1, 2): training step" in text
    assert "MiB without (0." in text and "training GFLOPs (1." in text
    report = json.loads(run(*SMALL, "--batch", "4", "--checkpoint", "1", "--json",
                            cache=tmp_path).stdout)  # fmt: skip
    assert report["activation_checkpoint"] == [1]
    assert report["train_memory_mb"] < report["plain_train_memory_mb"]
    assert report["train_gflops"] > report["plain_train_gflops"]
    assert report["plain_train_gflops"] == pytest.approx(3 * report["gflops"], rel=1e-12)


CUDA_MISSING = "--device: CUDA was requested but this machine has no CUDA device"
BAD = {
    "batch zero": (("--batch", "0"), "<command line>: --batch: must be at least 1, got 0"),
    "unknown device": (
        ("--batch", "2", "--device", "tpu"),
        "<command line>: --device: unknown device 'tpu'; known: cpu, cuda",
    ),
    "unknown precision": (
        ("--batch", "2", "--precision", "fp8"),
        "<command line>: --precision: unknown precision 'fp8'; known: fp32, bf16, fp16",
    ),
    "unknown optimizer": (
        ("--batch", "2", "--optimizer", "adam"),
        "<command line>: --optimizer: unknown optimizer 'adam'; known: adamw, sgd",
    ),
    "unknown memory method": (
        ("--batch", "2", "--memory", "guess"),
        "<command line>: --memory: unknown method 'guess'; known: auto, measure, estimate",
    ),
    "threads zero": (("--latency", "--threads", "0"), "--threads: must be at least 1, got 0"),
    "checkpoint stage": (
        ("--checkpoint", "0,5"),
        "<command line>: --checkpoint: stage 5 does not exist (stages 0..2)",
    ),
    "checkpoint word": (
        ("--checkpoint", "some"),
        "<command line>: --checkpoint: 'some' is not all, none or stage indices such as 0,2,3",
    ),
}
if not torch.cuda.is_available():
    BAD["cuda memory"] = (("--batch", "2", "--device", "cuda"), CUDA_MISSING)
    BAD["cuda latency"] = (("--latency", "--device", "cuda"), CUDA_MISSING)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_cost_options_are_one_line_and_status_2(tmp_path: Path, case: str) -> None:
    args, expected = BAD[case]
    result = run(*SMALL, *args, cache=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0] == f"harness: {expected}" or expected in lines[0], lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_simulating_a_cuda_step_needs_no_cuda(tmp_path: Path) -> None:
    result = run(
        *SMALL, "--batch", "2", "--device", "cuda", "--memory", "estimate", "--json",
        cache=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["train_memory"]["device"] == "cuda"
    assert report["train_memory_method"] == "meta_simulation"
