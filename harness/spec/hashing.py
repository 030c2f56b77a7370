"""The spec hash: the key of results rows, caches and duplicate detection."""

from __future__ import annotations

import hashlib
import json

from harness.spec.expand import realise
from harness.spec.schema import ModelSpec

__all__ = ["canonical_json", "spec_hash"]


def canonical_json(spec: ModelSpec) -> str:
    """Canonical JSON of the realised architecture (sorted keys, no spaces)."""
    return json.dumps(realise(spec).architecture(), sort_keys=True, separators=(",", ":"))


def spec_hash(spec: ModelSpec) -> str:
    """sha256 of :func:`canonical_json`, as 64 hex digits."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()
