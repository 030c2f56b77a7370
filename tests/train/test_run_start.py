"""``train(on_start=...)``: what a run found before its first step, and what it took over
from its output folder (continued, shown again, set aside or refused)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _fast import CONFIG, DATA, FIDELITY, fidelity

from harness.errors import HarnessError
from harness.train import RunStart, TrainResult, train


def _train(out: Path | None, starts: list[RunStart], **kwargs: Any) -> TrainResult:
    kwargs.setdefault("config", CONFIG)
    kwargs.setdefault("fidelity", FIDELITY)
    return train("tiny_c2d", DATA, out_dir=out, on_start=starts.append, **kwargs)


def test_the_data_and_clip_before_the_first_step() -> None:
    starts: list[RunStart] = []
    result = _train(None, starts, fidelity=fidelity(subset=0.5))
    (start,) = starts
    assert (start.layout, start.data) == ("synthetic", "the synthetic benchmark (tiny preset)")
    assert (start.classes, start.train_clips, start.val_clips) == (8, 32, 16)
    assert start.train_used == 16  # half of each class
    assert start.clip == "3x4x16x16" and start.spec_hash == result.spec_hash
    assert (start.epochs, start.resumed_epochs, start.checkpoint, start.set_aside) == (
        1, 0, None, ()
    )  # fmt: skip
    assert not start.finished


def test_continued_finished_and_refused(tmp_path: Path) -> None:
    starts: list[RunStart] = []
    first = _train(tmp_path, starts)
    again = _train(tmp_path, starts)  # the same settings: nothing left to train
    assert starts[1].finished and starts[1].resumed_epochs == 1
    assert starts[1].checkpoint == str(tmp_path / "last.pt")
    assert again.history == first.history
    longer = _train(tmp_path, starts, fidelity=fidelity(epochs=2))
    assert starts[2].resumed_epochs == 1 and not starts[2].finished
    assert [row["epoch"] for row in longer.history] == [1, 2]
    # a checkpoint of more epochs than asked is not this run's: never shown as its result
    with pytest.raises(HarnessError, match="trained for 2 epochs, more than the 1 asked for"):
        _train(tmp_path, starts)
    assert len(starts) == 3
    replaced = _train(tmp_path, starts, resume="replace")
    assert replaced.epochs == 1 and starts[3].resumed_epochs == 0
    assert sorted(Path(p).name.split(".other-")[0] for p in starts[3].set_aside) == [
        "last.pt", "metrics.jsonl", "result.json"
    ]  # fmt: skip


def test_starting_afresh_sets_the_earlier_run_aside(tmp_path: Path) -> None:
    starts: list[RunStart] = []
    _train(tmp_path, starts)
    before = (tmp_path / "metrics.jsonl").read_text()
    fresh = _train(tmp_path, starts, resume=False)
    assert fresh.epochs == 1 and starts[1].resumed_epochs == 0
    aside = [Path(p) for p in starts[1].set_aside]
    assert {p.name.split(".other-")[0] for p in aside} == {
        "last.pt",
        "metrics.jsonl",
        "result.json",
    }
    assert all(p.is_file() and p.parent == tmp_path for p in aside)
    (metrics,) = [p for p in aside if p.name.startswith("metrics.jsonl")]
    assert metrics.read_text() == before  # kept, never overwritten


def test_a_checkpointed_run_trains_the_plain_weights_under_another_recipe(tmp_path: Path) -> None:
    from harness.spec import load_spec

    starts: list[RunStart] = []
    plain = _train(tmp_path / "plain", starts)
    spec = load_spec("tiny_c2d", activation_checkpoint=True)
    checked = train(spec, DATA, config=CONFIG, fidelity=FIDELITY, out_dir=tmp_path / "plain",
                    on_start=starts.append, resume="replace")  # fmt: skip
    # The same architecture, and the same weights: recomputation changes no gradient.
    assert checked.spec_hash == plain.spec_hash
    assert checked.weights_digest == plain.weights_digest
    assert checked.history[0]["train_loss"] == plain.history[0]["train_loss"]
    # But another training recipe: the plain run's checkpoint is not continued.
    assert starts[1].resumed_epochs == 0 and starts[1].set_aside
