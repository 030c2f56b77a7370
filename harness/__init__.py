"""harness: declarative architecture search and benchmarking for video networks."""

from harness.compiler import build_model
from harness.errors import HarnessError, SpecError
from harness.spec import ModelSpec, expand, load_spec, realise, spec_hash
from harness.zoo import list_zoo

__version__ = "0.1.0"

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
