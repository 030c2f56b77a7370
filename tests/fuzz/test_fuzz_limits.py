"""Huge numbers and bombs are refused before anything is allocated, quickly, in little memory.

The subprocess checks run the real ``python -m harness`` under a 4 GiB address-space limit
and a timeout: a hang, a traceback or an attempt to allocate the network fails them.
"""

from __future__ import annotations

import math
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from _fuzz import REPO, alias_bomb, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import SpecError
from harness.search import load_space
from harness.spec import check_limits, load_spec, realise, round_repeats, round_width
from harness.spec.limits import MAX_BLOCKS, MAX_INPUT

MEMORY = 4 * 2**30
TINY = "base: tiny_c2d\n"

HUGE_SPECS = {
    "alias_bomb": alias_bomb(),
    "width_1e50": TINY + f"stages: {{2: {{width: {10**50}}}}}\n",
    "frames_1e300": TINY + "clip: {frames: 1e300}\n",
    "width_1e6": TINY + "stages: {2: {width: 1000000}}\n",  # in range, yet 10^13 weights
    "clip_1e6": TINY + "clip: {frames: 1000000, size: 1000000}\n",
    "depth_1e6": TINY + "stages: {2: {depth: 1000000}}\n",
    "expanded": TINY + "expansion: {width: 100, depth: 100}\nstages: {2: {width: 999999}}\n",
}


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def test_huge_specs_fail_fast_in_a_subprocess(tmp_path: Path) -> None:
    """One interpreter compiles every file (``harness`` per file would repeat the imports)."""
    paths = []
    for name, text in HUGE_SPECS.items():
        paths.append(tmp_path / f"{name}.yaml")
        paths[-1].write_text(text)
    script = (
        "import sys\nfrom harness.cli import main\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n        main(['compile', path, '--no-cache', '--json'])\n"
        "    except SystemExit as exc:\n        print(exc.code, flush=True)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory,
        cwd=tmp_path,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout.split() == ["2"] * len(paths), result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == len(paths), result.stderr
    for path, line in zip(paths, lines, strict=True):
        assert line.startswith(f"harness: {path}:"), line


def test_alias_bomb_via_python_m_harness(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(levels=12, fanout=10))
    result = subprocess.run(
        [sys.executable, "-m", "harness", "compile", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory,
        cwd=REPO,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "alias bomb" in result.stderr


@pytest.mark.parametrize(
    ("patch", "where", "message"),
    [
        ("stages: {2: {width: 1000000}}", "stages.2", "parameters"),
        ("clip: {frames: 100000, size: 1000}", "clip", "an input clip"),
        ("stages: {0: {depth: 5000}}", "stages.0.depth", f"more than {MAX_BLOCKS} blocks"),
        ("clip: {frames: 256, size: 1024}\nstem: {width: 4096, stride: 1}", "stem", "feature"),
        ("expansion: {width: 100}\nstages: {2: {width: 99999}}", "stages.2.width", "expansion"),
        ("expansion: {depth: 100}\nstages: {2: {depth: 999999}}", "stages.2.depth", "expansion"),
    ],
)
def test_limits_name_the_key_and_line(write_yaml, patch: str, where: str, message: str) -> None:
    path = write_yaml(TINY + patch + "\n")
    with pytest.raises(SpecError, match=message) as info:
        realise(load_spec(path))
    assert info.value.file == str(path) and info.value.location is not None
    assert ".".join(map(str, info.value.path)) == where


def test_every_zoo_spec_is_well_inside_the_limits() -> None:
    from harness.zoo import list_zoo

    for name in list_zoo():
        check_limits(realise(load_spec(name)))


def test_build_size_overrides_are_checked_too(tmp_path: Path) -> None:
    code, out, err = run_cli(["compile", "tiny_c2d", "--frames", "100000", "--size", "100000"])
    assert code == 2 and out == "" and err.count("\n") == 1 and "an input clip" in err
    assert MAX_INPUT < 100000**3


@settings(max_examples=40, deadline=2000, database=None)
@given(
    width=st.integers(1, 10**6) | st.floats(1, 1e300),
    factor=st.floats(0.01, 100) | st.just(1.0),
)
def test_round_width_handles_any_width(width: float, factor: float) -> None:
    rounded = round_width(width, factor)
    assert rounded % 8 == 0 and rounded >= 8
    assert rounded >= 0.9 * width * factor or math.isclose(rounded, 0.9 * width * factor)
    assert round_repeats(10**6, factor) >= 1


def test_error_lines_stay_one_line() -> None:
    error = SpecError("bad 'a\nb'\r\u2028", path=("x\ny",), file="f\n.yaml")
    assert "\n" not in str(error) and str(error).isprintable()


def test_key_paths_with_odd_digits_are_keys(write_yaml) -> None:
    for key in ("²", "--5", "1\n", "٣"):
        with pytest.raises(SpecError):
            load_spec("tiny_c2d", **{f"stages.{key}.depth": 2})


def test_space_grid_bombs_are_bounded(write_yaml) -> None:
    path = write_yaml(
        "base: tiny_c2d\nparams:\n"
        f"  stages.0.depth: {{type: int, low: 1, high: {2**53}}}\n"
        "  head.dropout: {type: float, low: 0.0, high: 0.9, step: 1.0e-300}\n",
        "space.yaml",
    )
    space = load_space(path)  # the first candidate is the low end, not a list of 2^53
    with pytest.raises(SpecError, match="too large"):
        space.grid()
    bad = write_yaml("base: tiny_c2d\nbudgets: {gflops: .nan}\n", "nan.yaml")
    with pytest.raises(SpecError, match=r"budgets\.gflops"):
        load_space(bad)


def test_specs_in_devices_are_refused(write_yaml) -> None:
    with pytest.raises(SpecError, match="not a regular file"):
        load_spec(write_yaml("base: /dev/zero\n"))
