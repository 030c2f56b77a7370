"""The command-line contract, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = [sys.executable, "-m", "harness"]


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HARNESS, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=None if env is None else {**os.environ, **env},
    )


def test_compile_json_contract() -> None:
    result = run("compile", "r3d_18", "--frames", "8", "--size", "64", "--classes", "10", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for key in (
        "name",
        "spec_hash",
        "input_shape",
        "params",
        "gflops",
        "gflops_all",
        "unsupported_ops",
        "stages",
    ):
        assert key in report
    assert report["input_shape"] == [3, 8, 64, 64]
    assert isinstance(report["params"], int)
    assert report["unsupported_ops"] == {}
    assert report["stages"][-1] == {**report["stages"][-1], "name": "head", "output_shape": [10]}
    assert abs(sum(s["gflops"] for s in report["stages"]) - report["gflops"]) < 1e-6
    assert sum(s["params"] for s in report["stages"]) == report["params"]


def test_compile_table(tmp_path: Path) -> None:
    result = run("compile", "x2d")
    assert result.returncode == 0, result.stderr
    assert "stages.3" in result.stdout and "total" in result.stdout


def test_compile_table_has_a_row_per_pathway_lateral_and_join(tmp_path: Path) -> None:
    env = {"HARNESS_CACHE_DIR": str(tmp_path), "COLUMNS": "200"}
    result = run("compile", "slowfast_r50_4x16", "--size", "32", env=env)
    assert result.returncode == 0, result.stderr
    assert "inputs rgb 3x32x32x32" in result.stdout
    rows = {cells[0]: cells[1:] for cells in _rows(result.stdout)}
    assert rows["slow/stem"][0] == "64x4x8x8" and rows["fast/stem"][0] == "8x32x8x8"
    assert rows["fast->slow/stem"][0] == "80x4x8x8"  # the slow pathway after the fusion
    assert {"slow/stages.3", "fast/stages.3", "fast->slow/stages.2", "join"} <= set(rows)
    assert "fast->slow/stages.3" not in rows and "stages.3" not in rows
    sums = [name for name in rows if name.endswith(" (sum)")]
    assert sums == ["slow (sum)", "fast (sum)", "laterals (sum)", "join (sum)"]

    def params(name: str) -> int:
        return int(rows[name][1].replace(",", ""))

    assert sum(params(name) for name in sums) == params("total")
    assert sum(params(name) for name in rows if "/" in name or name == "join") == params("total")


def test_compile_json_names_the_inputs_and_splits_the_streams(tmp_path: Path) -> None:
    env = {"HARNESS_CACHE_DIR": str(tmp_path)}
    result = run("compile", "i3d_r50_two_stream", "--size", "32", "--json", env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["inputs"] == {"rgb": [3, 8, 32, 32], "flow": [2, 8, 32, 32]}
    names = [row["name"] for row in report["stages"]]
    assert names[:4] == ["rgb/stem", "flow/stem", "rgb/stages.0", "flow/stages.0"]
    assert names[-1] == "join" and report["stages"][-1]["output_shape"] == [400]
    streams = {
        p: sum(row["params"] for row in report["stages"] if row["name"].startswith(f"{p}/"))
        for p in ("rgb", "flow")
    }
    join = report["stages"][-1]["params"]
    assert streams["rgb"] + streams["flow"] + join == report["params"]
    assert streams["rgb"] - streams["flow"] == 64 * 5 * 7 * 7  # one input channel fewer
    assert abs(sum(s["gflops"] for s in report["stages"]) - report["gflops"]) < 1e-6


def test_a_single_pathway_json_has_no_named_inputs() -> None:
    result = run("compile", "tiny_c2d", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert "inputs" not in report
    names = [row["name"] for row in report["stages"]]
    assert names == ["stem", *(f"stages.{i}" for i in range(len(names) - 2)), "head"]


BAD = {
    "typo.yaml": (
        "base: r3d_18\nstages:\n  1: {widht: 64}\n",
        ":3:7: stages.1.widht: unknown key 'widht' (did you mean 'width'?)",
    ),
    "type.yaml": (
        "base: r3d_18\nstages:\n  2: {block: {type: bottlenek}}\n",
        ":3:7: stages.2.block: unknown type 'bottlenek'; known types:",
    ),
    "tag.yaml": ("name: !!python/object/apply:os.system ['echo pwned']\n", ":1:7: name: tag"),
    "syntax.yaml": ("clip: {frames: 8\nstem: [\n", ": <root>: YAML syntax error"),
    "wrong.yaml": (
        "base: r3d_18\nclip: {frames: eight}\n",
        ":2:8: clip.frames: Input should be a valid integer",
    ),
    "short.yaml": (  # NOTE: the file sets the clip and inherits the strides: the clip is named
        "base: r3d_18\nclip: {frames: 2}\n",
        ":2:8: clip.frames: 2 frames are too few for this network (it needs at least 5): "
        "at stages.2.temporal_stride, 1 frames reach a stride of 2",
    ),
    "list.yaml": ("- 1\n- 2\n", ":1:1: <root>: a spec must be a mapping of keys"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_spec_is_one_line_and_status_2(tmp_path: Path, name: str) -> None:
    text, expected = BAD[name]
    (tmp_path / name).write_text(text)
    result = run("compile", name, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert expected in lines[0], lines[0]
    assert not (tmp_path / "pwned").exists()


def test_bad_option_value_is_status_2() -> None:
    result = run("compile", "r3d_18", "--frames", "0")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_schema_is_json_schema() -> None:
    result = run("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert {"clip", "stem", "stages", "head", "expansion", "base"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    docs = Path(__file__).parents[2] / "docs" / "schema"
    assert result.stdout == (docs / "spec.schema.json").read_text()
    space = run("schema", "--space")
    assert space.returncode == 0, space.stderr
    assert space.stdout == (docs / "space.schema.json").read_text()


def test_schema_validates_zoo_files() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = json.loads(run("schema").stdout)
    zoo = Path(__file__).parents[2] / "harness" / "zoo"
    for path in zoo.glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        if "base" in data:
            continue  # a partial spec is only complete after inheritance
        data.setdefault("name", path.stem)
        jsonschema.validate(data, schema)


def _rows(table: str) -> list[list[str]]:
    """The cells of each row of a table printed by rich."""
    return [
        [c.strip() for c in line.split("│")[1:-1]] for line in table.splitlines() if "│" in line
    ]


def _imported(stderr: str) -> set[str]:
    """The modules ``python -X importtime`` reports on ``stderr``."""
    prefix = "import time:"
    return {
        line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith(prefix)
    }


def test_zoo_lists_the_published_figures_and_builds_nothing() -> None:
    from harness.spec import load_spec
    from harness.zoo import list_zoo

    result = subprocess.run(
        [sys.executable, "-X", "importtime", *HARNESS[1:], "zoo", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    imported = _imported(result.stderr)
    assert "harness.cli._models" in imported  # the listing is seen
    assert not {"torch", "fvcore"} & imported  # nothing built, nothing measured
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == list_zoo()
    for row in rows:
        published = load_spec(row["name"]).published
        assert row["published"] == (published and published.model_dump(mode="json"))
        assert set(row) == {"name", "description", "published"}


def test_zoo_table_names_every_model_in_full() -> None:
    from harness.spec import load_spec
    from harness.zoo import list_zoo

    result = run("zoo", env={"COLUMNS": "40"})
    assert result.returncode == 0, result.stderr
    rows = {cells[0]: cells[1:] for cells in _rows(result.stdout)}
    assert list(rows) == list_zoo() and "…" not in result.stdout
    for name, cells in rows.items():
        published = load_spec(name).published
        assert published is not None
        figures = [published.params, published.gflops]
        assert cells[:2] == [f"{v:,}" if isinstance(v, int) else str(v) for v in figures]
        assert cells[2:5] == [
            f"{published.frames}x{published.size}",
            str(published.classes),
            f"{published.params_convention}, {published.gflops_convention}",
        ]


def test_zoo_check_measures_each_model_at_its_published_input() -> None:
    from harness.spec import load_spec

    # NOTE: tests/test_zoo.py measures every model against its figures; this is the command
    # (a 2D, a multi-pathway and an X3D network: the whole zoo takes 75 s on 2 idle cores)
    names = ["tiny_c2d", "slowfast_r50_4x16", "x3d_xs"]
    result = run("zoo", *names, "--check", "--json", timeout=600)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == names
    assert all(row["params"] > 0 and row["gflops"] > 0 for row in rows)
    for row in rows:
        published = load_spec(row["name"]).published
        assert published is not None and row["matches_published"] is True
        assert row["input_shape"][1:] == [published.frames, published.size, published.size]


def test_zoo_names_a_model_it_does_not_have() -> None:
    result = run("zoo", "x3d_xs", "x3d_mm", "--check")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("harness: <zoo>: x3d_mm: neither a zoo name")
    assert "did you mean" in result.stderr and "x3d_m" in result.stderr


def test_zoo_check_table_shows_ours_beside_the_published_figures() -> None:
    from rich.console import Console

    from harness.cli._models import _zoo_row, _zoo_table

    rows = [_zoo_row(name, check=True) for name in ("tiny_c2d", "tiny_r2plus1d")]
    console = Console(width=200)
    with console.capture() as captured:
        console.print(_zoo_table(rows, check=True))
    text = captured.get()
    assert "ours measured at the same input" in text
    header = next(line for line in text.splitlines() if "┃" in line)
    assert [c.strip() for c in header.split("┃")[1:-1]] == [
        "name", "params", "GFLOPs", "input", "classes", "convention",
        "params, ours", "GFLOPs, ours", "match",
    ]  # fmt: skip
    tiny_c2d, tiny_r2plus1d = _rows(text)
    assert tiny_c2d[:5] == ["tiny_c2d", "77,912", "0.025002", "8x32", "8"]
    assert tiny_c2d[6:] == ["77,912", "0.025", "yes"]
    assert tiny_r2plus1d[6:] == ["198,805", "0.068", "yes"]


def test_ctrl_c_outside_a_search_is_one_line_and_status_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Typer turns a KeyboardInterrupt into a silent exit 130; the user must still be told.
    import harness.cli._search as search_cli
    from harness.cli import main

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(search_cli, "_check", interrupted)  # Ctrl-C during the space check
    with pytest.raises(SystemExit) as exit_info:
        main(["search", str(Path(__file__).parents[2] / "search_spaces" / "tiny.yaml")])
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.splitlines() == ["harness: interrupted (SIGINT, Ctrl-C)"]
