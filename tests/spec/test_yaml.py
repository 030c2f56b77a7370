from __future__ import annotations

import pytest

from harness.errors import SpecError
from harness.spec._yaml import MAX_DEPTH, load_yaml_text


def test_locations_point_at_keys() -> None:
    doc = load_yaml_text("a: 1\nb:\n  c: [10, 20]\n", "f.yaml")
    assert doc.data == {"a": 1, "b": {"c": [10, 20]}}
    assert (doc.locations[("b", "c")].line, doc.locations[("b", "c")].column) == (3, 3)
    assert doc.locations[("b", "c", 1)].line == 3
    # the nearest located ancestor stands in for a path the document does not have
    assert doc.locate(("b", "c", "missing")) == doc.locations[("b", "c")]


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object/apply:os.system ['echo pwned']\n",
        "a: !!python/name:os.system\n",
        "a: !custom 3\n",
        "a: !!set {x, y}\n",
        "a: !!binary aGVsbG8=\n",
    ],
)
def test_object_tags_are_rejected(text: str) -> None:
    with pytest.raises(SpecError, match=r"tag .* is not allowed") as info:
        load_yaml_text(text, "evil.yaml")
    assert str(info.value).startswith("evil.yaml:1:")


def test_alias_bomb_is_rejected_quickly() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(SpecError, match="alias bomb"):
        load_yaml_text("\n".join(lines))


def test_small_aliases_and_merge_keys_work() -> None:
    doc = load_yaml_text("base: &b {width: 8, depth: 2}\nstage: {<<: *b, depth: 3}\n")
    assert doc.data["stage"] == {"width": 8, "depth": 3}


def test_duplicate_keys_are_errors() -> None:
    with pytest.raises(SpecError, match="duplicate key 'a'") as info:
        load_yaml_text("a: 1\nb: 2\na: 3\n", "d.yaml")
    assert str(info.value).startswith("d.yaml:3:1: a:")


def test_deep_nesting_is_rejected() -> None:
    text = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    with pytest.raises(SpecError, match="nesting deeper"):
        load_yaml_text(text)


def test_syntax_error_names_line() -> None:
    with pytest.raises(SpecError, match="YAML syntax error") as info:
        load_yaml_text("a: {b: 1\nc: [\n", "s.yaml")
    assert info.value.location is not None and info.value.location.line == 2


def test_timestamps_stay_text() -> None:
    assert load_yaml_text("d: 2020-01-01\n").data == {"d": "2020-01-01"}
