"""``harness train``: train and evaluate one spec on a data set.

Under ``torchrun --nproc_per_node N -m harness train ...`` the processes train together
(DDP) and only rank 0 prints.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from harness.errors import SpecError, warn

if TYPE_CHECKING:
    from harness.train import RunStart

__all__ = ["register"]

console = Console(stderr=False)


# Passes over the training split when --epochs is not given: enough for the built-in
# benchmark's tiny preset to tell a temporal network from a 2D one (README, "Data").
DEFAULT_EPOCHS = 4
# Config fields whose option is not ``--field-name``: an error names the option typed.
_FLAGS = {"batch_size": "--batch", "num_workers": "--workers"}


def _cli_error(message: str, option: str) -> SpecError:
    return SpecError(message, path=(option,), file="<command line>")


def _build(model: type[Any], values: dict[str, Any]) -> Any:
    """A config model from command-line values, bad values as one-line SpecErrors."""
    try:
        return model(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        option = _FLAGS.get(field, "--" + field.replace("_", "-")) if field else "<options>"
        from harness.spec import error_message

        raise _cli_error(error_message(error), option) from None


def _check_where(config: Any, out: Path | None) -> None:
    """Refuse a device this machine lacks and an output folder that cannot take the run's
    files now, before anything is loaded or trained."""
    from harness.train.checkpoint import out_dir_problem
    from harness.train.distributed import check_device

    try:
        check_device(config.device)
    except SpecError as exc:
        if exc.path != ("device",):  # torchrun's variables
            raise
        raise _cli_error(exc.message, "--device") from None
    if out is not None and (problem := out_dir_problem(out)) is not None:
        raise _cli_error(f"{problem}; choose another folder", "--out")


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Python warnings (skipped videos, ...) as ``harness: warning: ...`` lines."""

    def show(message: Warning | str, *args: Any, **kwargs: Any) -> None:
        warn(str(message))

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _views(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    clips, _, crops = text.lower().partition("x")
    try:
        return int(clips), int(crops or 1)
    except ValueError:
        raise SpecError(
            f"expected CLIPSxCROPS such as 10x3, got '{text}'",
            path=("--views",),
            file="<command line>",
        ) from None


def _epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def _data_line(start: RunStart) -> str:
    """``data: WHAT: K classes, N train and M val clips; clips CxTxHxW``."""
    used = ""
    if start.train_used != start.train_clips:
        used = f" ({start.train_used} of them trained on: the --subset)"
    return (
        f"data: {start.data}: {start.classes} classes, {start.train_clips} train and "
        f"{start.val_clips} val clips{used}; clips {start.clip}"
    )


class _Start:
    """What the run found before training (``on_start``), told once.

    Notices about the output folder (an earlier run's files set aside, a finished run shown
    again instead of training) are ``harness: warning:`` lines on stderr when they happen.
    The data line (and where a resumed run continues) goes to stdout with the result: before
    training when progress shows, else just above the table.

    NOTE: not before training in a log or a pipe, where a data error found in the middle of
    the epochs (a video that will not decode) must stay the only line of its run.
    """

    def __init__(self, *, main: bool, as_json: bool, early: bool) -> None:
        self.main, self.as_json, self.early = main, as_json, early
        self.start: RunStart | None = None
        self.lines: list[str] = []

    def __call__(self, start: RunStart) -> None:
        self.start = start
        if not self.main:
            return
        if start.set_aside:
            warn(f"set aside the files of an earlier run: {', '.join(start.set_aside)}")
        if start.finished:
            warn(
                f"{start.checkpoint} is a finished run of these settings "
                f"({_epochs(start.resumed_epochs)}): its result is shown again, nothing is "
                "trained (--no-resume trains afresh)"
            )
        self.lines = [_data_line(start)]
        if 0 < start.resumed_epochs < start.epochs:
            self.lines.append(
                f"resumed from {start.checkpoint} after epoch {start.resumed_epochs} of "
                f"{start.epochs}"
            )
        if self.early:
            self.flush()

    def flush(self) -> None:
        """Print the lines not printed yet (text mode only)."""
        if not self.as_json:
            for line in self.lines:
                console.print(line, soft_wrap=True, highlight=False, markup=False)
        self.lines = []


def _print(result: Any, start: RunStart | None) -> None:
    status = result.status
    if start is not None and start.finished:
        status = f"{status}, shown again"  # NOTE: the warning names the checkpoint
    table = Table(title=f"training {result.spec_hash[:12]}  ({status})")
    for column in ("epoch", "train loss", "lr", "top-1", "top-5", "seconds", "clips/s"):
        table.add_column(column, justify="right")
    for row in result.history:
        table.add_row(
            str(row["epoch"]),
            f"{row['train_loss']:.4f}",
            f"{row['lr']:.3g}",
            f"{row['top1']:.3f}",
            f"{row['top5']:.3f}",
            f"{row['seconds']:.1f}",
            f"{row['clips_per_second']:.1f}",
        )
    console.print(table)
    console.print(
        f"top-1 {result.top1:.4f}  top-5 {result.top5:.4f}  mean class {result.mean_class_acc:.4f}"
        f"  (single view top-1 {result.top1_single_view:.4f})"
    )
    console.print(
        f"trained {_epochs(result.epochs)} in {result.train_seconds:.1f} s "
        f"({result.train_clips_per_second:.1f} clips/s); checkpoint: {result.checkpoint}"
    )


Opt = typer.Option


def train_command(
    spec: Annotated[str, typer.Argument(help="A YAML spec file or a zoo name.")],
    data: Annotated[
        str, Opt("--data", help="synthetic[:ci|tiny|small|large], LAYOUT:PATH, a path or a YAML.")
    ] = "synthetic",
    epochs: Annotated[int, Opt("--epochs", help="Epochs.")] = DEFAULT_EPOCHS,
    batch: Annotated[int | None, Opt("--batch", help="Clips per step per process.")] = None,
    out: Annotated[Path | None, Opt("--out", help="Folder for checkpoint and metrics.")] = None,
    as_json: Annotated[bool, Opt("--json", help="Print one JSON object.")] = False,
    lr: Annotated[float | None, Opt("--lr", help="Peak learning rate.")] = None,
    optimizer: Annotated[str | None, Opt("--optimizer", help="sgd or adamw.")] = None,
    subset: Annotated[float | None, Opt("--subset", help="Fraction of the train split.")] = None,
    frames: Annotated[int | None, Opt("--frames", help="Clip frames (default: spec's).")] = None,
    size: Annotated[int | None, Opt("--size", help="Crop size (default: the spec's).")] = None,
    views: Annotated[str | None, Opt("--views", help="Test views CLIPSxCROPS, e.g. 10x3.")] = None,
    workers: Annotated[int | None, Opt("--workers", help="Loader processes.")] = None,
    device: Annotated[str | None, Opt("--device", help="cpu or cuda.")] = None,
    precision: Annotated[str | None, Opt("--precision", help="auto, fp32, bf16, fp16.")] = None,
    seed: Annotated[int | None, Opt("--seed", help="Seed of weights, order, augmentation.")] = None,
    resume: Annotated[
        bool,
        Opt(
            "--resume/--no-resume",
            help="Continue the run in --out (the default); --no-resume sets its files aside "
            "and trains afresh.",
        ),
    ] = True,
) -> None:
    """Train a spec on a data set, evaluate it, and print its accuracy.

    The data's layout and split sizes are printed first. With --out, the same command again
    continues the run there (a finished one is shown again, saying so); a checkpoint of
    other settings, or of more epochs, is refused.
    """
    from harness.train import Fidelity, TrainConfig, train
    from harness.train.distributed import env_int

    config = _build(
        TrainConfig,
        {"batch_size": batch, "lr": lr, "optimizer": optimizer, "views": _views(views),
         "num_workers": workers, "device": device, "precision": precision, "seed": seed},
    )  # fmt: skip
    fidelity = _build(
        Fidelity, {"epochs": epochs, "subset": subset, "frames": frames, "size": size}
    )
    _check_where(config, out)
    main = env_int("RANK", 0) == 0
    show = main and not as_json and sys.stderr.isatty()
    start = _Start(main=main, as_json=as_json, early=show)
    with _warnings_as_lines():
        result = train(
            spec, data, config=config, fidelity=fidelity, out_dir=out, resume=resume,
            progress=show, on_start=start,
        )  # fmt: skip
    if main:
        if as_json:
            typer.echo(json.dumps(result.model_dump(mode="json")))
        else:
            start.flush()
            _print(result, start.start)
    if result.status != "complete":
        if main:
            sys.stderr.write(f"harness: training stopped: {result.reason}\n")
        raise typer.Exit(1)  # main() passes the exit code through


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
