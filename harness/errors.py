"""The error types users see.

Every mistake in user input (a spec file, a search space, a command-line value) raises
:class:`SpecError`, which carries where the mistake is: file, line, column and the key path
inside the document. The command line prints ``str(error)`` as one line and exits with
status 2; no traceback reaches the user.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "HarnessError",
    "Interrupted",
    "Location",
    "SpecError",
    "format_key_path",
    "one_line",
    "shorten",
    "warn",
]


class HarnessError(Exception):
    """Base class of every error harness raises on purpose."""

    exit_code = 2  # the command line's exit status for it


class Interrupted(HarnessError):
    """Work stopped by SIGINT or SIGTERM, with what was kept and how to go on (exit 130)."""

    exit_code = 130


def warn(message: str) -> None:
    """One line on stderr, ``harness: warning: ...``: something the user should know that
    does not stop the work."""
    sys.stderr.write(f"harness: warning: {one_line(message)}\n")
    sys.stderr.flush()


@dataclass(frozen=True)
class Location:
    """A position in a source file (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def format_key_path(path: Sequence[str | int]) -> str:
    """``("stages", 2, "block", "type")`` -> ``stages.2.block.type``."""
    return ".".join(str(part) for part in path) or "<root>"


class SpecError(HarnessError):
    """Bad user input: one readable line naming where it is and what is wrong.

    Args:
        message: what is wrong, in the user's terms.
        path: key path inside the document (``("stages", 0, "depth")``).
        location: file position of that key, when known.
        file: the file name, when the position is not known.
    """

    def __init__(
        self,
        message: str,
        *,
        path: Sequence[str | int] = (),
        location: Location | None = None,
        file: str | None = None,
    ) -> None:
        self.message = message
        self.path = tuple(path)
        self.location = location
        self.file = file if file is not None else (location.file if location else None)
        super().__init__(self._render())

    def _render(self) -> str:
        where = str(self.location) if self.location else (self.file or "<input>")
        return one_line(f"{where}: {format_key_path(self.path)}: {self.message}")


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped, so it prints as one
    line whatever a user wrote in a key or value (``"a\nb"`` -> ``a\\nb``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def shorten(text: str, limit: int = 80) -> str:
    """``text``, or its start and its length where it is longer than ``limit`` characters: a
    name a user wrote, quoted in a message that must stay one readable line."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"
