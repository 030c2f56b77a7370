"""``harness compile``, ``harness zoo`` and ``harness schema``."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from harness.costs import COSTS
from harness.errors import SpecError
from harness.zoo import list_zoo, zoo_path

if TYPE_CHECKING:
    from harness.report import ModelReport
    from harness.spec.schema import ModelSpec, PublishedSpec

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
Checkpoint = Annotated[
    str | None,
    typer.Option(
        "--checkpoint",
        help="Activation checkpointing: all, none, or stage indices (0,2,3); default: the "
        "spec's. With --batch, the step is also shown without it.",
    ),
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


def _with_checkpoint(spec: Any, option: str | None) -> Any:
    """``spec`` with the ``--checkpoint`` setting (all, none, or stage indices)."""
    from harness.spec.schema import check_references

    if option is None:
        return spec
    words: dict[str, bool | tuple[int, ...]] = {"all": True, "none": False}
    try:
        setting = words.get(option.strip().lower())
        if setting is None:
            setting = tuple(int(part) for part in option.split(",") if part.strip())
    except ValueError:
        raise SpecError(
            f"'{option}' is not all, none or stage indices such as 0,2,3",
            path=("--checkpoint",), file=CLI,
        ) from None  # fmt: skip
    changed = spec.model_copy(update={"activation_checkpoint": setting})
    try:
        check_references(changed)
    except SpecError as exc:
        raise SpecError(exc.message, path=("--checkpoint",), file=CLI) from None
    return changed


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
    named = ", ".join(f"{name} {_shape(shape)}" for name, shape in report.inputs.items())
    where = f"inputs {named}" if named else f"input {_shape(report.input_shape)}"
    table = Table(title=f"{report.name}  {where}  spec {report.spec_hash[:12]}")
    table.add_column("module")
    table.add_column("output (C x T x H x W)")
    table.add_column("params", justify="right")
    table.add_column("GFLOPs", justify="right")
    for row in report.stages:
        table.add_row(row.name, _shape(row.output_shape), f"{row.params:,}", f"{row.gflops:.3f}")
    table.add_section()
    for group in report.group_totals():  # with several pathways: each one's share
        table.add_row(f"{group.name} (sum)", "", f"{group.params:,}", f"{group.gflops:.3f}")
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
    if report.train_gflops is not None:
        console.print(
            f"{COSTS['train_gflops'].label} per clip: {report.train_gflops:.3f} (forward, "
            "a backward of twice it, and any forward that checkpointing recomputes)"
        )
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
    checkpoint: Checkpoint = None,
) -> None:
    """Compile a spec and print its per-stage shapes, parameters and GFLOPs.

    With --batch, also the peak memory and the FLOPs of a training step; with --latency,
    inference and forward+backward times. With activation checkpointing (the spec's or
    --checkpoint) and --batch, the same step without it beside. Costs are cached by spec
    hash (see harness.measure.cache).
    """
    from harness.localization.costs import is_localization_ref
    from harness.measure import CostCache
    from harness.report import LatencyOptions, describe_model
    from harness.spec import load_spec

    if is_localization_ref(spec):
        _compile_localizer(spec, classes, as_json)
        return

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
    loaded = _with_checkpoint(load_spec(spec), checkpoint)
    report = describe_model(
        loaded,
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
    plain = None
    if batch is not None and report.activation_checkpoint:
        plain = _plain_step(loaded, report, optimizer, precision, device, no_cache)
    if as_json:
        typer.echo(json.dumps({**report.to_json(), **(plain or {})}))
        return
    _print_report(report)
    _print_front_end(loaded)
    if plain is not None:
        _print_checkpointing(report, plain)


def _print_front_end(spec: ModelSpec) -> None:
    """What the data loader computes for a spectrogram input (not part of the network)."""
    from harness.data.audio import front_end_macs
    from harness.train import audio_settings

    settings = audio_settings(spec)
    if settings is not None:
        console.print(
            f"spectrogram front-end (data loader, not in gflops): "
            f"{front_end_macs(settings) / 1e9:.6f} GFLOPs per clip ({settings.frames} frames "
            f"of a {settings.n_fft}-point FFT and {settings.mels} mel bands)"
        )


def _compile_localizer(ref: str, classes: int | None, as_json: bool) -> None:
    """A localization spec's costs per window: parameters and GFLOPs (with its backbone)."""
    from harness.localization.costs import count_localizer, load_localization_spec

    spec = load_localization_spec(ref)
    costs = count_localizer(spec, classes=classes)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "name": spec.name,
                    "task": spec.task,
                    **asdict(costs),
                    "gflops": costs.gflops,
                    "total_gflops": costs.total_gflops,
                }
            )
        )
        return  # fmt: skip
    head = spec.head.type if spec.neck is None else f"{spec.neck.type} + {spec.head.type}"
    console.print(
        f"{spec.name} (localization, {head}): a window of {spec.input.steps} feature steps of "
        f"{spec.input.width} channels"
    )
    console.print(f"parameters {costs.params:,} trainable; fixed buffers {costs.buffer_values:,} "
                  "values")  # fmt: skip
    console.print(f"GFLOPs per window {costs.gflops:.4f} (1 multiply-add = 1 FLOP, meta tensors)")
    if spec.input.backbone is not None:
        console.print(
            f"with its backbone {spec.input.backbone} ({spec.input.steps} clips of "
            f"{spec.input.window} frames): {costs.total_gflops:.3f} GFLOPs per window"
        )


