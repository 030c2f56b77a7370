"""The generated documents (JSON Schemas, references) match the models they come from."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness._docs import GENERATED, ROOT, create_docs, stale_docs, write_docs
from harness.search import load_space
from harness.zoo import ZOO_DIR

REPO = Path(__file__).resolve().parents[1]
MODELINE = "# yaml-language-server: $schema="
SCHEMA_USERS = [
    *((path, "docs/schema/spec.schema.json") for path in sorted(ZOO_DIR.glob("*.yaml"))),
    *(
        (path, "docs/schema/space.schema.json")
        for path in sorted((REPO / "search_spaces").glob("*.yaml"))
    ),
]


def test_the_committed_documents_are_fresh() -> None:
    assert ROOT == REPO
    stale = stale_docs()
    assert stale == [], f"stale: {stale}; regenerate with `python -m harness._docs`"


def test_write_docs_writes_what_stale_docs_checks(tmp_path: Path) -> None:
    assert sorted(write_docs(tmp_path)) == sorted(GENERATED)
    assert stale_docs(tmp_path) == []
    assert write_docs(tmp_path) == []
    (tmp_path / "docs" / "spec-reference.md").write_text("edited by hand\n")
    assert stale_docs(tmp_path) == ["docs/spec-reference.md"]


@pytest.mark.parametrize(("path", "schema"), SCHEMA_USERS, ids=lambda p: getattr(p, "name", p))
def test_every_yaml_file_names_its_schema(path: Path, schema: str) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith(MODELINE), first
    target = (path.parent / first.removeprefix(MODELINE)).resolve()
    assert target == REPO / schema


def test_the_space_reference_example_loads(tmp_path: Path) -> None:
    text = create_docs()["docs/space-reference.md"]
    example = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert example is not None
    path = tmp_path / "tiny.yaml"
    path.write_text(example.group(1))
    space = load_space(path)
    assert space.tied and space.halving is not None and len(space.params) == 3


def test_the_references_cover_every_node() -> None:
    docs = create_docs()
    for path, defs_of in (
        ("docs/spec-reference.md", "docs/schema/spec.schema.json"),
        ("docs/space-reference.md", "docs/schema/space.schema.json"),
    ):
        full = {n for n in json.loads(docs[defs_of])["$defs"] if not n.startswith("Partial")}
        assert full, defs_of
        sections = set(re.findall(r"^### (\w+)$", docs[path], re.M))
        assert full <= sections, full - sections
