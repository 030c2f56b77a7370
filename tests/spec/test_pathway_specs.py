"""Pathway and attention specs: names tie together, and bad ones name their key path."""

from __future__ import annotations

import pytest

from harness.cli import main
from harness.errors import SpecError
from harness.spec import load_spec, spec_hash

TWO = """
base: slowfast_r50_4x16
name: two
"""


@pytest.mark.parametrize(
    ("patch", "path", "message"),
    [
        ("laterals: {0: {from: slowest}}", ("laterals", 0, "from"), "no pathway named"),
        ("laterals: {0: {to: fast}}", ("laterals", 0, "to"), "two different"),
        ("laterals: {0: {after: [stem, 0, 9]}}", ("laterals", 0, "after", 2), "names no stage"),
        ("laterals: {0: {combine: add}}", ("laterals", 0, "combine"), "concat"),
        (
            "laterals: [{from: fast, to: slow, after: stem, type: warp}]",
            ("laterals", 0, "type"),
            "time_strided_conv",
        ),
        ("pathways: {1: {name: slow}}", ("pathways", 1, "name"), "used twice"),
        ("pathways: {1: {input: depth}}", ("pathways", 1, "input"), "no input named"),
        ("join: {type: scores, weights: [1]}", ("join", "weights"), "1 weights for 2"),
        ("join: {pathways: [slow, medium]}", ("join", "pathways", 1), "no pathway named"),
        ("stem: {type: none}", (), "not both"),
    ],
)
def test_bad_pathway_specs(write_yaml, patch: str, path: tuple, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        load_spec(write_yaml(TWO + patch + "\n"))
    assert info.value.path == path
    assert info.value.location is not None


def test_laterals_need_pathways(write_yaml) -> None:
    text = "base: r3d_18\nlaterals: [{from: a, to: b, after: stem}]\n"
    with pytest.raises(SpecError, match="needs 'pathways'") as info:
        load_spec(write_yaml(text))
    assert info.value.path == ("laterals",)


def test_single_pathway_hashes_are_unchanged() -> None:
    """New keys enter the hash only when set: existing specs keep their hashes."""
    r3d = "874a71ab309dbd0ef384abd01bb094e7e19ac967ab9e92d9f13dbcd64b0ab5f0"
    assert spec_hash(load_spec("r3d_18")) == r3d
    assert set(load_spec("r3d_18").architecture()) == {"clip", "stem", "stages", "head"}


def test_alpha_is_a_searchable_key() -> None:
    a = load_spec("slowfast_r50_4x16")
    b = load_spec("slowfast_r50_4x16", pathways__0__frame_stride=4, laterals__0__kernel=7)
    assert spec_hash(b) == spec_hash(load_spec("slowfast_r50_8x8"))
    assert spec_hash(a) != spec_hash(b)


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--frames", "36"], "pathways.0.frame_stride"),
        (["--size", "16"], "stages.0.block.kv_stride"),
    ],
)
def test_cli_one_line_and_status_2(capsys, args: list[str], where: str) -> None:
    name = "slowfast_r50_4x16" if "pathways" in where else "mvit_b_16x4"
    with pytest.raises(SystemExit) as info:
        main(["compile", name, *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and where in err and "Traceback" not in err
