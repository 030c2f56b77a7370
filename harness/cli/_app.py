"""The typer application every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="harness",
    help="Declarative architecture search and benchmarking for video networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
