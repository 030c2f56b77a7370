"""``train``: one spec, one data set, a config and a fidelity -> a :class:`TrainResult`.

    spec --build_model(clip, classes)--> model [--DDP-->] epochs of
        train (warm-up + cosine lr, autocast, gradient accumulation)
        -> evaluate (one view) -> checkpoint + metrics row -> callback(row)
    -> [precise BN] -> final evaluation (``views`` per video) -> TrainResult

With an output folder every epoch leaves ``last.pt`` (the checkpoint) and
``metrics.jsonl`` (one row per epoch), and the end ``result.json``; a later call with the
same folder resumes after the last saved epoch. A non-finite loss stops the run before
the broken weights are saved: the result has ``status == "nan"`` and a ``reason``, and the
last good checkpoint stays in place.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from harness.data.loader import loader_errors
from harness.data.spec import SyntheticDataSpec, VideoDataSpec
from harness.errors import HarnessError
from harness.spec import ModelSpec
from harness.train._epoch import EpochStats, NonFiniteLoss, precise_bn, train_epoch
from harness.train._run import (
    Run,
    create_run,
    describe_run,
    evaluate_run,
    restore_run,
    save_run,
    set_aside_run,
)
from harness.train.checkpoint import out_dir_problem, weights_digest
from harness.train.config import Fidelity, RunStart, TrainConfig, TrainResult
from harness.train.distributed import all_gather_object, close_distributed, init_distributed
from harness.train.evaluate import EvalResult

__all__ = ["train"]

Callback = Callable[[dict[str, Any]], None]
OnStart = Callable[[RunStart], None]


def _row(run: Run, stats: EpochStats, result: EvalResult) -> dict[str, Any]:
    return {
        "epoch": run.epoch,
        "train_loss": stats.loss,
        "train_top1": stats.top1,
        "lr": stats.lr,
        "top1": result.top1,
        "top5": result.top5,
        "mean_class_acc": result.mean_class_acc,
        "seconds": stats.seconds,
        "eval_seconds": result.seconds,
        "clips": stats.clips,
        "clips_per_second": stats.clips / max(stats.seconds, 1e-9),
    }


def _digest(run: Run) -> str:
    """The weights' digest, checked to be the same on every process."""
    digest = weights_digest(run.model)
    digests = all_gather_object(digest, run.ctx)
    if len(set(digests)) != 1:
        raise RuntimeError(f"processes ended with different weights: {digests}")
    return digest


def _result(
    run: Run, final: EvalResult | None, single: EvalResult | None, status: str, reason: str
) -> TrainResult:
    final = final or single or EvalResult(0.0, 0.0, 0.0)
    return TrainResult(
        top1=final.top1,
        top5=final.top5,
        mean_class_acc=final.mean_class_acc,
        top1_single_view=(single or final).top1,
        per_class_acc=final.per_class_acc,
        classes=list(run.train_set.classes),
        epochs=run.epoch,
        train_seconds=run.train_seconds,
        eval_seconds=run.eval_seconds,
        train_clips_per_second=run.clips / max(run.train_seconds, 1e-9),
        spec_hash=run.spec_hash,
        params=sum(p.numel() for p in run.model.parameters()),
        history=run.history,
        checkpoint=str(run.checkpoint) if run.checkpoint else None,
        status=status,  # type: ignore[arg-type]
        reason=reason,
        world_size=run.ctx.world,
        weights_digest=_digest(run) if status == "complete" else "",
    )


def _epochs(run: Run, progress: bool, callback: Callback | None) -> None:
    """Train the remaining epochs; each ends saved before ``callback`` sees its row."""
    for _ in range(run.epoch, run.fidelity.epochs):
        start = time.perf_counter()
        try:
            stats = train_epoch(run, progress=progress)
        except NonFiniteLoss:
            run.train_seconds += time.perf_counter() - start  # the diverging epoch ran too
            raise
        run.epoch += 1
        run.train_seconds += stats.seconds
        run.clips += stats.clips
        result = evaluate_run(run)
        run.history.append(_row(run, stats, result))
        last = run.epoch == run.fidelity.epochs
        if last or run.epoch % run.config.checkpoint_every == 0:
            save_run(run)
        if callback is not None:
            callback(dict(run.history[-1]))  # NOTE: may raise (pruning); we are saved


