"""A journal torn by kill -9 (or a full disk) during an append: opening it cuts the torn last
record off, and the study resumes; damage before the last line is one SpecError line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from harness.errors import SpecError
from harness.search._storage import RECORD_START, open_storage

STUDY = "s"


def _journal(results: Path) -> Path:
    return results / STUDY / "journal.log"


def _load(results: Path) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=open_storage(None, results, STUDY))


def _ask_tell(study: optuna.Study, value: int) -> None:
    trial = study.ask()
    x = trial.suggest_int("x", 0, 100)
    study.tell(trial, float(x * 10 + value))


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a real journal: a study with three finished trials."""
    results = tmp_path_factory.mktemp("journal")
    study = optuna.create_study(storage=open_storage(None, results, STUDY), study_name=STUDY)
    for value in range(3):
        _ask_tell(study, value)
    return _journal(results).read_bytes()


def _write(results: Path, data: bytes) -> Path:
    path = _journal(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _trials(study: optuna.Study) -> list[tuple[int, str, dict, list[float] | None]]:
    return [(t.number, t.state.name, t.params, t.values) for t in study.get_trials()]


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("harness: warning:")]


def test_a_real_journal_starts_each_record_as_the_repair_expects(journal: bytes) -> None:
    # the reliance of the repair on how Optuna writes a record (see RECORD_START)
    lines = journal.splitlines()
    assert len(lines) >= 10 and all(line.startswith(RECORD_START) for line in lines)


