"""The model zoo: published architectures as YAML files shipped with the package."""

from __future__ import annotations

from pathlib import Path

from harness.errors import SpecError
from harness.registry import suggest

__all__ = ["ZOO_DIR", "list_zoo", "zoo_path"]

ZOO_DIR = Path(__file__).parent


def list_zoo() -> list[str]:
    """Names of every zoo spec, sorted."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.yaml"))


def zoo_path(name: str) -> Path:
    """The YAML file of zoo entry ``name``."""
    path = ZOO_DIR / f"{name}.yaml"
    if not path.is_file():
        known = list_zoo()
        raise SpecError(
            f"'{name}' is neither a zoo name nor a YAML file{suggest(name, known)}; "
            f"zoo: {', '.join(known)}",
            file=name,
        )
    return path
