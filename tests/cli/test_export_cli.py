"""``harness export`` as a user runs it: a real study's Pareto member or knee as a spec file
that ``harness compile`` reads back to the trial's hash and parameters; bad input is one
line and exit status 2; an existing file is never overwritten silently."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from harness.results import (
    load_study_results,
    pareto_front,
    save_results,
    study_budgets,
    study_objectives,
)
from harness.spec import load_spec, realise

HARNESS = [sys.executable, "-m", "harness"]
TINY = Path(__file__).resolve().parents[2] / "search_spaces" / "tiny.yaml"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder holding a real 6-trial study of the tiny space ('tiny'), and 'edited':
    the same rows plus a dominated trial 90 and a failed trial 91."""
    root = tmp_path_factory.mktemp("export")
    done = run("search", str(TINY), "--trials", "6", "--draws", "0", "--results", "results",
               "--json", cwd=root)  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = load_study_results(root / "results" / "tiny")
    member = table[table["state"] == "complete"].iloc[0]
    extra = [
        {**member.to_dict(), "trial": 90, "top1": 0.0, "spec_hash": "d" * 64},
        {**member.to_dict(), "trial": 91, "state": "failed", "reason": "a bug in a block"},
    ]
    edited = pd.concat([table, pd.DataFrame(extra)], ignore_index=True).assign(study="edited")
    save_results(edited, root / "results" / "edited")
    return root / "results"


def _front(results: Path) -> pd.DataFrame:
    table = load_study_results(results / "tiny")
    return pareto_front(table, study_objectives(table), study_budgets(table))


def _check_reproduces(path: Path, row: pd.Series, cwd: Path) -> None:
    """``harness compile FILE`` gives the trial's hash and parameter count; the searched
    keys hold the trial's values."""
    compiled = run("compile", str(path), "--json", cwd=cwd)
    assert compiled.returncode == 0, compiled.stderr
    report = json.loads(compiled.stdout)
    assert report["spec_hash"] == row["spec_hash"] and report["params"] == row["params"]
    spec = realise(load_spec(path)).model_dump(mode="json")
    for key in (k for k in row.index if k.startswith("param.")):
        if pd.isna(row[key]):
            continue  # a key its when: branch did not draw
        node = spec
        for part in key.removeprefix("param.").split("."):
            node = node[int(part)] if part.isdigit() else node[part]
        node = node[0] if isinstance(node, list) else node  # a temporal kernel cycle of one
        assert node == row[key] or str(node) == str(row[key]), key


def test_every_pareto_member_and_the_knee(results: Path, tmp_path: Path) -> None:
    front = _front(results)
    assert not front.empty
    for _, row in front.iterrows():
        trial = int(row["trial"])
        done = run("export", "--results", str(results), "--study", "tiny", "--trial",
                   str(trial), "--out", f"t{trial}.yaml", cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"wrote t{trial}.yaml: study tiny, trial {trial} (on ")
        assert "tiny_c2d: stem 16 | " in done.stdout and done.stderr == ""
        _check_reproduces(tmp_path / f"t{trial}.yaml", row, tmp_path)
    knee = run("export", "--results", str(results / "tiny"), "--knee", cwd=tmp_path)
    assert knee.returncode == 0, knee.stderr
    written = knee.stdout.split(":")[0].removeprefix("wrote ")
    trial = int(written.removeprefix("tiny-trial").removesuffix(".yaml"))
    assert trial in set(front["trial"]) and "(the knee of the Pareto set)" in knee.stdout
    header = [line for line in (tmp_path / written).read_text().splitlines() if line[:1] == "#"]
    assert header[0] == (
        f"# Exported by `harness export`: study 'tiny', trial {trial}, the knee of the Pareto set."
    )
    assert header[1].startswith("# objectives: top1 ") and "(maximize), gflops " in header[1]
    assert any(line.startswith("# search parameters: stages.") for line in header)