def test_every_cut_inside_the_last_record_resumes(
    journal: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = _trials(_load(_write(tmp_path / "whole", journal).parents[1]))
    assert [state for _, state, _, _ in whole] == ["COMPLETE"] * 3
    start = journal.rstrip(b"\n").rfind(b"\n") + 1  # where the last record begins
    last_line = journal.count(b"\n")
    capsys.readouterr()
    for cut in range(start + 1, len(journal)):
        results = tmp_path / f"cut{cut}"
        path = _write(results, journal[:cut])
        study = _load(results)
        err = capsys.readouterr().err
        assert len(_warnings(err)) == 1 and len(err.splitlines()) == 1, (cut, err)
        assert f"{path}:{last_line}:" in err, (cut, err)
        got = _trials(study)
        assert got[:2] == whole[:2], cut  # every earlier trial intact
        torn = list(path.parent.glob("journal.log.torn-*"))
        if cut == len(journal) - 1:  # only the line end was missing: nothing is dropped
            assert got == whole and not torn and path.read_bytes() == journal
            assert "added one" in err
        else:
            assert got[2][:3] == (2, "RUNNING", whole[2][2]), cut  # its tell was the torn one
            assert len(torn) == 1 and torn[0].read_bytes() == journal[start:cut]
            assert path.read_bytes() == journal[:start]
            assert f"dropped its {cut - start} bytes" in err and str(torn[0]) in err
        _ask_tell(study, 3)  # the study goes on
        again = _trials(_load(results))  # a fresh load: no decode error, nothing lost
        assert capsys.readouterr().err == ""  # nothing left to repair
        assert len(again) == 4 and again[:2] == whole[:2]
        assert again[3][1] == "COMPLETE" and again[3][3] == [again[3][2]["x"] * 10 + 3.0]


def test_a_complete_last_record_without_its_line_end_gets_one(
    journal: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, journal[:-1])
    study = _load(tmp_path)
    err = capsys.readouterr().err
    last_line = journal.count(b"\n")
    assert _warnings(err) == [
        f"harness: warning: {path}:{last_line}: the last journal record had no line end; added one"
    ]
    assert path.read_bytes() == journal  # kept, not dropped
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE"] * 3
    assert not list(tmp_path.rglob("*.torn-*"))


def test_nul_bytes_left_by_a_crash_are_cut_off(
    journal: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, journal + b"\0" * 64)
    assert len(_load(tmp_path).get_trials()) == 3
    assert len(_warnings(capsys.readouterr().err)) == 1
    assert path.read_bytes() == journal


def test_a_torn_first_record_leaves_an_empty_journal(
    journal: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, journal[:20])
    open_storage(None, tmp_path, STUDY)
    assert len(_warnings(capsys.readouterr().err)) == 1
    assert path.read_bytes() == b""
    optuna.create_study(storage=open_storage(None, tmp_path, STUDY), study_name=STUDY)


def test_a_damaged_line_in_the_middle_is_one_spec_error(journal: bytes, tmp_path: Path) -> None:
    lines = journal.splitlines(keepends=True)
    lines[2] = b"not a journal record\n"
    path = _write(tmp_path, b"".join(lines))
    before = path.read_bytes()
    with pytest.raises(SpecError) as error:
        open_storage(None, tmp_path, STUDY)
    message = str(error.value)
    assert message.startswith(f"{path}:3:1: --results: line 3 is not an Optuna journal record")
    assert "\n" not in message and error.value.file == str(path)
    assert path.read_bytes() == before and not list(tmp_path.rglob("*.torn-*"))


def test_a_record_glued_onto_a_torn_one_is_damage_in_the_middle(
    journal: bytes, tmp_path: Path
) -> None:
    # what appends onto an unrepaired torn line leave: a glued line, and more after it
    lines = journal.splitlines(keepends=True)
    glued = lines[-2][:30] + lines[-1]
    path = _write(tmp_path, b"".join(lines[:-2]) + glued + lines[-1])
    with pytest.raises(SpecError, match=f"line {len(lines) - 1} is not an Optuna journal"):
        open_storage(f"journal:{path}", tmp_path, STUDY)


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n" + bytes(200),  # an image
        bytes(i for i in range(256) if i != 10) * 4,  # binary junk without a line end
        b"hello\n",  # a text file
        b'{"a": 1}\n{"b": 2}\n',  # JSON lines, but not a journal
    ],
    ids=["png", "binary", "text", "json-lines"],
)
def test_a_file_that_is_no_journal_is_one_spec_error(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "other.log"
    path.write_bytes(content)
    with pytest.raises(SpecError) as error:
        open_storage(str(path), tmp_path, STUDY)
    message = str(error.value)
    assert message.startswith(f"{path}:1:1: --storage: line 1 is not an Optuna journal record")
    assert "\n" not in message and error.value.path == ("--storage",)
    assert path.read_bytes() == content and not list(tmp_path.glob("*.torn-*"))


def test_a_directory_in_place_of_the_journal_is_one_spec_error(tmp_path: Path) -> None:
    _journal(tmp_path).mkdir(parents=True)
    with pytest.raises(SpecError, match=r"journal.log: --results: is a directory"):
        open_storage(None, tmp_path, STUDY)
    (tmp_path / "file").write_text("x")
    with pytest.raises(SpecError, match=r"--storage: cannot create its folder .*file") as error:
        open_storage(f"journal:{tmp_path / 'file' / 'journal.log'}", tmp_path, STUDY)
    assert "\n" not in str(error.value)


def test_search_resumes_a_torn_journal(tiny_space, tmp_path: Path) -> None:
    space = tiny_space("torn", budget=1e-6)
    results = tmp_path / "results"

    def search(trials: int) -> subprocess.CompletedProcess[str]:
        command = [
            sys.executable, "-m", "harness", "search", str(space), "--results", str(results),
            "--trials", str(trials), "--json", "--draws", "0",
        ]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    first = search(3)
    assert first.returncode == 0, first.stderr
    path = results / "torn" / "journal.log"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 25])  # torn inside the last record
    second = search(5)
    assert second.returncode == 0, second.stderr
    warnings = _warnings(second.stderr)
    last_line = data.count(b"\n")
    assert len(warnings) == 1 and f"{path}:{last_line}: " in warnings[0]
    assert "Traceback" not in second.stderr
    assert json.loads(second.stdout)["n_infeasible"] == 5
    study = optuna.load_study(study_name="torn", storage=open_storage(None, results, "torn"))
    states = [t.state.name for t in study.get_trials()]
    # the trial whose last record was torn ran on a process that is gone: failed, run again
    assert states.count("COMPLETE") == 5 and states.count("FAIL") == 1
