"""Activation checkpointing in a search: a knob of the space, and a retry over a memory budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.search import evaluate_candidates, load_space

SPACE = """\
name: {name}
base: tiny_c2d
data: synthetic:ci
objectives: {{top1: maximize, train_memory_mb: minimize}}
budgets: {{train_memory_mb: {budget}}}
fidelity: {{epochs: 1, subset: 0.1, frames: 4, size: 16}}
train: {{batch_size: 16, num_workers: 0}}
sampler: random
retry_with_checkpointing: {retry}
params:
  stages.1.width: [32, 48]
{knob}"""
KNOB = "  activation_checkpoint: [false, true]\n"


def _space(tmp_path: Path, name: str, budget: float, *, retry: bool = False, knob: bool = False):
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        SPACE.format(name=name, budget=budget, retry=str(retry).lower(), knob=KNOB if knob else "")
    )
    return load_space(path)


@pytest.fixture(scope="module")
def memory(tmp_path_factory: pytest.TempPathFactory) -> tuple[float, float]:
    """The candidate's training-step memory (MiB) without and with checkpointing, as the
    search measures it (nothing trains: every budget is missed)."""
    tmp = tmp_path_factory.mktemp("memory")
    space = _space(tmp, "measure", 1e-9, knob=True)
    candidates = [
        {"stages.1.width": 48, "activation_checkpoint": False},
        {"stages.1.width": 48, "activation_checkpoint": True},
    ]
    table = evaluate_candidates(space, candidates, study="m", results_dir=tmp).table
    plain, checked = table.sort_values("trial")["train_memory_mb"]
    assert checked < plain
    return float(plain), float(checked)


def test_a_search_without_the_knob_rejects_what_checkpointing_would_fit(
    tmp_path: Path, memory: tuple[float, float]
) -> None:
    budget = sum(memory) / 2
    space = _space(tmp_path, "plain", budget)
    row = evaluate_candidates(space, [{"stages.1.width": 48}], study="p", results_dir=tmp_path)
    row = row.table.iloc[0]
    assert row["state"] == "infeasible" and row["violations"] == f"train_memory_mb<={budget:g}"
    assert row["activation_checkpoint"] == "" and not row["checkpoint_retried"]


def test_the_knob_finds_the_checkpointed_candidate(tmp_path: Path, memory: tuple[float, float]):
    space = _space(tmp_path, "knob", sum(memory) / 2, knob=True)
    candidates = [
        {"stages.1.width": 48, "activation_checkpoint": False},
        {"stages.1.width": 48, "activation_checkpoint": True},
    ]
    table = evaluate_candidates(space, candidates, study="k", results_dir=tmp_path).table
    plain, checked = (row for _, row in table.sort_values("trial").iterrows())
    assert plain["state"] == "infeasible"
    assert checked["state"] == "complete" and checked["feasible"]
    assert checked["activation_checkpoint"] == "0,1,2"
    assert checked["train_memory_mb"] == pytest.approx(memory[1])
    assert "activation_checkpoint: true" in checked["spec_yaml"]


def test_the_retry_trains_with_checkpointing_and_records_it(
    tmp_path: Path, memory: tuple[float, float]
) -> None:
    space = _space(tmp_path, "retry", sum(memory) / 2, retry=True)
    row = evaluate_candidates(space, [{"stages.1.width": 48}], study="r", results_dir=tmp_path)
    row = row.table.iloc[0]
    assert row["state"] == "complete" and row["feasible"] and row["checkpoint_retried"]
    assert row["activation_checkpoint"] == "0,1,2"
    assert row["train_memory_mb"] == pytest.approx(memory[1])
    assert row["train_gflops"] > 3 * row["gflops"]  # the recomputed forward passes
    assert row["top1"] >= 0


def test_a_retry_that_still_does_not_fit_is_rejected_and_says_so(
    tmp_path: Path, memory: tuple[float, float]
) -> None:
    space = _space(tmp_path, "still", memory[1] / 2, retry=True)
    row = evaluate_candidates(space, [{"stages.1.width": 48}], study="s", results_dir=tmp_path)
    row = row.table.iloc[0]
    assert row["state"] == "infeasible" and row["checkpoint_retried"]
    assert "also over it with activation checkpointing" in row["reason"]
    assert row["train_memory_mb"] == pytest.approx(memory[0])  # the candidate as given
