"""The documents generated from the typed models: JSON Schemas and references.

    python -m harness._docs            rewrite them under docs/
    python -m harness._docs --check    list the stale ones, exit 1 if any

The zoo and search-space files point editors at the schemas with a first line such as
``# yaml-language-server: $schema=../../docs/schema/spec.schema.json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from harness.search._jsonschema import create_space_schema
from harness.search._reference import create_space_reference
from harness.spec._jsonschema import create_spec_schema, dump_schema
from harness.spec._reference import create_spec_reference

__all__ = ["GENERATED", "ROOT", "create_docs", "stale_docs", "write_docs"]

ROOT = Path(__file__).resolve().parents[1]  # the repository (docs/ lives beside harness/)

# Path under the repository -> the function that makes its text.
GENERATED: dict[str, Callable[[], str]] = {
    "docs/schema/spec.schema.json": lambda: dump_schema(create_spec_schema()),
    "docs/schema/space.schema.json": lambda: dump_schema(create_space_schema()),
    "docs/spec-reference.md": create_spec_reference,
    "docs/space-reference.md": create_space_reference,
}


def create_docs() -> dict[str, str]:
    """The text of every generated document, by path under the repository."""
    return {path: create() for path, create in GENERATED.items()}


def stale_docs(root: Path = ROOT) -> list[str]:
    """The generated documents under ``root`` that are missing or differ from the models."""
    stale = []
    for path, text in create_docs().items():
        file = root / path
        if not file.is_file() or file.read_text(encoding="utf-8") != text:
            stale.append(path)
    return stale


def write_docs(root: Path = ROOT) -> list[str]:
    """Write every generated document under ``root``; returns the paths that changed."""
    changed = []
    for path, text in create_docs().items():
        file = root / path
        if file.is_file() and file.read_text(encoding="utf-8") == text:
            continue
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
        changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness._docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only list the stale documents")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_docs()
        for path in stale:
            print(f"stale: {path} (regenerate with python -m harness._docs)")
        return 1 if stale else 0
    for path in write_docs():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
