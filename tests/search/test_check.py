"""A bad space is found before the first trial: ``harness check`` and the start of ``harness
search`` realise every value, read the data and scan the budgets; each problem is one line
at the space file's line and key path, exit 2, and no trial is created."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import SpecError
from harness.search import check_space, load_space

HARNESS = [sys.executable, "-m", "harness"]

HEAD = """\
name: checked
base: tiny_c2d
data: {data}
objectives: {{top1: maximize, gflops: minimize}}
budgets: {{gflops: {budget}}}
fidelity: {{epochs: 1, subset: 0.1, frames: {frames}, size: {size}}}
train: {{batch_size: 16, num_workers: 0}}
"""
PARAMS = """\
params:
  stages.1.block.type: [basic, r2plus1d]
  stages.1.width: {type: int, low: 16, high: 64, step: 16}
"""


def _write(tmp_path: Path, params: str = PARAMS, **head: object) -> Path:
    fields = {"data": "synthetic:ci", "budget": 0.08, "frames": 4, "size": 16, **head}
    path = tmp_path / "checked.yaml"
    path.write_text(HEAD.format(**fields) + params)
    return path


def _search(path: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [*HARNESS, "search", str(path), "--trials", "3", "--results", str(tmp_path / "r")]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300)


def _refused(done: subprocess.CompletedProcess[str], where: str, words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("harness: "), done.stderr
    assert where in done.stderr and words in done.stderr, done.stderr


def _no_trial(tmp_path: Path) -> None:
    assert not (tmp_path / "r" / "checked" / "journal.log").exists()


BAD = [
    pytest.param(
        "params:\n  stages.1.block.type: [basic, r2plus1dd]\n",
        {},
        ":9:32: params.stages.1.block.type.1",
        "stages.1.block.type='r2plus1dd'",
        id="misspelt-choice",
    ),
    pytest.param(
        "params:\n  stages.1.block.type: {type: categorical, choices: [basic, r2plus1dd]}\n",
        {},
        "params.stages.1.block.type.choices.1",
        "unknown type 'r2plus1dd'",
        id="misspelt-choice-long-form",
    ),
    pytest.param(
        PARAMS,
        {"frames": 4, "size": 2},
        "params",
        "at the fidelity's clip",
        id="fidelity-clip-too-small",
    ),
    pytest.param(
        PARAMS,
        {"data": "/nonexistent/videos"},
        ":3:1: data",
        "data '/nonexistent/videos'",
        id="missing-data",
    ),
    pytest.param(
        PARAMS,
        {"budget": 0.001},
        ":5:1: budgets",
        "no candidate is within budget: of 200 random draws the cheapest",
        id="nothing-within-budget",
    ),
    pytest.param(
        "params:\n  stages.1.block.type: [basic, r2plus1d]\n"
        "  stages.1.block.temporal_kernel:\n"
        "    {type: categorical, choices: [1, 3], when: {stages.1.block.type: bassic}}\n",
        {},
        "params.stages.1.block.temporal_kernel.when.stages.1.block.type",
        "never takes the value 'bassic'",
        id="when-on-an-impossible-value",
    ),
    pytest.param(
        PARAMS + "tied:\n  stages.1.width: stages.1.block.type\n",
        {},
        "tied.stages.1.width",
        "both a parameter and tied",
        id="tied-and-sampled",
    ),
]


@pytest.mark.parametrize(("params", "head", "where", "words"), BAD)
def test_bad_space_stops_before_any_trial(
    tmp_path: Path, params: str, head: dict, where: str, words: str
) -> None:
    path = _write(tmp_path, params, **head)
    _refused(_search(path, tmp_path, "--json"), where, words)
    _no_trial(tmp_path)
    done = subprocess.run([*HARNESS, "check", str(path)], capture_output=True, text=True)
    _refused(done, where, words)


@pytest.mark.parametrize(
    ("replace", "where", "words"),
    [
        ("train: {batch_size: 16, num_workers: 0}", "train.batch_size", "must be at least"),
        ("fidelity: {epochs: 1,", "halving.min_epochs", "first promotion"),
    ],
    ids=["batch-size-0", "halving-past-the-epochs"],
)
def test_bad_settings_name_their_line(tmp_path: Path, replace: str, where: str, words: str) -> None:
    path = _write(tmp_path)
    text = path.read_text()
    if replace.startswith("train"):
        text = text.replace(replace, "train: {batch_size: 0}")
    else:
        text += "halving: {min_epochs: 4, eta: 2}\n"
    path.write_text(text)
    with pytest.raises(SpecError) as error:
        load_space(path)
    assert str(error.value).startswith(f"{path}:") and where in str(error.value)
    assert words in str(error.value)


def test_an_unknown_sampler_is_refused_before_any_trial(tmp_path: Path) -> None:
    _refused(_search(_write(tmp_path), tmp_path, "--sampler", "gpp"), "--sampler", "known: ")
    _no_trial(tmp_path)


def test_the_gp_sampler_searches(tmp_path: Path) -> None:
    done = _search(_write(tmp_path), tmp_path, "--sampler", "gp", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["n_complete"] + out["n_infeasible"] + out["n_pruned"] == 3


def test_check_reports_the_feasibility_of_the_budgets(tmp_path: Path) -> None:
    report = check_space(load_space(_write(tmp_path, budget=0.04)), draws=50)
    assert report.data.classes == 8 and report.realised == 3  # alike candidates once
    assert report.inputs == ("3x8x32x32", "3x4x16x16")
    (spread,) = report.spreads
    assert spread.name == "gflops" and spread.low <= spread.median <= spread.high
    assert spread.limit == 0.04 and report.within is not None and 0 < report.within < 1
    assert spread.within == report.within
    done = subprocess.run(
        [*HARNESS, "check", str(_write(tmp_path))], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("space checked: every value of every parameter realised")
    assert lines[1].startswith("feasibility over 200 random draws")
    assert lines[2].lstrip().startswith("gflops: min ") and "budget 0.08:" in lines[2]


def test_the_scan_is_printed_at_the_start_of_a_search(tmp_path: Path) -> None:
    done = _search(_write(tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("space checked: every value of every parameter realised")