def _plain_step(
    spec: Any, report: ModelReport, optimizer: str, precision: str, device: str, no_cache: bool
) -> dict[str, float]:
    """The simulated training step of ``spec`` without activation checkpointing."""
    from harness.costs import CostRequest, measure_costs
    from harness.measure import CostCache

    assert report.train_memory is not None, "a batch was given"
    _, frames, size, _ = report.input_shape
    request = CostRequest(
        frames=frames, size=size, classes=report.classes, batch=report.train_memory.batch,
        optimizer=optimizer, precision=precision, device=device,
    )  # fmt: skip
    plain = spec.model_copy(update={"activation_checkpoint": False})
    row = measure_costs(plain, request, cache=None if no_cache else CostCache())
    return {
        "plain_train_memory_mb": float(row.values["train_memory_mb"]),
        "plain_train_gflops": float(row.values["train_gflops"]),
    }


def _print_checkpointing(report: ModelReport, plain: dict[str, float]) -> None:
    memory = report.train_memory
    assert memory is not None and memory.peak_mb is not None and report.train_gflops is not None
    stages = ", ".join(str(i) for i in report.activation_checkpoint)
    before, flops = plain["plain_train_memory_mb"], plain["plain_train_gflops"]
    console.print(
        f"activation checkpointing (stages {stages}): training step {memory.peak_mb:,.1f} MiB "
        f"vs {before:,.1f} MiB without ({memory.peak_mb / before:.2f}x), "
        f"{report.train_gflops:.3f} vs {flops:.3f} training GFLOPs "
        f"({report.train_gflops / flops:.2f}x)  (without: meta_simulation)"
    )


@dataclass(frozen=True)
class ZooRow:
    """One zoo model: its published figures and, with ``--check``, ours at their input."""

    name: str
    description: str
    published: PublishedSpec | None  # the figures, their input (frames, size, classes), source
    report: ModelReport | None = None  # --check: ours, at the published input where there is one

    @property
    def matches(self) -> bool | None:
        """Whether our figures match the published ones; None where either is missing."""
        if self.report is None or self.published is None:
            return None
        return _matches(self.report, self.published)

    def to_json(self) -> dict[str, Any]:
        """``name``, ``description``, ``published``; with a report, our figures beside them."""
        published = self.published
        data: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "published": None if published is None else published.model_dump(mode="json"),
        }
        report = self.report
        if report is None:
            return data
        data |= {
            "input_shape": report.input_shape,
            "params": report.params,
            "params_no_norm": report.params_no_norm,
            "gflops": report.gflops,
            "gflops_all": report.gflops_all,
            "unsupported_ops": report.unsupported_ops,
        }
        if published is not None:
            data["matches_published"] = self.matches
        return data


def _zoo_row(name: str, check: bool) -> ZooRow:
    """Zoo model ``name`` as its YAML states it; measured (a build and a trace) on ``check``."""
    from harness.spec import load_spec

    spec = load_spec(name)
    published = spec.published
    report = None
    if check:
        from harness.report import describe_model

        if published is None:  # nothing to compare: the spec's own clip
            report = describe_model(spec)
        else:
            report = describe_model(
                spec, frames=published.frames, size=published.size, classes=published.classes
            )
    return ZooRow(spec.name, spec.description, published, report)


def _ours(report: ModelReport, published: PublishedSpec) -> tuple[int, float | None]:
    """Our parameters and GFLOPs in the conventions of the published figures."""
    params = report.params if published.params_convention == "all" else report.params_no_norm
    gflops = report.gflops if published.gflops_convention == "compute" else report.gflops_all
    return params, gflops


