"""``harness dashboard``: the Streamlit dashboard over a results directory.

Runs ``python -m streamlit run dashboard/app.py -- --results DIR`` in the foreground (on
POSIX it replaces this process). The dashboard only reads the results store, so it is safe to
start while a search is still writing to it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from harness.errors import HarnessError, SpecError

# dashboard/ sits beside harness/: in the source tree, and in site-packages once installed.
APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


def streamlit_command(results: Path, *, port: int, host: str, app: Path = APP) -> list[str]:
    """The command line that serves the dashboard of ``results`` on ``host:port``."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--",
        "--results",
        str(results),
    ]


def dashboard_command(
    results: Annotated[
        Path, typer.Option("--results", help="Results directory (one folder per study).")
    ] = Path("results"),
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve on.")] = 8501,
    host: Annotated[
        str,
        typer.Option("--host", help="Address to bind; the default serves this machine only."),
    ] = "127.0.0.1",
) -> None:
    """Serve the results dashboard (Pareto fronts, trial detail, progress) in a browser."""
    if not APP.is_file():
        raise HarnessError(f"the dashboard is not installed: {APP} is missing")
    results = results.expanduser().resolve()
    if not results.is_dir():
        why = "is not a directory" if results.exists() else "does not exist"
        raise SpecError(
            f"results directory {results} {why}: run a search first (its --results), or give "
            "the folder that holds the studies",
            path=("--results",),
            file="<command line>",
        )
    typer.echo(f"harness dashboard: {results} on http://{host}:{port} (Ctrl+C to stop)")
    command = streamlit_command(results, port=port, host=host)
    if os.name == "posix":
        # NOTE: streamlit replaces this process, so a signal (Ctrl+C, a test's terminate)
        # reaches the server itself and no orphaned server outlives the command.
        sys.stdout.flush()
        os.execv(command[0], command)
    code = subprocess.call(command)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard_command)


__all__ = ["register", "streamlit_command"]
