"""The command-line contract, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = [sys.executable, "-m", "harness"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


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


@pytest.mark.slow
def test_zoo_json_lists_every_model() -> None:
    from harness.zoo import list_zoo

    result = run("zoo", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == list_zoo()
    assert all(row["params"] > 0 and row["gflops"] > 0 for row in rows)
