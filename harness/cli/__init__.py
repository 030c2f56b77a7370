"""The ``harness`` command line.

Every command turns a :class:`~harness.errors.HarnessError` into one line on stderr and
exit status 2 (usage errors too); no traceback reaches the user.
"""

from __future__ import annotations

import sys

import typer

# NOTE: `harness --help` imports every command module, so they import torch, optuna, pandas
# and the like inside the functions that use them: help then takes a fraction of a second
# instead of seconds (tests/cli/test_lazy_imports.py holds that line).
import harness.cli._data  # noqa: F401  (registers `harness data` on import)
from harness.cli import (
    _dashboard,
    _expand,
    _export,
    _features,
    _localization,
    _models,
    _search,
    _storage,
    _train,
)
from harness.cli._app import app
from harness.errors import HarnessError, Interrupted

__all__ = ["app", "main"]

_models.register(app)
_train.register(app)
_dashboard.register(app)
_search.register(app)
_export.register(app)
_expand.register(app)
_storage.register(app)
_localization.register(app)
_features.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``harness`` console script."""
    try:
        code = app(args=argv, prog_name="harness", standalone_mode=False)
        # NOTE: without standalone mode, click returns a command's exit code (typer.Exit);
        # typer turns a KeyboardInterrupt outside a search into a silent Exit(130).
        if code == Interrupted.exit_code:
            sys.stderr.write("harness: interrupted (SIGINT, Ctrl-C)\n")
        if isinstance(code, int) and code:
            sys.exit(code)
    except HarnessError as exc:
        sys.stderr.write(f"harness: {exc}\n")
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.stderr.write("harness: interrupted\n")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.stderr.write("harness: interrupted\n")
        sys.exit(130)
    except typer.exceptions.TyperException as exc:  # usage errors: one line, as the others
        if type(exc).__name__ == "NoArgsIsHelpError":  # NOTE: `harness` alone shows the help
            exc.show()  # type: ignore[attr-defined]
        else:
            sys.stderr.write(f"harness: {_usage_line(exc)}\n")
        sys.exit(getattr(exc, "exit_code", 2))


def _usage_line(exc: Exception) -> str:
    """``<command line>: message (see: harness CMD --help)``, on one line.

    NOTE: typer vendors click; its usage errors carry ``format_message()`` and ``ctx``.
    """
    format_message = getattr(exc, "format_message", None)
    text = format_message() if format_message is not None else str(exc)
    message = " ".join(str(text).split())
    context = getattr(exc, "ctx", None)
    command = context.command_path if context is not None else "harness"
    return f"<command line>: {message} (see: {command} --help)"
