"""``harness compile``, ``harness zoo`` and ``harness schema``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from harness.costs import COSTS
from harness.errors import SpecError
from harness.zoo import list_zoo

if TYPE_CHECKING:
    from harness.report import ModelReport
    from harness.spec import ModelSpec

console = Console()

Frames = Annotated[int | None, typer.Option("--frames", help="Clip length (default: the spec's).")]
Size = Annotated[int | None, typer.Option("--size", help="Crop size (default: the spec's).")]
Classes = Annotated[int | None, typer.Option("--classes", help="Output classes.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
Batch = Annotated[
    int | None, typer.Option("--batch", help="Report training-step memory at this batch size.")
]
Latency = Annotated[
    bool, typer.Option("--latency", help="Time inference and forward+backward (at --batch or 1).")
]
Device = Annotated[str, typer.Option("--device", help="cpu or cuda: where to measure.")]
Precision = Annotated[str, typer.Option("--precision", help="fp32, bf16 or fp16 (autocast).")]
Memory = Annotated[
    str,
    typer.Option(
        "--memory",
        help="measure (run a step), estimate (simulate it) or auto (measure on cuda only).",
    ),
]
Optimizer = Annotated[str, typer.Option("--optimizer", help="Optimizer of the training step.")]
Threads = Annotated[int | None, typer.Option("--threads", help="CPU threads for --latency.")]
ChannelsLast = Annotated[bool, typer.Option("--channels-last", help="Time in channels_last_3d.")]
Compile = Annotated[bool, typer.Option("--compile", help="Time torch.compile(model).")]
NoCache = Annotated[
    bool, typer.Option("--no-cache", help="Recompute costs instead of reading the cache.")
]

CLI = "<command line>"


def _positive(name: str, value: int | None) -> None:
    """``value`` within the range the spec's own counts take (1 to 1,000,000)."""
    if value is None:
        return
    from pydantic import TypeAdapter, ValidationError

    from harness.spec._types import PositiveInt

    try:
        TypeAdapter(PositiveInt).validate_python(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        bounds = error.get("ctx") or {}
        reason = (
            f"must be at most {bounds['le']:,}"
            if "le" in bounds
            else f"must be at least {bounds['ge']:,}"
            if "ge" in bounds
            else error["msg"].lower()
        )
        raise SpecError(f"{reason}, got {value:,}", path=(name,), file=CLI) from None


def _check_costs(
    batch: int | None, latency: bool, device: str, precision: str, memory: str, optimizer: str
) -> None:
    """Reject bad cost options before anything is built, naming the option."""
    from harness.measure import OPTIMIZERS, get_device, get_precision
    from harness.report import MEMORY_METHODS, memory_method

    if memory not in MEMORY_METHODS:
        known = ", ".join(MEMORY_METHODS)
        raise SpecError(f"unknown method '{memory}'; known: {known}", path=("--memory",), file=CLI)
    if optimizer not in OPTIMIZERS:
        known = ", ".join(OPTIMIZERS.names())
        raise SpecError(
            f"unknown optimizer '{optimizer}'; known: {known}", path=("--optimizer",), file=CLI
        )
    runs_here = latency or (batch is not None and memory_method(memory, device) == "measure")
    get_device(device, present=runs_here, path=("--device",), file=CLI)
    get_precision(precision, path=("--precision",), file=CLI)


def _shape(shape: list[int]) -> str:
    return "x".join(str(n) for n in shape)


def _print_report(report: ModelReport) -> None:
    table = Table(
        title=f"{report.name}  input {_shape(report.input_shape)}  spec {report.spec_hash[:12]}"
    )
    table.add_column("module")
    table.add_column("output (C x T x H x W)")
    table.add_column("params", justify="right")
    table.add_column("GFLOPs", justify="right")
    for row in report.stages:
        table.add_row(row.name, _shape(row.output_shape), f"{row.params:,}", f"{row.gflops:.3f}")
    table.add_section()
    table.add_row("total", "", f"{report.params:,}", f"{report.gflops:.3f}")
    console.print(table)
    console.print(f"params without norm layers: {report.params_no_norm:,}")
    if report.gflops_all is None:  # counted on meta tensors: fvcore's trace would not fit
        console.print(
            "counted on meta tensors: fvcore's trace of this network would not fit in memory "
            "(gflops_all and the uncounted operators need it)"
        )
    else:
        console.print(f"{COSTS['gflops_all'].label} (gflops_all): {report.gflops_all:.3f}")
        console.print(f"uncounted operators: {report.unsupported_ops or 'none'}")
    _print_costs(report)
    console.print(f"[dim]{report.flop_convention}[/dim]")


def _mib(n: int) -> str:
    from harness.measure import MIB

    return f"{n / MIB:,.1f}"


def _print_costs(report: ModelReport) -> None:
    memory, latency = report.train_memory, report.latency
    if memory is not None:
        where = f"batch {memory.batch}, {memory.device}, {memory.precision}, {memory.optimizer}"
        if memory.peak_bytes is None:
            figure = "out of memory (over budget)"
        else:
            figure = f"{_mib(memory.peak_bytes)} MiB peak"
        console.print(f"training-step memory ({where}): {figure}  (method: {memory.method})")
        console.print(
            f"  parameters {_mib(memory.param_bytes)}, gradients {_mib(memory.grad_bytes)}, "
            f"optimizer state {_mib(memory.optimizer_bytes)}, saved activations "
            f"{_mib(memory.saved_bytes)}, batch {_mib(memory.input_bytes)} MiB"
        )
    if latency is not None:
        threads = f", threads={latency.threads}" if latency.threads else ""
        options = "".join(
            f", {name}"
            for name, on in (
                ("channels_last_3d", latency.channels_last),
                ("torch.compile", latency.compiled),
            )
            if on
        )
        where = f"batch {latency.batch}, {latency.device}{threads}, {latency.precision}{options}"
        if latency.forward is None:
            console.print(f"latency ({where}): out of memory  (method: {latency.method})")
            return
        parts = [f"forward {latency.forward.median:.2f} ms (IQR {latency.forward.iqr:.2f})"]
        if latency.forward_backward is not None:
            both = latency.forward_backward
            parts.append(f"forward+backward {both.median:.2f} ms (IQR {both.iqr:.2f})")
        console.print(f"latency ({where}): {', '.join(parts)}  (method: {latency.method})")


def compile_command(
    spec: Annotated[str, typer.Argument(help="A YAML spec file or a zoo name.")],
    frames: Frames = None,
    size: Size = None,
    classes: Classes = None,
    as_json: Json = False,
    batch: Batch = None,
    latency: Latency = False,
    device: Device = "cpu",
    precision: Precision = "fp32",
    memory: Memory = "auto",
    optimizer: Optimizer = "sgd",
    threads: Threads = None,
    channels_last: ChannelsLast = False,
    compile: Compile = False,
    no_cache: NoCache = False,
) -> None:
    """Compile a spec and print its per-stage shapes, parameters and GFLOPs.

    With --batch, also the peak memory of a training step; with --latency, inference and
    forward+backward times. Costs are cached by spec hash (see harness.measure.cache).
    """
    from harness.measure import CostCache
    from harness.report import LatencyOptions, describe_model

    for name, value in (
        ("--frames", frames),
        ("--size", size),
        ("--classes", classes),
        ("--batch", batch),
        ("--threads", threads),
    ):
        _positive(name, value)
    _check_costs(batch, latency, device, precision, memory, optimizer)
    timing = LatencyOptions(threads, channels_last, compile) if latency else None
    report = describe_model(
        spec,
        frames=frames,
        size=size,
        classes=classes,
        batch=batch,
        latency=timing,
        device=device,
        precision=precision,
        memory=memory,
        optimizer=optimizer,
        cache=None if no_cache else CostCache(),
    )
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        _print_report(report)


def _zoo_row(spec: ModelSpec, check: bool) -> dict[str, Any]:
    from harness.report import describe_model

    published = spec.published
    if check and published is not None:
        report = describe_model(
            spec, frames=published.frames, size=published.size, classes=published.classes
        )
    else:
        report = describe_model(spec)
    row: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "input_shape": report.input_shape,
        "params": report.params,
        "params_no_norm": report.params_no_norm,
        "gflops": report.gflops,
        "gflops_all": report.gflops_all,
        "unsupported_ops": report.unsupported_ops,
    }
    if published is not None:
        row["published"] = published.model_dump(mode="json")
    if check and published is not None:
        row["matches_published"] = _matches(report, spec)
    return row


