"""A cache of cost results, so that no cost is computed twice.

A result is keyed by what determines it: the spec hash, the input shape (one clip), the
batch, the device, the precision, what was computed (``kind``: ``precheck``,
``train_memory/meta_simulation``, ``latency``, ...) and its remaining settings (optimizer,
threads, ...), plus the versions of the cost model and of PyTorch. Results are stored as
JSON in one SQLite file, which several search workers may share.

The directory is ``$HARNESS_CACHE_DIR``, else ``results/.cache`` (relative to the working
directory).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch

from harness.errors import SpecError

__all__ = ["CACHE_ENV", "COST_MODEL_VERSION", "CostCache", "CostKey", "default_cache_dir"]

CACHE_ENV = "HARNESS_CACHE_DIR"
# Bump when a cost's definition changes, so that older results are not reused.
COST_MODEL_VERSION = 1


def default_cache_dir() -> Path:
    """``$HARNESS_CACHE_DIR``, else ``results/.cache``."""
    return Path(os.environ.get(CACHE_ENV) or Path("results") / ".cache")


@dataclass(frozen=True)
class CostKey:
    """What a cost result depends on."""

    spec_hash: str
    input_shape: tuple[int, ...]  # (C, T, H, W) of one clip
    batch: int
    device: str
    precision: str
    kind: str  # what was computed: "precheck", "train_memory/<method>", "latency", ...
    options: Mapping[str, Any] = field(default_factory=dict)  # other settings (optimizer, ...)

    @classmethod
    def of(
        cls,
        spec_hash: str,
        input_shape: Sequence[int],
        *,
        batch: int,
        device: str,
        precision: str,
        kind: str,
        **options: Any,
    ) -> CostKey:
        return cls(spec_hash, tuple(input_shape), batch, device, precision, kind, options)

    def digest(self) -> str:
        """sha256 of the key's canonical JSON, with the cost model's and PyTorch's versions."""
        data = {
            **asdict(self),
            "options": dict(self.options),
            "versions": [COST_MODEL_VERSION, torch.__version__],
        }
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


class _Result(Protocol):
    def to_json(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=_Result)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS costs (
    digest TEXT PRIMARY KEY,
    spec_hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL
)
"""


_SQLITE_HEADER = b"SQLite format 3\x00"
_COLUMNS = ("digest", "spec_hash", "kind", "key", "value", "created")


class CostCache:
    """Cost results in ``<directory>/costs.sqlite``, with an in-process copy of every hit.

    Args:
        directory: where the database lives (default: :func:`default_cache_dir`).
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.path = self.directory / "costs.sqlite"
        self._memory: dict[str, dict[str, Any]] = {}
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self._check()
        try:
            connection = sqlite3.connect(self.path, timeout=60)
            if not self._ready:
                with connection:
                    connection.execute("PRAGMA journal_mode=WAL")
                    connection.execute(_SCHEMA)
                self._ready = True
        except sqlite3.Error as exc:
            raise self._error(f"cannot open the cost cache ({exc})") from None
        return connection

    def _error(self, message: str, file: Path | None = None) -> SpecError:
        return SpecError(
            f"{message}; it holds only derived costs: point {CACHE_ENV} at another folder, "
            "or move the file away and run again",
            path=(CACHE_ENV,),
            file=str(file or self.path),
        )

    def _check(self) -> None:
        """Refuse a cache folder that is a file, or a ``costs.sqlite`` that is not ours,
        before anything writes to it (opening in WAL mode would change another's file)."""
        if self.directory.exists() and not self.directory.is_dir():
            raise self._error("is not a folder", self.directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._error(f"cannot create it ({exc.strerror or exc})", self.directory) from None
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        if not self.path.is_file():
            raise self._error("is not a file")
        with open(self.path, "rb") as f:
            if f.read(len(_SQLITE_HEADER)) != _SQLITE_HEADER:
                raise self._error("is not a SQLite database")
        try:
            with contextlib.closing(
                sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            ) as db:
                columns = [row[1] for row in db.execute("PRAGMA table_info(costs)")]
        except sqlite3.Error as exc:
            raise self._error(f"is a damaged SQLite database ({exc})") from None
        if columns and columns != list(_COLUMNS):
            raise self._error(
                f"has a 'costs' table with the columns {columns}, not a harness cost cache's"
            )

    def get(self, key: CostKey) -> dict[str, Any] | None:
        """The stored result for ``key``, or None."""
        digest = key.digest()
        if digest in self._memory:
            return self._memory[digest]
        connection = self._connect()
        try:
            row = connection.execute(
                "SELECT value FROM costs WHERE digest = ?", (digest,)
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise self._error(f"cannot read the cost cache ({exc})") from None
        finally:
            connection.close()
        if row is None:
            return None
        value: dict[str, Any] = json.loads(row[0])
        self._memory[digest] = value
        return value

    def put(self, key: CostKey, value: dict[str, Any]) -> None:
        """Store ``value`` (JSON-serialisable) as the result for ``key``."""
        digest = key.digest()
        data = {**asdict(key), "options": dict(key.options)}
        connection = self._connect()
        try:
            with connection:
                connection.execute(
                    "INSERT OR REPLACE INTO costs VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        digest,
                        key.spec_hash,
                        key.kind,
                        json.dumps(data, sort_keys=True),
                        json.dumps(value, sort_keys=True),
                        time.time(),
                    ),
                )
        except sqlite3.DatabaseError as exc:
            raise self._error(f"cannot write the cost cache ({exc})") from None
        finally:
            connection.close()
        self._memory[digest] = value

    def load(self, key: CostKey, decode: Callable[[dict[str, Any]], R]) -> R | None:
        """The stored result for ``key`` as ``decode`` reads it; None when there is none, or
        one ``decode`` cannot read (written by another version of a result's fields): it is
        measured again and replaced."""
        stored = self.get(key)
        if stored is None:
            return None
        try:
            return decode(stored)
        except (TypeError, KeyError, ValueError):
            self._memory.pop(key.digest(), None)
            return None

    def get_or_compute(
        self, key: CostKey, compute: Callable[[], R], load: Callable[[dict[str, Any]], R]
    ) -> R:
        """The cached result for ``key`` (see :meth:`load`); else ``compute()``, stored
        before it is returned."""
        stored = self.load(key, load)
        if stored is not None:
            return stored
        result = compute()
        self.put(key, result.to_json())
        return result

    def __len__(self) -> int:
        connection = self._connect()
        try:
            (count,) = connection.execute("SELECT COUNT(*) FROM costs").fetchone()
        finally:
            connection.close()
        return int(count)