def _finish(run: Run) -> TrainResult:
    if run.config.precise_bn:
        precise_bn(run)
        run.last_eval = None
        save_run(run)
    single = run.last_eval or evaluate_run(run)
    final = single if run.config.views == (1, 1) else evaluate_run(run, run.config.views)
    result = _result(run, final, single, "complete", "")
    if run.out_dir is not None and run.ctx.is_main:
        (run.out_dir / "result.json").write_text(result.model_dump_json(indent=2))
    return result


def _stopped(run: Run, reason: str) -> TrainResult:
    last = run.history[-1] if run.history else None
    single = EvalResult(last["top1"], last["top5"], last["mean_class_acc"]) if last else None
    return _result(run, None, single, "nan", reason)


@contextmanager
def _held_warnings() -> Iterator[None]:
    """Warnings raised inside (skipped videos) are issued on leaving, and only when
    nothing was raised: the error that stops a run before it starts says what matters."""
    with warnings.catch_warnings(record=True) as caught:
        yield
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _prepare_out_dir(folder: Path | None, main: bool) -> None:
    """Create the output folder before training, so that saving cannot fail for want of it."""
    if folder is None or not main:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(f"cannot create the output folder {folder}: {exc.strerror}") from None


def train(
    spec: ModelSpec | str | Path,
    data: str | Path | Mapping[str, Any] | SyntheticDataSpec | VideoDataSpec,
    *,
    config: TrainConfig | None = None,
    fidelity: Fidelity | None = None,
    out_dir: Path | str | None = None,
    resume: bool | Literal["replace"] = True,
    progress: bool = False,
    callback: Callback | None = None,
    on_start: OnStart | None = None,
) -> TrainResult:
    """Train ``spec`` on ``data`` and evaluate it.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process calls this; they train one model
    with DistributedDataParallel and all return the same result. Only rank 0 writes files.

    Args:
        spec: a model spec, zoo name or YAML path.
        data: ``"synthetic"``, ``"synthetic:ci|tiny|small|large"``, ``"LAYOUT:PATH"``, a data
            folder, CSV or JSON (layout detected), a data-spec YAML, a mapping of data-spec
            fields, or a data spec.
        config: runtime settings (default: :class:`TrainConfig`'s defaults).
        fidelity: epochs, training subset and clip overrides (default: one full epoch).
        out_dir: folder for the checkpoint, metrics rows and result (None: keep nothing).
        resume: continue from a checkpoint of the same run in ``out_dir``; ``"replace"``
            also sets a checkpoint of a different run aside (renamed, never deleted) and
            starts afresh instead of refusing it; False starts afresh, setting aside the
            files any earlier run left in ``out_dir``.
        progress: show progress bars (rank 0).
        callback: called after every epoch (once saved) with its metrics row; an exception
            it raises propagates out of ``train`` (the search prunes this way).
        on_start: called once before the first step (on every process) with what the run
            found: the data's layout and split sizes, the checkpoint it continues (a
            finished one trains nothing: its result is evaluated again), the files set
            aside.

    Raises:
        SpecError: the model or data spec is invalid, no usable video is left, or
            ``config.device`` is not on this machine.
        HarnessError: ``out_dir`` cannot take the run's files, or holds a checkpoint of a
            different run or of more epochs (a
            :class:`~harness.train.checkpoint.CheckpointError` when it holds a file harness
            cannot load safely); checked before any training.
    """
    config = config or TrainConfig()
    fidelity = fidelity or Fidelity()
    folder = Path(out_dir) if out_dir is not None else None
    if folder is not None and (problem := out_dir_problem(folder)) is not None:
        raise HarnessError(f"{problem}; choose another output folder")
    ctx = init_distributed(config.device)
    try:
        with _held_warnings():
            run = create_run(spec, data, config, fidelity, ctx, folder)
            _prepare_out_dir(folder, ctx.is_main)
            replace = resume == "replace"
            aside = restore_run(run, replace=replace) if resume else set_aside_run(run)
        if on_start is not None:
            on_start(describe_run(run, aside))
        with loader_errors():  # NOTE: a worker's error as its own line, not its traceback
            try:
                _epochs(run, progress, callback)
                result = _finish(run)
            except NonFiniteLoss as exc:
                result = _stopped(run, str(exc))
    except BaseException:
        close_distributed(ctx, together=False)  # the other ranks may never get here
        raise
    close_distributed(ctx)
    return result
