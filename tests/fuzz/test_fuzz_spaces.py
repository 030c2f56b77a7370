"""Malformed search spaces: every one fails with one line naming its file, never a traceback.

``harness search`` has no validate-only mode; ``--trials 0`` is the nearest: the space is
loaded and validated first, and only a valid space reaches the (rejected) trial count.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _fuzz import (
    FUZZ,
    SPACE_FILES,
    examples,
    expect_spec_error,
    hostile_text,
    mutated,
    run_cli,
    write,
)
from hypothesis import given, settings

from harness.search import load_space

CLI_LINE = "harness: <command line>: --trials: must be at least 1, got 0"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz_spaces")


@settings(FUZZ, max_examples=examples(60))
@given(text=mutated(SPACE_FILES))
def test_mutated_spaces_load_or_fail_on_one_line(folder: Path, text: str) -> None:
    path = write(folder / "space.yaml", text)
    if expect_spec_error(lambda: load_space(path), path) is None:
        load_space(path).grid  # noqa: B018  (a valid space is a whole object)


@settings(FUZZ, max_examples=examples(40))
@given(content=hostile_text())
def test_hostile_space_files_fail_on_one_line(folder: Path, content: str | bytes) -> None:
    path = write(folder / "hostile_space.yaml", content)
    assert expect_spec_error(lambda: load_space(path), path) is not None


@settings(FUZZ, max_examples=examples(20))
@given(text=mutated(SPACE_FILES))
def test_search_command_rejects_bad_spaces_on_one_line(folder: Path, text: str) -> None:
    path = write(folder / "cli_space.yaml", text)
    code, out, err = run_cli(["search", str(path), "--trials", "0", "--json"])
    assert "Traceback" not in out + err and out == ""
    assert code == 2 and len(err.splitlines()) == 1, err
    if err.strip() == CLI_LINE:  # the space was valid: only the trial count was refused
        load_space(path)
    else:
        assert err.startswith(f"harness: {path}"), err
