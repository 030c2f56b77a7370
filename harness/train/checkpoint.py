"""Checkpoints: written atomically every epoch, read back with ``weights_only=True``.

A checkpoint holds only tensors and plain data (numbers, strings, lists, dicts), so
loading it never runs code from the file (``torch.load(..., weights_only=True)``). A file
at the checkpoint's place that is not one harness wrote (another program's, a pickle that
would build objects) is a :class:`CheckpointError` and is left exactly as it is.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.errors import HarnessError

__all__ = [
    "CHECKPOINT_NAME",
    "OUT_FILES",
    "CheckpointError",
    "load_checkpoint",
    "out_dir_problem",
    "save_checkpoint",
    "weights_digest",
]

CHECKPOINT_NAME = "last.pt"  # the latest good checkpoint in a run's output folder
OUT_FILES = (CHECKPOINT_NAME, "metrics.jsonl", "result.json")  # what a run writes there
FORMAT = 1  # bumped when the checkpoint layout changes


class CheckpointError(HarnessError):
    """A file where a run's checkpoint belongs that harness cannot (safely) load."""


def out_dir_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot take a run's files (in words), or None when it can.

    Checked before training, so that a run never trains for hours and then fails to save.
    """
    nearest = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if nearest is not None and not nearest.is_dir():
        return f"{nearest} is {'a file' if nearest.is_file() else 'something else'}, not a folder"
    for name in OUT_FILES:
        path = folder / name
        if (path.exists() or path.is_symlink()) and not path.is_file():
            what = "a folder" if path.is_dir() else "not a regular file"
            return f"{path} is {what}, where the run writes a file"
    return None


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        torch.save({"format": FORMAT, **payload}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write (a full disk) leaves nothing behind


def _refusal(exc: Exception) -> str:
    if isinstance(exc, pickle.UnpicklingError) and "weights_only" in str(exc).lower():
        # NOTE: torch's own message advises weights_only=False, i.e. running the file's code
        return "it holds Python objects that loading would build (running code from the file)"
    return f"it is not a checkpoint harness wrote ({type(exc).__name__})"


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (on the CPU), or None when there is none.

    Returns the payload of a checkpoint of another ``format`` too; the caller compares.

    Raises:
        CheckpointError: the file is not a checkpoint harness wrote, or loading it would
            have to build Python objects; the file is left untouched.
    """
    if not path.is_file():
        return None
    try:
        with warnings.catch_warnings():  # NOTE: torch warns before failing on foreign files
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # NOTE: torch.load raises many types on foreign bytes
        reason = _refusal(exc)
        raise CheckpointError(f"{path}: not loaded: {reason}; move it away") from None
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(
            f"{path}: not loaded: it is not a checkpoint harness wrote; move it away"
        )
    return payload


def weights_digest(model: nn.Module) -> str:
    """sha256 of every parameter and buffer, in ``state_dict`` order (bit-exact identity)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()
