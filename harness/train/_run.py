"""The state of one training run: model, optimiser, loaders, progress; saved and restored."""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from harness.compiler import build_model
from harness.data import ClipDataset, create_dataset, create_loader, load_data_spec, subset_indices
from harness.data.audio import AudioSettings
from harness.data.dataset import AUDIO_INPUT, locate_data_error
from harness.data.spec import SyntheticDataSpec, VideoDataSpec
from harness.errors import HarnessError, SpecError
from harness.spec import ModelSpec, error_message, load_spec, locate, realise, spec_hash
from harness.spec.audio import is_audio
from harness.spec.schema import ClipSpec
from harness.train.checkpoint import (
    CHECKPOINT_NAME,
    FORMAT,
    OUT_FILES,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from harness.train.config import Fidelity, RunStart, TrainConfig
from harness.train.distributed import DistContext
from harness.train.evaluate import EvalResult, evaluate
from harness.train.optim import create_optimizer

__all__ = [
    "Run",
    "audio_settings",
    "create_run",
    "describe_run",
    "evaluate_run",
    "restore_run",
    "save_run",
    "set_aside_run",
]

DataSpec = SyntheticDataSpec | VideoDataSpec


@dataclass
class Run:
    """Everything one training run holds, and how far it has come."""

    config: TrainConfig
    fidelity: Fidelity
    ctx: DistContext
    data: DataSpec
    spec_hash: str
    identity: str  # what a checkpoint must match to be resumed
    model: nn.Module  # the bare model (what is saved and evaluated)
    net: nn.Module  # what is trained: the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    train_set: ClipDataset
    val_set: ClipDataset
    loaders: dict[str, Any]  # "train", "val" (single view)
    out_dir: Path | None
    epoch: int = 0  # epochs completed
    step: int = 0  # optimiser steps taken
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    clips: int = 0  # training clips seen, all processes together
    last_eval: EvalResult | None = None  # single-view evaluation of the current weights
    checkpoint: Path | None = None  # the last checkpoint written

    @property
    def classes(self) -> int:
        return len(self.train_set.classes)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, -(-len(self.loaders["train"]) // self.config.grad_accum))

    @property
    def total_steps(self) -> int:
        return self.fidelity.epochs * self.steps_per_epoch

    def autocast(self) -> AbstractContextManager[Any]:
        """The mixed-precision context of the configured precision (fp32: none)."""
        precision = self.config.resolved_precision()
        if precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.ctx.device.type, dtype=dtype)


def _channels(data: DataSpec) -> int | None:
    if isinstance(data, VideoDataSpec):
        return {"rgb": 3, "flow": 2}.get(data.modality)  # rgb+flow feeds a mapping
    return 3


def audio_settings(spec: ModelSpec) -> AudioSettings | None:
    """The spectrogram the spec's audio input reads (None: it reads pictures only).

    Raises:
        SpecError: an audio input not named ``audio`` (the data gives it under that name).
    """
    for name, node in (spec.inputs or {}).items():
        if is_audio(node):
            if name != AUDIO_INPUT:
                raise locate(spec, SpecError(
                    f"the data gives the spectrogram as input '{AUDIO_INPUT}'; rename "
                    f"'{name}'", path=("inputs", name)))  # fmt: skip
            fields = node.model_dump(include=set(AudioSettings.model_fields))
            try:
                return AudioSettings(**fields)
            except ValidationError as exc:
                error = exc.errors()[0]
                path = ("inputs", name, *error["loc"])
                raise locate(spec, SpecError(error_message(error), path=path)) from None
    return None


def _clip(spec: ModelSpec, fidelity: Fidelity, data: DataSpec) -> ClipSpec:
    """The spec's (realised) clip with the fidelity's frames and size."""
    clip = realise(spec).clip
    channels = _channels(data)
    if channels is not None and channels != clip.channels:
        raise SpecError(
            f"the data gives {channels}-channel clips but the spec expects {clip.channels}",
            path=("clip", "channels"),
        )
    return clip.model_copy(
        update={"frames": fidelity.frames or clip.frames, "size": fidelity.size or clip.size}
    )


def _identity(spec: ModelSpec, data: DataSpec, config: TrainConfig, fidelity: Fidelity) -> str:
    """What a checkpoint must match to be resumed: the architecture, the data and the
    training recipe (the settings, the fidelity, and activation checkpointing)."""
    settings = config.identity()
    settings.pop("device")  # NOTE: a run may resume on another device
    parts: dict[str, Any] = {
        "spec": spec_hash(spec),
        "data": data.model_dump(mode="json", exclude={"cache_dir"}),
        "config": settings,
        "fidelity": fidelity.model_dump(mode="json", exclude={"epochs"}),
    }
    checkpointed = spec.checkpointed_stages()
    if checkpointed:  # NOTE: only when set, so that earlier runs still resume
        parts["activation_checkpoint"] = sorted(checkpointed)
    return json.dumps(parts, sort_keys=True)


def check_step_fits(
    spec: ModelSpec,
    clip: ClipSpec,
    classes: int,
    config: TrainConfig,
    device: torch.device,
    fidelity: Fidelity | None = None,
) -> None:
    """Refuse, before anything is built, a run whose training step would not fit on
    ``device``: the step the cost room simulates for ``config`` (batch, accumulation,
    optimizer, precision) at ``clip``.

    The error points at the widest stage of the spec when weights, gradients and optimizer
    state take most of the step, else at the clip (activations grow with it and the batch):
    the fidelity's ``--size`` / ``--frames`` where they replace the spec's.
    """
    from harness.costs import CostRequest
    from harness.measure import (
        DoesNotFit,
        check_fits,
        fits,
        format_bytes,
        forward_on_meta,
        precheck,
    )

    request = CostRequest.for_training(config, classes=classes, frames=clip.frames, size=clip.size)
    memory = precheck(
        spec, frames=request.frames, size=request.size, classes=request.classes,
        batch=request.batch, grad_accum=request.grad_accum, device=device.type,
        precision=request.precision, optimizer=request.optimizer,
    ).train_memory  # fmt: skip
    need = memory.peak_bytes or 0
    if fits(need, device):
        return
    weights = memory.param_bytes + memory.grad_bytes + memory.optimizer_bytes
    path: tuple[str | int, ...] = ("clip",)
    if weights > need / 2 and spec.pathways is None:
        ahead = forward_on_meta(spec, frames=clip.frames, size=clip.size, classes=classes)
        counts = {n: sum(p.numel() for p in ahead.model.get_submodule(n).parameters())
                  for n in ahead.model.stage_names()}  # fmt: skip
        widest = max(counts, key=lambda n: counts[n])
        path = tuple(int(part) if part.isdigit() else part for part in widest.split("."))
    shape = f"{clip.channels}x{clip.frames}x{clip.size}x{clip.size}"
    file = None
    if path == ("clip",) and fidelity is not None and (fidelity.size or fidelity.frames):
        path, file = ("--size",) if fidelity.size else ("--frames",), "<command line>"
    try:
        check_fits(
            need,
            f"training {spec.name} on {shape} clips at batch {request.batch} "
            f"(weights, gradients and optimizer state {format_bytes(weights)})",
            device=device,
            hint="lower the batch, the clip's frames or size, or the widths",
            path=path,
            file=file,
        )
    except DoesNotFit as exc:
        located = exc if file else locate(spec, exc)
        raise DoesNotFit(located.message, path=located.path, location=located.location,
                         file=located.file) from None  # fmt: skip


def _create_model(
    spec: ModelSpec, clip: ClipSpec, classes: int, config: TrainConfig, ctx: DistContext
) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(config.seed)
    model: nn.Module = build_model(spec, frames=clip.frames, size=clip.size, classes=classes)
    model = model.to(ctx.device)
    if config.resolved_channels_last():
        model = model.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
    if ctx.world == 1:
        return model, model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return model, nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _loaders(
    train_set: ClipDataset,
    val_set: ClipDataset,
    config: TrainConfig,
    fidelity: Fidelity,
    ctx: DistContext,
) -> dict[str, Any]:
    common: dict[str, Any] = {
        "seed": config.seed,
        "num_workers": config.num_workers,
        "rank": ctx.rank,
        "world": ctx.world,
        "pin_memory": ctx.device.type == "cuda",
    }
    items = subset_indices(train_set.labels, fidelity.subset, config.seed)
    eval_batch = config.eval_batch_size or config.batch_size
    return {
        "train": create_loader(
            train_set, batch_size=config.batch_size, train=True, items=items, **common
        ),
        "val": create_loader(val_set, batch_size=eval_batch, train=False, **common),
    }


def create_run(
    spec: ModelSpec | str | Path,
    data: Any,
    config: TrainConfig,
    fidelity: Fidelity,
    ctx: DistContext,
    out_dir: Path | None,
) -> Run:
    """Load the specs, build data sets, loaders, model and optimiser (nothing trained)."""
    loaded = load_spec(spec)
    data_spec = load_data_spec(data)
    clip = _clip(loaded, fidelity, data_spec)
    audio = audio_settings(loaded)
    try:
        train_set = create_dataset(data_spec, "train", clip=clip, audio=audio)
        val_set = create_dataset(data_spec, "val", clip=clip, audio=audio)
    except SpecError as exc:
        raise locate_data_error(exc, data) from None
    check_step_fits(loaded, clip, len(train_set.classes), config, ctx.device, fidelity)
    model, net = _create_model(loaded, clip, len(train_set.classes), config, ctx)
    hash_ = spec_hash(loaded)
    return Run(
        config=config,
        fidelity=fidelity,
        ctx=ctx,
        data=data_spec,
        spec_hash=hash_,
        identity=_identity(loaded, data_spec, config, fidelity),
        model=model,
        net=net,
        optimizer=create_optimizer(model, config),
        scaler=torch.amp.GradScaler(ctx.device.type, enabled=config.resolved_precision() == "fp16"),
        train_set=train_set,
        val_set=val_set,
        loaders=_loaders(train_set, val_set, config, fidelity, ctx),
        out_dir=out_dir,
    )


def save_run(run: Run) -> None:
    """Write the checkpoint and the metrics rows (rank 0 only; a no-op without out_dir)."""
    if run.out_dir is None:
        return
    if run.ctx.is_main:
        payload = {
            "identity": run.identity,
            "spec_hash": run.spec_hash,
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scaler": run.scaler.state_dict(),
            "epoch": run.epoch,
            "step": run.step,
            "history": run.history,
            "progress": [run.train_seconds, run.eval_seconds, float(run.clips)],
        }
        save_checkpoint(run.out_dir / CHECKPOINT_NAME, payload)
        rows = "".join(json.dumps(row) + "\n" for row in run.history)
        (run.out_dir / "metrics.jsonl").write_text(rows)
    run.checkpoint = run.out_dir / CHECKPOINT_NAME


def _set_aside(out_dir: Path) -> list[Path]:
    """Rename the files of another run (checkpoint, metrics, result) ``*.other-<time>``, never
    deleting one; returns their new names."""
    stamp = base = time.strftime("%Y%m%d-%H%M%S")
    n = 0
    while any((out_dir / f"{name}.other-{stamp}").exists() for name in OUT_FILES):
        n += 1  # NOTE: set aside twice in one second: the first one's files stay
        stamp = f"{base}-{n}"
    moved = []
    for old in (out_dir / name for name in OUT_FILES):
        if old.exists():
            new = old.with_name(f"{old.name}.other-{stamp}")
            old.rename(new)
            moved.append(new)
    return moved


def set_aside_run(run: Run) -> list[Path]:
    """Start afresh in ``out_dir``: the files an earlier run left there are renamed
    ``*.other-<time>`` (rank 0; never deleted) instead of being overwritten."""
    if run.out_dir is None or not run.ctx.is_main:
        return []
    return _set_aside(run.out_dir)


def _apply(run: Run, payload: dict[str, Any], path: Path) -> None:
    """Load a checkpoint of this run into ``run``."""
    try:
        run.model.load_state_dict(payload["model"])
        run.optimizer.load_state_dict(payload["optimizer"])
        run.scaler.load_state_dict(payload["scaler"])
        epoch, step, history = int(payload["epoch"]), int(payload["step"]), payload["history"]
        train_seconds, eval_seconds, clips = (float(x) for x in payload["progress"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path}: not loaded: its contents do not fit this run ({type(exc).__name__}); "
            "move it away"
        ) from None
    if not isinstance(history, list):
        raise CheckpointError(f"{path}: not loaded: its history is not a list; move it away")
    run.epoch, run.step, run.history = epoch, step, history
    run.train_seconds, run.eval_seconds, run.clips = train_seconds, eval_seconds, int(clips)
    run.checkpoint = path


def _trained_epochs(payload: dict[str, Any]) -> int | None:
    try:
        return int(payload["epoch"])
    except (KeyError, TypeError, ValueError):
        return None  # NOTE: _apply names what does not fit


def restore_run(run: Run, *, replace: bool = False) -> list[Path]:
    """Continue from the checkpoint in ``out_dir``, if there is one of this run.

    A checkpoint of the same settings that trained more epochs than this run asks for is not
    this run's (its weights went further down another learning-rate schedule): it is refused
    as a different run's is, so that its result is never shown as this one's.

    Args:
        replace: a checkpoint of a different run (or a file harness cannot load there) is
            renamed ``last.pt.other-<time>`` (with the metrics and result files beside it)
            and the run starts afresh, instead of an error.

    Returns:
        The files set aside (``replace`` only).

    Raises:
        HarnessError: the folder holds a checkpoint of a different run, of more epochs, or
            of another checkpoint format (and not ``replace``).
        CheckpointError: the folder's ``last.pt`` is not a checkpoint harness can load
            safely (and not ``replace``); it is left as it is.
    """
    if run.out_dir is None:
        return []
    path = run.out_dir / CHECKPOINT_NAME
    try:
        payload = load_checkpoint(path)
    except CheckpointError:
        if not replace:
            raise
        return set_aside_run(run)
    if payload is None:
        return []
    problem = _other_run(run, payload)
    if problem is not None:
        if replace:
            return set_aside_run(run)
        raise HarnessError(f"{run.out_dir} holds {problem}")
    _apply(run, payload, path)
    return []


def _other_run(run: Run, payload: dict[str, Any]) -> str | None:
    """Why the checkpoint ``payload`` is not one this run may continue (None: it may)."""
    if payload.get("format") != FORMAT:
        version = f"format {payload.get('format')}, not {FORMAT}"
        return (
            f"a checkpoint of another version of harness ({version}); choose another "
            "output folder, or start afresh without resuming"
        )
    if payload.get("identity") != run.identity:
        return (
            "a checkpoint of a different run (spec, data or settings differ); choose another "
            "output folder, or start afresh without resuming"
        )
    done = _trained_epochs(payload)
    if done is not None and done > run.fidelity.epochs:
        return (
            f"a run of these settings trained for {done} epochs, more than the "
            f"{run.fidelity.epochs} asked for; ask for {done} epochs to see its result again, "
            "choose another output folder, or start afresh without resuming"
        )
    return None


def describe_run(run: Run, set_aside: list[Path] | None = None) -> RunStart:
    """What ``run`` is about to do: its data, its clip, and what it took over from
    ``out_dir`` (the checkpoint it continues, the files of another run ``set_aside``)."""
    data = run.data
    if isinstance(data, SyntheticDataSpec):
        layout, where = "synthetic", f"the synthetic benchmark ({data.preset} preset)"
    else:
        layout, where = data.layout, f"{data.root} ({data.layout} layout)"
    clip = run.train_set.clip
    return RunStart(
        spec_hash=run.spec_hash,
        layout=layout,
        data=where,
        classes=run.classes,
        train_clips=run.train_set.num_videos,
        train_used=len(run.loaders["train"].sampler.items),
        val_clips=run.val_set.num_videos,
        clip=f"{clip.channels}x{clip.frames}x{clip.size}x{clip.size}",
        epochs=run.fidelity.epochs,
        resumed_epochs=run.epoch,
        checkpoint=str(run.checkpoint) if run.checkpoint is not None else None,
        set_aside=tuple(str(p) for p in set_aside or ()),
    )


def evaluate_run(run: Run, views: tuple[int, int] = (1, 1)) -> EvalResult:
    """Evaluate the current weights on the validation split with ``views`` per video."""
    if views == (1, 1):
        dataset, loader = run.val_set, run.loaders["val"]
    else:
        dataset = create_dataset(
            run.data, "val", clip=run.val_set.clip, views=views, audio=run.val_set.audio
        )
        loader = create_loader(
            dataset,
            batch_size=run.config.eval_batch_size or run.config.batch_size,
            train=False,
            num_workers=run.config.num_workers,
            rank=run.ctx.rank,
            world=run.ctx.world,
        )
    result = evaluate(
        run.model,
        loader,
        num_videos=dataset.num_videos,
        classes=run.classes,
        ctx=run.ctx,
        autocast=run.autocast,
        channels_last=run.config.resolved_channels_last(),
    )
    run.eval_seconds += result.seconds
    if views == (1, 1):
        run.last_eval = result
    return result
