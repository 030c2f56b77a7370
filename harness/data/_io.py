"""Small file helpers shared by the data caches."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["cache_file", "file_identity", "save_array"]


def file_identity(path: Path) -> str:
    """What names a file's contents without reading them: its resolved path, size and
    modification time (a file rewritten in place is another file)."""
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def cache_file(path: Path, kind: str, *settings: object, cache_dir: Path) -> Path:
    """``cache_dir/kind/HASH.npy``: the cache of what ``kind`` computes from the file at
    ``path`` with ``settings`` (flow, a sound track), keyed by :func:`file_identity`."""
    key = "|".join([file_identity(path), *(str(s) for s in settings)])
    return cache_dir / kind / f"{hashlib.sha1(key.encode()).hexdigest()}.npy"


def save_array(array: np.ndarray, target: Path) -> None:
    """Write ``array`` to ``target`` (``.npy``) atomically.

    The array goes to a temporary file in the same folder, then is renamed over the
    target, so that concurrent data-loader workers never read half a file.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=target.parent, suffix=".npy.tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            np.save(f, array)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
