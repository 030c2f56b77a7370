"""Reading annotation files (text lists, CSV, JSON): a file that cannot be read is a
:class:`~harness.errors.SpecError` naming the file and line (``train.csv:12``), traced to
the data spec's ``root``; the layouts decide what the lines mean."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.errors import Location, SpecError

__all__ = [
    "CsvRow",
    "annotation_error",
    "cell_seconds",
    "load_json",
    "numbered_lines",
    "read_csv",
]

ROOT = ("data", "root")  # the data-spec key that led to every annotation file


def annotation_error(message: str, file: Path, line: int | None = None) -> SpecError:
    """A SpecError at ``file`` (and ``line``), traced to the data spec's ``root``."""
    where = f"{file}:{line}" if line is not None else str(file)
    return SpecError(message, path=ROOT, file=where)


def _read_text(file: Path) -> str:
    """A text file (UTF-8); anything else is a SpecError naming the line."""
    data = file.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise annotation_error("not UTF-8 text (is this an annotation file?)", file, line) from None


def numbered_lines(file: Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped line) of every non-blank line of a text file."""
    # NOTE: split on newlines only: str.splitlines() also splits on \x1c, \v, ... and would
    # number the lines differently from an editor.
    for number, line in enumerate(_read_text(file).split("\n"), start=1):
        if line.strip():
            yield number, line.strip()


@dataclass(frozen=True)
class CsvRow:
    """One row of a CSV file with a header, and where it is."""

    file: Path
    line: int  # line number in the file (the row's last line)
    fields: dict[str, str]  # column -> value, both stripped


def read_csv(file: Path) -> Iterator[CsvRow]:
    """The rows of a CSV file with a header line."""
    reader = csv.DictReader(io.StringIO(_read_text(file), newline=""))
    try:
        for row in reader:
            fields = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            yield CsvRow(file, reader.line_num, fields)
    except csv.Error as exc:
        raise annotation_error(f"not a CSV row: {exc}", file, reader.line_num) from None


def cell_seconds(row: CsvRow, column: str) -> float | None:
    """The time in seconds in ``column`` of ``row`` (None when the cell is empty)."""
    text = row.fields.get(column, "")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise SpecError(
            f"'{text}' is not a time in seconds (a finite number, 0 or more)",
            path=(column,),
            file=f"{row.file}:{row.line}",
        )
    return value


def load_json(file: Path) -> object:
    """The JSON document in ``file``."""
    try:
        return json.loads(file.read_bytes())
    except json.JSONDecodeError as exc:
        where = Location(str(file), exc.lineno, exc.colno)
        raise SpecError(f"not JSON: {exc.msg}", path=ROOT, location=where) from None
    except ValueError as exc:  # NOTE: UnicodeDecodeError
        raise SpecError(f"not JSON: {exc}", path=ROOT, file=str(file)) from None
    except RecursionError:
        raise SpecError("JSON nested too deeply", path=ROOT, file=str(file)) from None
