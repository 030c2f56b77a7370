"""The model zoo: published architectures as YAML files shipped with the package."""

from __future__ import annotations

from pathlib import Path

from harness.errors import SpecError, shorten
from harness.registry import suggest

__all__ = ["ZOO_DIR", "list_zoo", "zoo_path"]

ZOO_DIR = Path(__file__).parent


def list_zoo() -> list[str]:
    """Names of every zoo spec, sorted."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.yaml"))


def zoo_path(name: str) -> Path:
    """The YAML file of zoo entry ``name``.

    Raises:
        SpecError: at ``<zoo>: NAME``, with the names that are close and every zoo name.
    """
    known = list_zoo()
    # NOTE: only a known name reaches the file system: a name of 1 MB, or one with '..' in
    # it, is an unknown name like any other.
    if name not in known:
        raise SpecError(
            f"neither a zoo name nor a YAML file{suggest(name, known)}; zoo: {', '.join(known)}",
            path=(shorten(name),),
            file="<zoo>",
        )
    return ZOO_DIR / f"{name}.yaml"
