"""Strategies for bad input: real spec and space files mutated, and hostile raw text.

Mutations start from the files users copy (``harness/zoo/*.yaml``, ``search_spaces/*.yaml``):
set one key path to a bad value, delete a key, insert an unknown key, or bury a value
under deep nesting. Raw inputs are what a YAML file can hold that a spec never should:
object tags, alias bombs, non-UTF-8 bytes, empty files, top-level lists and scalars.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from harness.cli import main

REPO = Path(__file__).resolve().parents[2]
ZOO_FILES = sorted((REPO / "harness" / "zoo").glob("*.yaml"))
SPACE_FILES = sorted((REPO / "search_spaces").glob("*.yaml"))
TINY_FILES = [REPO / "harness" / "zoo" / f"{n}.yaml" for n in ("tiny_c2d", "tiny_r2plus1d")]

KeyPath = tuple[str | int, ...]

# Values no field should accept, or that stress a number's range or a string's content.
BAD_SCALARS: list[Any] = [
    None, True, False, 0, -1, -3, 2, 7, 0.5, -0.0, 10**50, -(10**50), 2**63, 10**9, 1_000_000,
    1e300, -1e300, float("inf"), float("-inf"), float("nan"), "", "x", "none", "basic",
    "a\nb", "\x00", "\u2028", "../../etc/passwd", "🎞" * 3, "1e999", "0x10", "9" * 400,
]  # fmt: skip
bad_scalars = st.sampled_from(BAD_SCALARS) | st.integers() | st.floats() | st.text(max_size=12)
bad_values = st.recursive(
    bad_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=6) | st.integers(-3, 3), inner, max_size=3)
    ),
    max_leaves=6,
)


def key_paths(data: Any, prefix: KeyPath = ()) -> list[KeyPath]:
    """Every key path of a plain-data tree, the root included."""
    paths = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            paths += key_paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            paths += key_paths(value, (*prefix, index))
    return paths


def _set(data: Any, path: KeyPath, value: Any) -> Any:
    if not path:
        return value
    head, *rest = path
    data[head] = _set(data[head], tuple(rest), value)
    return data


def _nest(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = {"a": [value]}
    return value


# For inputs that are compiled when they stay valid: only the curated numbers, so that a
# valid mutation stays cheap to build (an arbitrary integer could be a valid 10^5 frames).
curated_values = st.recursive(
    st.sampled_from(BAD_SCALARS) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=2)
    ),
    max_leaves=4,
)


@st.composite
def mutated(draw: st.DrawFn, files: list[Path], values: st.SearchStrategy[Any] = bad_values) -> str:
    """YAML text of one of ``files`` with one to three mutations."""
    data = yaml.safe_load(draw(st.sampled_from(files)).read_text())
    for _ in range(draw(st.integers(1, 3))):
        paths = key_paths(data)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["set", "set", "set", "delete", "insert", "nest"]))
        if action == "set" or (action == "delete" and not path):
            data = _set(data, path, draw(values))
        elif action == "delete":
            parent = data
            for part in path[:-1]:
                parent = parent[part]
            del parent[path[-1]]
        elif action == "insert":
            target = data
            for part in path:
                target = target[part]
            if isinstance(target, dict):
                target[draw(st.text(min_size=1, max_size=8))] = draw(values)
            elif isinstance(target, list):
                target.insert(draw(st.integers(0, len(target))), draw(values))
        else:
            data = _set(data, path, _nest(draw(values), draw(st.integers(1, 80))))
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def alias_bomb(levels: int = 9, fanout: int = 9) -> str:
    """The "billion laughs": each anchor repeats the previous one ``fanout`` times."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fanout) + "]")
    lines.append(f"stages: *a{levels}")
    return "\n".join(lines) + "\n"


HOSTILE_TEXTS: list[str | bytes] = [
    "",
    "# only a comment\n",
    "---\n",
    "--- {a: 1}\n--- {b: 2}\n",
    "[1, 2, 3]\n",
    "- clip\n- stem\n",
    "42\n",
    "just a string\n",
    "null\n",
    "!!python/object/apply:os.system ['echo pwned']\n",
    "clip: !!python/object/apply:os.system ['echo pwned']\n",
    "name: !!python/name:os.system\n",
    "stem: !!python/object/new:harness.spec.schema.ModelSpec {}\n",
    "clip: !foo {frames: 8}\n",
    "clip: !!binary aGVsbG8=\n",
    "clip: !!set {a, b}\n",
    "clip: !!omap [{a: 1}]\n",
    "stages: !!seq [1]\n",
    "head: !!map {type: classifier}\n",
    alias_bomb(),
    alias_bomb(levels=30, fanout=2),
    "a: " + "[" * 5000 + "]" * 5000 + "\n",
    "a: " + "{b: " * 3000 + "1" + "}" * 3000 + "\n",
    "clip: {frames: 8, frames: 9}\n",
    "? [a, b]\n: 1\n",
    "? {a: 1}\n: 1\n",
    "1.5: x\n",
    "null: x\n",
    "<<: 5\n",
    "a: &x 1\nb: *y\n",
    "a: {b: 1\n",
    "\ttab: 1\n",
    "width: " + "1" * 5000 + "\n",
    "clip: {frames: 1e300, size: .inf, stride: .nan}\n",
    b"\xff\xfe\x00\x00garbage",
    b"clip: {frames: \x80\x81}\n",
    b"\xef\xbb\xbfclip: {frames: 8}\n",
    b"clip:\x00 1\n",
]


@st.composite
def hostile_text(draw: st.DrawFn) -> str | bytes:
    """A hostile document: a fixed one, random text, or random bytes."""
    return draw(
        st.sampled_from(HOSTILE_TEXTS)
        | st.text(max_size=200)
        | st.binary(max_size=200)
        | st.lists(st.sampled_from(["a:", " ", "-", "[", "]", "{", "}", "&x", "*x", "!t", "\n",
                                    ":", "'", '"', "#", "?", "|", ">", "%YAML 1.1", "---"]),
                   max_size=40).map("".join)
    )  # fmt: skip


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")
    return path


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run ``harness ARGV`` in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def names_a_file(line: str, path: Path) -> bool:
    """Whether an error line points at ``path`` or at a zoo file ``path`` builds on."""
    return line.startswith((f"harness: {path}", f"harness: {REPO / 'harness' / 'zoo'}"))


def check_one_line(code: int, out: str, err: str, path: Path) -> None:
    """The command failed with one line naming the file, or succeeded."""
    assert "Traceback" not in out + err, err
    assert code in (0, 2), (code, err)
    if code == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and err.endswith("\n"), err
        assert names_a_file(lines[0], path), lines[0]
        assert out == ""


def expect_spec_error(call: Callable[[], object], path: Path) -> Exception | None:
    """Run ``call``; returns the SpecError it raised (checked to be one line), or None."""
    from harness.errors import SpecError

    try:
        call()
    except SpecError as exc:
        text = str(exc)
        assert "\n" not in text and text.isprintable(), text
        assert text.startswith((str(path), str(REPO / "harness" / "zoo"))), text
        return exc
    return None


# Every property: a few dozen examples, five seconds each at most, no example database in
# the working tree (CI reruns are fresh draws; a failure prints its reproducing example).
# HARNESS_FUZZ_SCALE=10 multiplies the examples, for a longer hunt.
SCALE = int(os.environ.get("HARNESS_FUZZ_SCALE", "1"))


def examples(count: int) -> int:
    return count * SCALE


FUZZ = settings(
    deadline=5000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
