"""harness: declarative architecture search and benchmarking for video networks.

The top-level names load lazily, so that light modules (``harness.results``, which the
dashboard reads) import without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "HarnessError": "harness.errors",
    "SpecError": "harness.errors",
    "ModelSpec": "harness.spec",
    "expand": "harness.spec",
    "load_spec": "harness.spec",
    "realise": "harness.spec",
    "spec_hash": "harness.spec",
    "list_zoo": "harness.zoo",
    "build_model": "harness.compiler",
}

__all__ = [
    "HarnessError",
    "ModelSpec",
    "SpecError",
    "__version__",
    "build_model",
    "expand",
    "list_zoo",
    "load_spec",
    "realise",
    "spec_hash",
]

if TYPE_CHECKING:
    from harness.compiler import build_model
    from harness.errors import HarnessError, SpecError
    from harness.spec import ModelSpec, expand, load_spec, realise, spec_hash
    from harness.zoo import list_zoo


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
