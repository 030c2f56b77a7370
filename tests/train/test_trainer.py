"""The trainer's contract: results, files, resume, determinism, callbacks, NaN, options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from _fast import CONFIG, DATA, FIDELITY, config, fidelity

import harness.train._epoch as epoch_module
from harness.errors import HarnessError, SpecError
from harness.train import TrainResult, load_checkpoint, train
from harness.train.checkpoint import CheckpointError

ROW_KEYS = {"epoch", "train_loss", "lr", "top1", "top5", "seconds"}


def _train(out: Path | None = None, **kwargs: Any) -> TrainResult:
    kwargs.setdefault("config", CONFIG)
    kwargs.setdefault("fidelity", FIDELITY)
    return train("tiny_c2d", DATA, out_dir=out, **kwargs)


def test_result_and_files(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = []
    result = _train(tmp_path, fidelity=fidelity(epochs=2), callback=rows.append)
    assert result.status == "complete" and result.reason == ""
    assert 0 <= result.top1 <= result.top5 <= 1 and 0 <= result.mean_class_acc <= 1
    assert result.epochs == 2 and len(result.history) == 2 and rows == result.history
    assert set(rows[0]) >= ROW_KEYS and [r["epoch"] for r in rows] == [1, 2]
    assert len(result.spec_hash) == 64 and result.train_seconds > 0
    assert len(result.per_class_acc) == len(result.classes) == 8
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == result.history
    assert json.loads((tmp_path / "result.json").read_text())["top1"] == result.top1
    checkpoint = torch.load(result.checkpoint, weights_only=True)  # type: ignore[arg-type]
    assert checkpoint["epoch"] == 2 and checkpoint["spec_hash"] == result.spec_hash


def test_same_seed_same_run_and_another_seed_another(tmp_path: Path) -> None:
    first, second = _train(), _train()
    assert first.weights_digest == second.weights_digest
    assert first.history[0]["train_loss"] == second.history[0]["train_loss"]
    assert _train(config=config(seed=1)).weights_digest != first.weights_digest


def test_resume_continues_after_the_last_epoch(tmp_path: Path) -> None:
    one = _train(tmp_path)
    rows: list[dict[str, Any]] = []
    two = _train(tmp_path, fidelity=fidelity(epochs=2), callback=rows.append)
    assert two.epochs == 2 and two.history[0] == one.history[0]
    assert [r["epoch"] for r in rows] == [2]  # epoch 1 was not trained again
    again = _train(tmp_path, fidelity=fidelity(epochs=2))
    assert again.history == two.history and again.weights_digest == two.weights_digest
    # One epoch of warm-up makes epoch 1 the same under a 1- or 2-epoch schedule, so
    # resuming and extending is bit-exact with training two epochs at once.
    fresh = _train(tmp_path, fidelity=fidelity(epochs=2), resume=False)
    assert fresh.weights_digest == two.weights_digest and fresh.history == [
        {
            **row,
            "seconds": fresh.history[i]["seconds"],
            "eval_seconds": fresh.history[i]["eval_seconds"],
            "clips_per_second": fresh.history[i]["clips_per_second"],
        }
        for i, row in enumerate(two.history)
    ]


def test_resume_refuses_a_different_run(tmp_path: Path) -> None:
    _train(tmp_path)
    with pytest.raises(HarnessError, match="checkpoint of a different run"):
        _train(tmp_path, config=config(lr=0.5))


def test_a_foreign_checkpoint_is_refused_or_set_aside_never_overwritten(tmp_path: Path) -> None:
    torch.save({"weights": torch.ones(2)}, tmp_path / "last.pt")
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(CheckpointError, match="not a checkpoint harness wrote"):
        _train(tmp_path)
    assert (tmp_path / "last.pt").read_bytes() == before
    assert _train(tmp_path, resume="replace").status == "complete"
    (aside,) = tmp_path.glob("last.pt.other-*")
    assert aside.read_bytes() == before


def test_callback_error_propagates_after_the_checkpoint(tmp_path: Path) -> None:
    class Pruned(Exception):
        pass

    def prune(row: dict[str, Any]) -> None:
        raise Pruned(row["epoch"])

    with pytest.raises(Pruned):
        _train(tmp_path, fidelity=fidelity(epochs=3), callback=prune)
    saved = load_checkpoint(tmp_path / "last.pt")
    assert saved is not None and saved["epoch"] == 1


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path, monkeypatch) -> None:
    real = epoch_module.compute_loss

    def nan_in_epoch_2(run: Any, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        loss = real(run, logits, label)
        return loss * float("nan") if run.epoch == 1 else loss

    monkeypatch.setattr(epoch_module, "compute_loss", nan_in_epoch_2)
    result = _train(tmp_path, fidelity=fidelity(epochs=3))
    assert result.status == "nan" and "loss became nan in epoch 2" in result.reason
    assert result.epochs == 1 and len(result.history) == 1
    saved = load_checkpoint(tmp_path / "last.pt")
    assert result.checkpoint and saved is not None and saved["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in saved["model"].values())


def test_exploding_learning_rate_is_reported_not_raised() -> None:
    result = _train(
        config=config(optimizer="sgd", lr=1e8, warmup_epochs=0), fidelity=fidelity(epochs=2)
    )
    assert result.status == "nan" and "lower the learning rate" in result.reason
    assert result.checkpoint is None
    assert result.train_seconds > 0  # the epoch that diverged is counted


def test_subset_grad_accum_multi_view_and_precise_bn(tmp_path: Path) -> None:
    result = _train(
        tmp_path,
        config=config(grad_accum=2, views=(3, 1), precise_bn=True, optimizer="sgd", lr=0.05),
        fidelity=fidelity(subset=0.5, frames=2, size=24),
    )
    assert result.status == "complete"
    assert result.history[0]["clips"] == 16  # half of 32, in two batches of 8
    saved = load_checkpoint(tmp_path / "last.pt")
    assert saved is not None and saved["step"] == 1  # two batches, one update
    assert 0 <= result.top1 <= 1 and 0 <= result.top1_single_view <= 1


def test_bad_specs_are_spec_errors() -> None:
    with pytest.raises(SpecError, match="unknown synthetic size"):
        train("tiny_c2d", "synthetic:huge", config=CONFIG)
    with pytest.raises(SpecError, match="neither a zoo name nor a YAML file"):
        train("tiny_c2dd", DATA, config=CONFIG)


def _spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Record the logits' dtype, whether clips and weights were channels-last, the model."""
    import harness.train._run as run_module

    seen: dict[str, Any] = {"logits": set(), "clips_last": set()}
    loss, to_device, create = (
        epoch_module.compute_loss,
        epoch_module.to_device,
        run_module._create_model,
    )

    def spy_loss(run: Any, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        seen["logits"].add(logits.dtype)
        return loss(run, logits, label)

    def spy_to_device(clip: Any, device: torch.device, channels_last: bool) -> Any:
        out = to_device(clip, device, channels_last)
        seen["clips_last"].add(out.is_contiguous(memory_format=torch.channels_last_3d))
        return out

    def spy_create(*args: Any, **kwargs: Any) -> Any:
        seen["model"], net = create(*args, **kwargs)
        return seen["model"], net

    monkeypatch.setattr(epoch_module, "compute_loss", spy_loss)
    monkeypatch.setattr(epoch_module, "to_device", spy_to_device)
    monkeypatch.setattr(run_module, "_create_model", spy_create)
    return seen


def _weights_last(model: torch.nn.Module) -> bool:
    weights = [p for p in model.parameters() if p.dim() == 5 and p.shape[1] > 1]
    return bool(weights) and all(
        p.is_contiguous(memory_format=torch.channels_last_3d) for p in weights
    )


@pytest.mark.parametrize(
    ("precision", "channels_last"), [("bf16", False), ("fp32", True), ("bf16", True)]
)
def test_bf16_autocast_and_channels_last_run_on_cpu(
    monkeypatch: pytest.MonkeyPatch, precision: str, channels_last: bool
) -> None:
    """One epoch on CPU really runs under bf16 autocast / in channels_last_3d."""
    seen = _spy(monkeypatch)
    result = _train(config=config(precision=precision, channels_last=channels_last))
    assert result.status == "complete" and 0 <= result.top1 <= 1
    assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in result.history)
    bf16 = precision == "bf16"
    assert seen["logits"] == {torch.bfloat16 if bf16 else torch.float32}
    assert seen["clips_last"] == {channels_last}
    assert _weights_last(seen["model"]) == channels_last
    if bf16:  # autocast changed the arithmetic, not only the logits' type
        assert result.weights_digest != _train().weights_digest


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["auto", "fp16"])
def test_mixed_precision_and_channels_last_on_cuda(
    monkeypatch: pytest.MonkeyPatch, precision: str
) -> None:
    """On a GPU the defaults are bf16 and channels_last_3d; fp16 runs with a loss scaler."""
    seen = _spy(monkeypatch)
    result = _train(config=config(device="cuda", precision=precision))
    assert result.status == "complete"
    assert seen["logits"] == {torch.bfloat16 if precision == "auto" else torch.float16}
    assert seen["clips_last"] == {True} and _weights_last(seen["model"])


def test_the_clip_comes_from_the_realised_spec() -> None:
    """X3D's frame-rate and resolution factors reach the data through the realised clip."""
    from harness.data import load_data_spec
    from harness.spec import load_spec, realise
    from harness.train._run import _clip

    data = load_data_spec("synthetic:tiny")
    spec = load_spec("x3d_m")
    assert (
        _clip(spec, FIDELITY.model_copy(update={"frames": None, "size": None}), data)
        == realise(spec).clip
    )
    faster = load_spec("x3d_m", expansion__stride=2.0, expansion__size=0.5)
    clip = _clip(faster, fidelity(frames=None, size=None), data)
    assert clip.stride == max(1, round(realise(spec).clip.stride / 2))
    assert clip.size == round(realise(spec).clip.size * 0.5)
    assert _clip(spec, fidelity(frames=3, size=40), data).model_dump() == {
        **realise(spec).clip.model_dump(),
        "frames": 3,
        "size": 40,
    }
