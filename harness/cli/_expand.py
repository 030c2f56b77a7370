"""``harness expand``: X3D-style expansion of a spec up to a target cost."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from harness.cli._search import _quiet_optuna
from harness.errors import SpecError

if TYPE_CHECKING:
    from harness.expansion import Expansion, ExpansionConfig, SearchEvaluator

__all__ = ["register"]

console = Console(stderr=True)
Opt = typer.Option


def _cli_error(message: str, option: str) -> SpecError:
    return SpecError(message, path=(option,), file="<command line>")


def _names(text: str | None, option: str) -> tuple[str, ...] | None:
    if text is None:
        return None
    items = text.split(",")
    if len(items) > 1 and not all(item.strip() for item in items):
        raise _cli_error(f"an empty item in '{text}' (two commas, or one at an end)", option)
    names = tuple(n for n in re.split(r"[,\s]+", text.strip()) if n)
    if not names:
        raise _cli_error("give at least one axis", option)
    return names


def _target(targets: dict[str, float | None]) -> tuple[str, float]:
    """The one target given, as (cost, value)."""
    given = [(cost, value) for cost, value in targets.items() if value is not None]
    if len(given) != 1:
        options = ", ".join(f"--target-{cost.replace('_', '-')}" for cost in targets)
        raise _cli_error(f"give exactly one of {options}", "--target-gflops")
    return given[0]


def _table(result: Expansion) -> Table:
    title = f"expansion of {result.base} (step ratios in {result.step_cost})"
    table = Table(title=title, title_justify="left")
    costs = list(dict.fromkeys((result.cost, result.step_cost)))
    columns = ("step", "axis", "factor", "frames", "stride", "size", *costs, "ratio", "top1")
    for column in columns:
        table.add_column(column, justify="right")
    for s in result.path:
        label = f"{s.axis} (contracted)" if s.contracted else s.axis
        ratio = "" if s.ratio is None else f"{s.ratio:.2f}"
        top1 = "" if s.top1 is None else f"{s.top1:.3f}"
        cells = [str(s.step), label, f"{s.factor:.3f}", str(s.frames), str(s.stride), str(s.size)]
        table.add_row(*cells, *(f"{s.costs[c]:.4g}" for c in costs), ratio, top1)
    return table


def _path_json(result: Expansion) -> list[dict[str, object]]:
    """One row per step: the realised clip, every cost measured, and the axes dropped."""
    keys = ("step", "axis", "factor", "factors", "frames", "stride", "size", "ratio",
            "contracted", "dropped", "top1", "spec_hash", "trial")  # fmt: skip
    out = []
    for s in result.path:
        row = {k: s.to_json()[k] for k in keys}
        out.append({**row, "target_cost": result.cost, "step_cost": result.step_cost, **s.costs})
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
    from harness.expansion import CostModel, SearchEvaluator, create_axis, create_space
    from harness.search._preflight import default_study_name
    from harness.spec import load_spec

    loaded = load_spec(spec)
    names = list(dict.fromkeys([*config.axes, *(config.order or ())]))
    axes = [create_axis(n, loaded) for n in names]
    model = CostModel(spec, axes, cost=config.solved_cost, batch=config.batch)
    name = study or default_study_name(f"expand-{loaded.name}")
    space = create_space(
        model, spec, name=name, data=data, epochs=epochs, subset=subset,
        train={"batch_size": batch_size, "num_workers": 0},
    )  # fmt: skip
    return SearchEvaluator(space, name, storage=storage, results_dir=results, workers=workers)


def _span_limit(max_frames: int | None, data: str | None) -> tuple[int | None, str]:
    """The longest clip span allowed (frames x stride), and where it comes from.

    ``--max-frames`` when given; else the video length of a synthetic ``--data`` set. Real
    videos have no single length: without ``--max-frames`` their span is not bounded.
    """
    if max_frames is not None:
        return max_frames, "--max-frames"
    if data is None:
        return None, ""
    from harness.data.spec import SyntheticDataSpec, load_data_spec

    loaded = load_data_spec(data)
    if isinstance(loaded, SyntheticDataSpec):
        return loaded.video_frames, f"the video length of {data}"
    return None, ""


def expand_command(
    spec: Annotated[str, typer.Argument(metavar="SPEC", help="Base: a zoo name or spec file.")],
    target_gflops: Annotated[float | None, Opt("--target-gflops", help="Target GFLOPs.")] = None,
    target_params: Annotated[
        float | None, Opt("--target-params", help="Target parameters.")
    ] = None,
    target_memory: Annotated[
        float | None, Opt("--target-train-memory-mb", help="Target training memory (MiB).")
    ] = None,
    target_latency: Annotated[
        float | None, Opt("--target-latency-ms", help="Target inference latency (ms).")
    ] = None,
    cost: Annotated[
        str | None,
        Opt(
            "--cost",
            help="Cost each step multiplies: gflops, params, train_memory_mb, "
            "latency_ms (default: the target's).",
        ),
    ] = None,
    axes: Annotated[str | None, Opt("--axes", help="Comma-separated axes or spec keys.")] = None,
    step_ratio: Annotated[float, Opt("--step-ratio", help="Cost ratio of one step.")] = 2.0,
    order: Annotated[str | None, Opt("--order", help="Axis of every step, in order.")] = None,
    criterion: Annotated[str, Opt("--criterion", help="accuracy or gain_per_cost.")] = "accuracy",
    dry_run: Annotated[bool, Opt("--dry-run", help="Cost only: train nothing.")] = False,
    max_frames: Annotated[
        int | None,
        Opt(
            "--max-frames",
            help="Longest clip span, frames x stride, in source frames "
            "(default: the video length of a synthetic --data).",
        ),
    ] = None,
    max_steps: Annotated[int, Opt("--max-steps", help="Most expansion steps.")] = 24,
    data: Annotated[
        str | None, Opt("--data", help="Data set (default synthetic:tiny; dry run: none).")
    ] = None,
    epochs: Annotated[int, Opt("--epochs", help="Epochs per candidate.")] = 1,
    subset: Annotated[float, Opt("--subset", help="Fraction of the training set.")] = 1.0,
    batch_size: Annotated[int, Opt("--batch-size", help="Clips per training step.")] = 16,
    study: Annotated[str | None, Opt("--study", help="Study name.")] = None,
    storage: Annotated[str | None, Opt("--storage", help="Optuna storage URL.")] = None,
    results: Annotated[Path, Opt("--results", help="Results directory.")] = Path("results"),
    workers: Annotated[int, Opt("--workers", help="Worker processes.")] = 1,
    latency_device: Annotated[
        str, Opt("--latency-device", help="Where latency_ms is timed (cpu, cuda).")
    ] = "cpu",
    latency_threads: Annotated[
        int, Opt("--latency-threads", help="CPU threads while timing latency_ms.")
    ] = 1,
    as_json: Annotated[bool, Opt("--json", help="Print the path as JSON.")] = False,
) -> None:
    """Expand SPEC one axis at a time (X3D) until it reaches the target cost.

    Each step grows every axis by the factor that multiplies the cost (--cost, default the
    target's) by --step-ratio, trains the candidates and keeps the most accurate; the last
    step is contracted onto the target. An axis that can no longer grow (the clip span
    reaching the video length, a cost that does not depend on it) is dropped. Running the
    same command again resumes the study.
    """
    from harness.expansion import (
        DEFAULT_AXES,
        ExpansionConfig,
        LatencyTiming,
        create_axis,
        expand_to_target,
    )
    from harness.expansion.costs import get_cost
    from harness.spec import load_spec

    _quiet_optuna()
    target_cost, target = _target(
        {"gflops": target_gflops, "params": target_params, "train_memory_mb": target_memory,
         "latency_ms": target_latency}
    )  # fmt: skip
    if cost is not None:
        get_cost(cost)
    if latency_threads < 1:
        raise _cli_error(f"must be at least 1, got {latency_threads}", "--latency-threads")
    if criterion not in ("accuracy", "gain_per_cost"):
        raise _cli_error(
            f"unknown criterion '{criterion}'; known: accuracy, gain_per_cost", "--criterion"
        )
    if workers < 1:
        raise _cli_error(f"must be at least 1, got {workers}", "--workers")
    if max_steps < 1:
        raise _cli_error(f"must be at least 1, got {max_steps}", "--max-steps")
    if study is not None:
        from harness.search._preflight import check_study_name

        check_study_name(study)
    data = data if data is not None or dry_run else "synthetic:tiny"
    max_span, span_source = _span_limit(max_frames, data)
    config = ExpansionConfig(
        target=target, cost=target_cost, step_cost=cost,
        axes=_names(axes, "--axes") or DEFAULT_AXES, step_ratio=step_ratio,
        order=_names(order, "--order"), criterion=criterion,  # type: ignore[arg-type]
        max_span=max_span, span_source=span_source, max_steps=max_steps, batch=batch_size,
        timing=LatencyTiming(device=latency_device, threads=latency_threads),
    )  # fmt: skip
    for name in (*config.axes, *(config.order or ())):
        create_axis(
            name, load_spec(spec), option="--order" if name not in config.axes else "--axes"
        )
    evaluator = None
    if not dry_run:
        evaluator = _evaluator(
            spec, config, study=study, data=data or "synthetic:tiny", epochs=epochs, subset=subset,
            batch_size=batch_size, storage=storage, results=results, workers=workers,
        )  # fmt: skip
    result = expand_to_target(spec, config, evaluator=evaluator)
    if evaluator is not None:
        result.study, result.results = evaluator.study, str(results / evaluator.study)
    if as_json:
        typer.echo(json.dumps(_path_json(result)))
    else:
        console.print(_table(result))
        for s in result.path:
            for axis, why in s.dropped.items():
                console.print(f"step {s.step}: dropped {axis}: {why}")


def register(app: typer.Typer) -> None:
    app.command("expand")(expand_command)