def test_an_existing_file_is_kept_without_force(results: Path, tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("my own file\n")
    args = ["export", "--results", str(results), "--study", "tiny", "--knee", "--out", "mine.yaml"]
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        "harness: <command line>: --out: mine.yaml exists; add --force to overwrite it\n"
    )
    assert (tmp_path / "mine.yaml").read_text() == "my own file\n"
    forced = run(*args, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "mine.yaml").read_text().startswith("# Exported by `harness export`")


def test_to_stdout(results: Path, tmp_path: Path) -> None:
    done = run("export", "--results", str(results), "--study", "tiny", "--knee", "--out", "-",
               cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Exported by `harness export`")
    assert yaml.safe_load(done.stdout)["name"] == "tiny_c2d"  # the spec alone on stdout
    assert done.stderr.startswith("study tiny, trial ") and list(tmp_path.iterdir()) == []


def _not_complete(results: Path) -> str:
    table = load_study_results(results / "tiny")
    other = table[table["state"] != "complete"]
    return str(other["trial"].iloc[0]) if len(other) else "91"


NOT_ON_FRONT = "is not on its Pareto set (complete, within budget): its members are trials "
ONE_OF = "--trial: give --trial N or --knee, one of them"
BAD = {
    "no_such_study": ("--study nope --knee", "--study: no study 'nope' in {results}; studies: "),
    "which_study": ("--knee", "--study: name one of the studies in {results}: edited, tiny"),
    "study_is_a_path": ("--study ../tiny --knee", "--study: no study '../tiny' in {results}"),
    "no_such_trial": ("--study tiny --trial 60", "study 'tiny' has no trial 60 (trials 0 to 5)"),
    "failed": ("--study edited --trial 91", "91 of study 'edited' is failed, not complete: a bug"),
    "not_complete": ("--study tiny --trial {other}", "trial {other} of study 'tiny' is "),
    "dominated": ("--study edited --trial 90", f"trial 90 of study 'edited' {NOT_ON_FRONT}"),
    "neither": ("--study tiny", ONE_OF),
    "both": ("--study tiny --trial 0 --knee", ONE_OF),
    "out_is_a_folder": ("--study tiny --knee --out .", "--out: . is a folder; give a file name"),
}


@pytest.mark.parametrize(("args", "expected"), BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_line_and_status_2(
    results: Path, tmp_path: Path, args: str, expected: str
) -> None:
    fill = {"results": str(results), "other": _not_complete(results)}
    done = run("export", "--results", str(results), *args.format(**fill).split(), cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("harness: <command line>: "), done.stderr
    assert expected.format(**fill) in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("missing", "--results: {path} does not exist: give a search's --results"),
        ("file", "--results: {path} is a file, not a results folder"),
        ("empty", "--results: no study in {path} (no */trials.parquet)"),
    ],
)
def test_a_results_folder_that_is_not_one(tmp_path: Path, where: str, expected: str) -> None:
    path = tmp_path / where
    if where == "file":
        path.write_text("x\n")
    elif where == "empty":
        path.mkdir()
    done = run("export", "--results", str(path), "--knee", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr == f"harness: <command line>: {expected.format(path=path)}\n"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [  # a table edited by hand, or written by a harness whose specs differ from this one's
        (lambda text: text.replace("stages:", "stagez:", 1), "its stored spec no longer loads"),
        (lambda text: text.replace("  width: 16\n", "  width: 24\n", 1), "gives the hash"),
    ],
    ids=["does_not_load", "other_hash"],
)
def test_a_stored_spec_that_is_not_the_trials_is_refused(
    results: Path, tmp_path: Path, edit, expected: str
) -> None:
    member = _front(results).iloc[[0]]
    damaged = member.assign(spec_yaml=member["spec_yaml"].map(edit), study="damaged")
    assert (damaged["spec_yaml"] != member["spec_yaml"]).all()
    save_results(damaged, tmp_path / "r" / "damaged")
    done = run("export", "--results", str(tmp_path / "r"), "--knee", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr.count("\n") == 1 and expected in done.stderr, done.stderr
    assert done.stderr.startswith("harness: <command line>: --trial: trial "), done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # nothing written