def _matches(report: ModelReport, spec: ModelSpec) -> bool:
    """Params within 0.5% and GFLOPs within 2% of the published figures (or their rounding)."""
    from harness.spec import parse_figure

    published = spec.published
    assert published is not None
    ok = True
    if published.params is not None:
        value, half_unit = parse_figure(published.params)
        ours = report.params if published.params_convention == "all" else report.params_no_norm
        ok &= abs(ours - value) <= max(0.005 * value, half_unit)
    if published.gflops is not None:
        value, half_unit = parse_figure(published.gflops)
        ours_g = report.gflops if published.gflops_convention == "compute" else report.gflops_all
        ok &= ours_g is not None and abs(ours_g - value) <= max(0.02 * value, half_unit)
    return bool(ok)


def _params_cell(row: dict[str, Any]) -> str:
    """Parameters in the convention of the published figure (* = without norm layers)."""
    if (row.get("published") or {}).get("params_convention") == "no_norm":
        return f"{row['params_no_norm'] / 1e6:.2f}M*"
    return f"{row['params'] / 1e6:.2f}M"


def zoo_command(
    as_json: Json = False,
    check: Annotated[
        bool, typer.Option("--check", help="Measure at each published input and compare.")
    ] = False,
) -> None:
    """List every zoo model with its parameters and GFLOPs."""
    from harness.spec import load_spec

    rows = []
    with console.status("measuring the zoo...", spinner="dots") if not as_json else _null():
        for name in list_zoo():
            rows.append(_zoo_row(load_spec(name), check))
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table(title="harness zoo" + (" (at the published inputs)" if check else ""))
    for column in ("name", "input", "params", "GFLOPs", "published params", "published GFLOPs"):
        table.add_column(column, justify="left" if column == "name" else "right")
    if check:
        table.add_column("match")
    for row in rows:
        pub = row.get("published") or {}
        cells = [
            row["name"],
            f"{row['input_shape'][1]}x{row['input_shape'][2]}",
            _params_cell(row),
            f"{row['gflops']:.3f}",
            str(pub.get("params", "")),
            str(pub.get("gflops", "")),
        ]
        if check:
            match = row.get("matches_published")
            cells.append("" if match is None else "yes" if match else "NO")
        table.add_row(*cells)
    console.print(table)
    console.print(
        "[dim]input: frames x crop; * parameters without normalisation layers, "
        "as the source counts them[/dim]"
    )
    if check and not all(row.get("matches_published", True) for row in rows):
        raise typer.Exit(1)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def schema_command(
    space: Annotated[
        bool, typer.Option("--space", help="The schema of a search-space file instead.")
    ] = False,
) -> None:
    """Print the JSON Schema of a spec file (for editor completion and validation).

    The same as docs/schema/spec.schema.json (--space: docs/schema/space.schema.json).
    """
    from harness.spec._jsonschema import create_spec_schema, dump_schema

    if space:
        from harness.search._jsonschema import create_space_schema  # NOTE: loads Optuna

        schema = create_space_schema()
    else:
        schema = create_spec_schema()
    typer.echo(dump_schema(schema), nl=False)


def register(app: typer.Typer) -> None:
    app.command("compile")(compile_command)
    app.command("zoo")(zoo_command)
    app.command("schema")(schema_command)


__all__ = ["register"]
