"""Checkpoints: written atomically every epoch, read back with ``weights_only=True``.

A checkpoint holds only tensors and plain data (numbers, strings, lists, dicts), so
loading it never runs code from the file (``torch.load(..., weights_only=True)``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["CHECKPOINT_NAME", "load_checkpoint", "save_checkpoint", "weights_digest"]

CHECKPOINT_NAME = "last.pt"  # the latest good checkpoint in a run's output folder
FORMAT = 1  # bumped when the checkpoint layout changes


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        torch.save({"format": FORMAT, **payload}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write (a full disk) leaves nothing behind


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (on the CPU), or None when there is none or it is stale."""
    if not path.is_file():
        return None
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        return None
    return payload


def weights_digest(model: nn.Module) -> str:
    """sha256 of every parameter and buffer, in ``state_dict`` order (bit-exact identity)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()
