"""``harness expand``: X3D-style expansion of a spec up to a target cost."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from harness.cli._search import _quiet_optuna
from harness.errors import SpecError
from harness.expansion import (
    DEFAULT_AXES,
    CostModel,
    Expansion,
    ExpansionConfig,
    SearchEvaluator,
    create_axis,
    create_space,
    expand_to_target,
)
from harness.spec import load_spec

__all__ = ["register"]

console = Console(stderr=True)
Opt = typer.Option


def _cli_error(message: str, option: str) -> SpecError:
    return SpecError(message, path=(option,), file="<command line>")


def _names(text: str | None, option: str) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(n for n in re.split(r"[,\s]+", text.strip()) if n)
    if not names:
        raise _cli_error("give at least one axis", option)
    return names


def _target(gflops: float | None, params: float | None, memory: float | None) -> tuple[str, float]:
    given = [
        (cost, value)
        for cost, value in (("gflops", gflops), ("params", params), ("train_memory_mb", memory))
        if value is not None
    ]
    if len(given) != 1:
        raise _cli_error(
            "give exactly one of --target-gflops, --target-params, --target-train-memory-mb",
            "--target-gflops",
        )
    return given[0]


def _table(result: Expansion) -> Table:
    table = Table(title=f"expansion of {result.base}", title_justify="left")
    for column in ("step", "axis", "factor", "frames", "size", result.cost, "ratio", "top1"):
        table.add_column(column, justify="right")
    for s in result.path:
        label = f"{s.axis} (contracted)" if s.contracted else s.axis
        ratio = "" if s.ratio is None else f"{s.ratio:.2f}"
        top1 = "" if s.top1 is None else f"{s.top1:.3f}"
        cells = [str(s.step), label, f"{s.factor:.3f}", str(s.frames), str(s.size)]
        table.add_row(*cells, f"{s.cost:.4g}", ratio, top1)
    return table


def _path_json(result: Expansion) -> list[dict[str, object]]:
    keys = ("step", "axis", "factor", "factors", "frames", "size", "ratio", "contracted")
    out = []
    for s in result.path:
        row = {k: s.to_json()[k] for k in keys}
        out.append({**row, result.cost: s.cost, "top1": s.top1, "spec_hash": s.spec_hash,
                    "trial": s.trial})  # fmt: skip
        if result.cost == "gflops":
            out[-1]["gflops"] = s.cost
    return out


def _evaluator(
    spec: str,
    config: ExpansionConfig,
    *,
    study: str | None,
    data: str,
    epochs: int,
    subset: float,
    batch_size: int,
    storage: str | None,
    results: Path,
    workers: int,
) -> SearchEvaluator:
    loaded = load_spec(spec)
    names = list(dict.fromkeys([*config.axes, *(config.order or ())]))
    model = CostModel(spec, [create_axis(n, loaded) for n in names], cost=config.cost)
    name = study or f"expand-{loaded.name}"
    space = create_space(
        model, spec, name=name, data=data, epochs=epochs, subset=subset,
        train={"batch_size": batch_size, "num_workers": 0},
    )  # fmt: skip
    return SearchEvaluator(space, name, storage=storage, results_dir=results, workers=workers)


def _video_frames(data: str) -> int | None:
    """Length of the synthetic benchmark's videos (the most frames a clip can hold)."""
    from harness.data.spec import SyntheticDataSpec, load_data_spec

    try:
        loaded = load_data_spec(data)
    except Exception:  # a real data set: its lengths vary; no default limit
        return None
    return loaded.video_frames if isinstance(loaded, SyntheticDataSpec) else None


def expand_command(
    spec: Annotated[str, typer.Argument(metavar="SPEC", help="Base: a zoo name or spec file.")],
    target_gflops: Annotated[float | None, Opt("--target-gflops", help="Target GFLOPs.")] = None,
    target_params: Annotated[
        float | None, Opt("--target-params", help="Target parameters.")
    ] = None,
    target_memory: Annotated[
        float | None, Opt("--target-train-memory-mb", help="Target training memory (MB).")
    ] = None,
    axes: Annotated[str | None, Opt("--axes", help="Comma-separated axes or spec keys.")] = None,
    step_ratio: Annotated[float, Opt("--step-ratio", help="Cost ratio of one step.")] = 2.0,
    order: Annotated[str | None, Opt("--order", help="Axis of every step, in order.")] = None,
    criterion: Annotated[str, Opt("--criterion", help="accuracy or gain_per_cost.")] = "accuracy",
    dry_run: Annotated[bool, Opt("--dry-run", help="Cost only: train nothing.")] = False,
    max_frames: Annotated[int | None, Opt("--max-frames", help="Longest clip allowed.")] = None,
    max_steps: Annotated[int, Opt("--max-steps", help="Most expansion steps.")] = 24,
    data: Annotated[str, Opt("--data", help="Data set.")] = "synthetic:tiny",
    epochs: Annotated[int, Opt("--epochs", help="Epochs per candidate.")] = 1,
    subset: Annotated[float, Opt("--subset", help="Fraction of the training set.")] = 1.0,
    batch_size: Annotated[int, Opt("--batch-size", help="Clips per training step.")] = 16,
    study: Annotated[str | None, Opt("--study", help="Study name.")] = None,
    storage: Annotated[str | None, Opt("--storage", help="Optuna storage URL.")] = None,
    results: Annotated[Path, Opt("--results", help="Results directory.")] = Path("results"),
    workers: Annotated[int, Opt("--workers", help="Worker processes.")] = 1,
    as_json: Annotated[bool, Opt("--json", help="Print the path as JSON.")] = False,
) -> None:
    """Expand SPEC one axis at a time (X3D) until it reaches the target cost.

    Each step grows every axis by the factor that multiplies the cost by --step-ratio,
    trains the candidates and keeps the most accurate; the last step is contracted onto
    the target. Running the same command again resumes the study.
    """
    _quiet_optuna()
    cost, target = _target(target_gflops, target_params, target_memory)
    if criterion not in ("accuracy", "gain_per_cost"):
        raise _cli_error(
            f"unknown criterion '{criterion}'; known: accuracy, gain_per_cost", "--criterion"
        )
    if workers < 1:
        raise _cli_error(f"must be at least 1, got {workers}", "--workers")
    config = ExpansionConfig(
        target=target, cost=cost, axes=_names(axes, "--axes") or DEFAULT_AXES,
        step_ratio=step_ratio, order=_names(order, "--order"), criterion=criterion,  # type: ignore[arg-type]
        max_frames=max_frames if max_frames or dry_run else _video_frames(data),
        max_steps=max_steps,
    )  # fmt: skip
    for name in (*config.axes, *(config.order or ())):
        create_axis(
            name, load_spec(spec), option="--order" if name not in config.axes else "--axes"
        )
    evaluator = None
    if not dry_run:
        evaluator = _evaluator(
            spec, config, study=study, data=data, epochs=epochs, subset=subset,
            batch_size=batch_size, storage=storage, results=results, workers=workers,
        )  # fmt: skip
    result = expand_to_target(spec, config, evaluator=evaluator)
    if evaluator is not None:
        result.study, result.results = evaluator.study, str(results / evaluator.study)
    if as_json:
        typer.echo(json.dumps(_path_json(result)))
    else:
        console.print(_table(result))
        for s in result.skipped:
            console.print(f"step {s['step']}: skipped {s['axis']}: {s['reason']}")


def register(app: typer.Typer) -> None:
    app.command("expand")(expand_command)
