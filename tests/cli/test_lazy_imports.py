"""``import harness.cli`` and ``--help`` stay light: no torch, Optuna or pandas.

Each check runs in a fresh interpreter, since this one has imported them long ago.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import typer

from harness.cli import app

HEAVY = ("torch", "optuna", "pandas", "fvcore", "av", "streamlit", "plotly")

# Prints, as the last line of stdout, the heavy packages that `import harness.cli` and then
# `harness ARGV...` (if any) loaded.
SCRIPT = """\
import json, sys
import harness.cli
try:
    if sys.argv[1:]:
        harness.cli.main(sys.argv[1:])
except SystemExit:
    pass
print()
print(json.dumps([name for name in {heavy!r} if name in sys.modules]))
"""


def _heavy_imports(*argv: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(heavy=HEAVY), *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def _command_paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group below ``group``, as the words that name it."""
    # NOTE: duck-typed on `.commands`: typer ships its own copy of click, so a group is not
    # necessarily a `click.Group`.
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if hasattr(command, "commands"):
            paths += _command_paths(command, (*prefix, name))
    return paths


COMMANDS = _command_paths(typer.main.get_group(app))


def test_importing_the_cli_loads_no_heavy_package() -> None:
    assert _heavy_imports() == []


@pytest.mark.parametrize("command", [(), *COMMANDS], ids=lambda c: " ".join(c) or "harness")
def test_help_loads_no_heavy_package(command: tuple[str, ...]) -> None:
    assert _heavy_imports(*command, "--help") == []


def test_every_command_is_checked() -> None:
    # NOTE: guards the generated list above, so that a broken walk cannot pass vacuously.
    assert {"compile", "search", "expand", "train", "dashboard", "data", "data export"} <= {
        " ".join(c) for c in COMMANDS
    }
