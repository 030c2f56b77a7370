"""Malformed model specs: every one fails with one line naming its file, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _fuzz import (
    FUZZ,
    TINY_FILES,
    ZOO_FILES,
    check_one_line,
    curated_values,
    examples,
    expect_spec_error,
    hostile_text,
    mutated,
    run_cli,
    write,
)
from hypothesis import given, settings

from harness.compiler import plan_network
from harness.errors import SpecError
from harness.spec import load_spec, locate, realise


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz_specs")


def _load_and_plan(path: Path) -> None:
    spec = load_spec(path)
    real = realise(spec)
    try:
        plan_network(real, frames=real.clip.frames, size=real.clip.size)
    except SpecError as exc:
        raise locate(spec, exc) from None


@settings(FUZZ, max_examples=examples(60))
@given(text=mutated(ZOO_FILES))
def test_mutated_zoo_specs_load_or_fail_on_one_line(folder: Path, text: str) -> None:
    path = write(folder / "mutated.yaml", text)
    expect_spec_error(lambda: _load_and_plan(path), path)


@settings(FUZZ, max_examples=examples(40))
@given(text=mutated(TINY_FILES, curated_values))
def test_mutated_specs_compile_or_exit_2(folder: Path, text: str) -> None:
    path = write(folder / "tiny.yaml", text)
    code, out, err = run_cli(["compile", str(path), "--json", "--no-cache"])
    check_one_line(code, out, err, path)
    if code == 0:
        assert json.loads(out)["params"] > 0


@settings(FUZZ, max_examples=examples(60))
@given(content=hostile_text())
def test_hostile_files_exit_2_on_one_line(folder: Path, content: str | bytes) -> None:
    path = write(folder / "hostile.yaml", content)
    code, out, err = run_cli(["compile", str(path), "--json", "--no-cache"])
    check_one_line(code, out, err, path)
    assert code == 2
