from __future__ import annotations

import pytest

import harness
from harness.errors import SpecError
from harness.spec import apply_overrides, load_spec

TINY = """
name: tiny
clip: {frames: 4, size: 32}
stem: {type: conv, width: 8, kernel: [1, 3, 3], stride: [1, 2, 2]}
stages:
  - {block: {type: basic, temporal_kernel: 3}, depth: 1, width: 8}
  - {block: {type: basic, temporal_kernel: 3}, depth: 2, width: 16, spatial_stride: 2}
head: {type: classifier}
"""


def test_zoo_and_file_specs_load(write_yaml) -> None:
    spec = load_spec(write_yaml(TINY))
    assert spec.name == "tiny"
    assert spec.stages[1].depth == 2
    assert load_spec("r3d_18").name == "r3d_18"


def test_inheritance_patches_lists_and_drops_published(write_yaml) -> None:
    write_yaml(TINY, "tiny.yaml")
    child = write_yaml("base: tiny.yaml\nstages:\n  1: {depth: 5}\n", "child.yaml")
    spec = load_spec(child)
    assert spec.name == "child"
    assert spec.stages[1].depth == 5
    assert spec.stages[1].width == 16  # kept from the base
    assert spec.stages[0].depth == 1
    assert load_spec("mc3_18").published.params == 11695440  # its own, not r3d_18's
    no_figures = write_yaml("base: r3d_18\n", "variant.yaml")
    assert load_spec(no_figures).published is None


def test_changing_a_type_replaces_the_node(write_yaml) -> None:
    write_yaml(TINY, "tiny.yaml")
    child = write_yaml(
        "base: tiny.yaml\nstages:\n  0: {block: {type: x3d}, bottleneck_ratio: 2.0}\n", "c.yaml"
    )
    block = load_spec(child).stages[0].block
    assert block.type == "x3d"
    assert not hasattr(block, "temporal_kernel_at")


def test_base_cycle_is_an_error(write_yaml) -> None:
    write_yaml("base: b.yaml\n", "a.yaml")
    path = write_yaml("base: a.yaml\n", "b.yaml")
    with pytest.raises(SpecError, match="loops back"):
        load_spec(path)


def test_overrides_by_key_path() -> None:
    spec = load_spec("x3d_m", clip__frames=8, **{"stages.2.depth": 1})
    assert spec.clip.frames == 8
    assert spec.stages[2].depth == 1
    assert apply_overrides({"a": [1, {"b": 2}]}, {"a.1.b": 3}) == {"a": [1, {"b": 3}]}


@pytest.mark.parametrize(
    ("patch", "where", "message"),
    [
        ("stages:\n  1: {widht: 64}\n", "stages.1.widht", "did you mean 'width'"),
        ("stages:\n  0: {block: {type: bottlenek}}\n", "stages.0.block", "known types: "),
        ("stages:\n  0: {depth: two}\n", "stages.0.depth", "valid integer"),
        ("stem: {kernel: [2, 3, 3]}\n", "stem.kernel.0", "must be odd"),
        ("expansion: {gamma_w: -1}\n", "expansion.gamma_w", "must be above 0"),
        ("stages:\n  0: {depth: 1000000000}\n", "stages.0.depth", "must be at most"),
    ],
)
def test_errors_name_file_line_and_key_path(write_yaml, patch, where, message) -> None:
    write_yaml(TINY, "tiny.yaml")
    path = write_yaml("base: tiny.yaml\n" + patch, "bad.yaml")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    text = str(info.value)
    assert text.startswith(f"{path}:"), text
    assert f": {where}: " in text, text
    assert message in text, text
    assert "\n" not in text


def test_missing_inner_width_is_reported(write_yaml) -> None:
    path = write_yaml(
        TINY.replace("type: basic, temporal_kernel: 3}, depth: 1", "type: csn}, depth: 1")
    )
    with pytest.raises(SpecError, match="needs 'bottleneck_ratio' or 'inner_width'"):
        load_spec(path)


def test_unknown_zoo_name_suggests() -> None:
    with pytest.raises(SpecError, match="did you mean 'x3d_m'"):
        harness.load_spec("x3d_mm")


def test_both_factor_names_at_once_is_an_error(write_yaml) -> None:
    write_yaml(TINY, "tiny.yaml")
    path = write_yaml("base: tiny.yaml\nexpansion: {width: 2, gamma_w: 2}\n", "both.yaml")
    with pytest.raises(SpecError, match="name the same factor"):
        load_spec(path)