def _matches(report: ModelReport, published: PublishedSpec) -> bool:
    """Params within 0.5% and GFLOPs within 2% of the published figures (or their rounding)."""
    from harness.spec import parse_figure

    params, gflops = _ours(report, published)
    ok = True
    if published.params is not None:
        value, half_unit = parse_figure(published.params)
        ok &= abs(params - value) <= max(0.005 * value, half_unit)
    if published.gflops is not None:
        value, half_unit = parse_figure(published.gflops)
        ok &= gflops is not None and abs(gflops - value) <= max(0.02 * value, half_unit)
    return bool(ok)


def _figure(value: int | float | str | None) -> str:
    """A published figure as printed in its source (an integer with thousands separators)."""
    if value is None:
        return ""
    return f"{value:,}" if isinstance(value, int) else str(value)


def _published_cells(row: ZooRow) -> list[str]:
    """params, GFLOPs, input (frames x size), classes, convention: of the figures, or of
    our measurement where the spec publishes none."""
    pub, report = row.published, row.report
    if pub is None:
        where = ["", ""]
        if report is not None:
            _, frames, size, _ = report.input_shape
            where = [f"{frames}x{size}", str(report.classes)]
        return ["", "", *where, ""]
    return [
        _figure(pub.params),
        _figure(pub.gflops),
        f"{pub.frames}x{pub.size}",
        str(pub.classes),
        f"{pub.params_convention}, {pub.gflops_convention}",
    ]


def _our_cells(row: ZooRow) -> list[str]:
    """Our params and GFLOPs, in the published conventions, and whether they match."""
    pub, report = row.published, row.report
    assert report is not None, "measured with --check"
    params, gflops = _ours(report, pub) if pub else (report.params, report.gflops)
    match = {None: "", True: "yes", False: "NO"}[row.matches]
    return [f"{params:,}", "" if gflops is None else f"{gflops:.3f}", match]


ZOO_COLUMNS = ("name", "params", "GFLOPs", "input", "classes", "convention")
CHECK_COLUMNS = ("params, ours", "GFLOPs, ours", "match")


def _zoo_table(rows: list[ZooRow], check: bool) -> Table:
    title = "harness zoo: published figures"
    if check:
        title += ", and ours measured at the same input"
    table = Table(title=title)
    for column in ZOO_COLUMNS + (CHECK_COLUMNS if check else ()):
        left = column in ("name", "convention")
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    for row in rows:
        table.add_row(row.name, *_published_cells(row), *(_our_cells(row) if check else ()))
    return table


def _print_wide(table: Table) -> None:
    """``table`` in full, wider than the terminal where it must be: a name or a figure
    is never cut short (a narrow terminal wraps the lines instead)."""
    from rich.measure import Measurement

    need = Measurement.get(console, console.options.update_width(10_000), table).maximum
    if need <= console.width:
        console.print(table)
    else:  # NOTE: Console.print(width=) cannot go past the console's own width
        Console(width=need).print(table)


ZOO_NOTE = (
    "From each zoo file's published: block. input: frames x crop size; convention: the "
    "parameters counted (all, or no_norm: without normalisation layers), then the GFLOPs "
    "(compute: conv/linear/matmul/attention multiply-adds; all: with norms and pooling)"
)


def zoo_command(
    names: Annotated[
        list[str] | None,
        typer.Argument(metavar="[NAME]...", help="Zoo models to show (default: every one)."),
    ] = None,
    as_json: Json = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Build each model, measure it at its published input, compare."
        ),
    ] = False,
) -> None:
    """List the zoo models with their published parameters and GFLOPs, and their input.

    Read from the YAML files, nothing built; --check measures each model at its published
    input (minutes for the whole zoo) and exits 1 when a figure does not match.
    """
    for name in names or ():
        zoo_path(name)  # NOTE: an unknown name is one line and exit 2, before any work
    busy = check and not as_json
    with console.status("measuring the zoo...") if busy else contextlib.nullcontext():
        rows = [_zoo_row(name, check) for name in names or list_zoo()]
    if as_json:
        typer.echo(json.dumps([row.to_json() for row in rows]))
    else:
        _print_wide(_zoo_table(rows, check))
        console.print(f"[dim]{ZOO_NOTE}[/dim]")
    if any(row.matches is False for row in rows):
        raise typer.Exit(1)


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
