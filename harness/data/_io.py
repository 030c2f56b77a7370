"""Small file helpers shared by the data caches."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["save_array"]


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
