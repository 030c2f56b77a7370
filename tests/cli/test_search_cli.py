"""``harness search`` as a user runs it: exit status, one-line errors, the --json contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = [sys.executable, "-m", "harness"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def _space(tmp_path: Path, tail: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text("name: cli\nbase: tiny_c2d\ndata: synthetic:ci\n" + tail)
    return path


def test_bad_space_exits_2_with_one_line(tmp_path: Path) -> None:
    path = _space(tmp_path, "params:\n  stages.1.width: {type: int, low: 8, high: 16, stpe: 8}\n")
    result = run("search", str(path), "--trials", "1", "--results", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"{path}:5:49: params.stages.1.width.stpe: unknown key 'stpe'" in result.stderr


def test_bad_budget_exits_2(tmp_path: Path) -> None:
    path = _space(tmp_path, "")
    result = run("search", str(path), "--budget", "flops=2", "--results", str(tmp_path))
    assert result.returncode == 2
    assert "--budget" in result.stderr and "unknown cost 'flops'" in result.stderr


def test_json_contract_and_budget_override(tmp_path: Path) -> None:
    path = _space(tmp_path, "budgets: {gflops: 100}\nparams:\n  stages.1.width: [16, 32]\n")
    args = ["search", str(path), "--trials", "2", "--results", str(tmp_path), "--json"]
    result = run(*args, "--budget", "gflops=0.000001", "--seed", "3", "--sampler", "random",
                 "--draws", "0")  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    for key in ("study", "results", "n_complete", "n_infeasible", "n_failed", "pareto"):
        assert key in out
    assert out["study"] == "cli" and out["n_infeasible"] == 2 and out["pareto"] == []
    assert Path(out["results"]).is_file()
    assert (Path(out["results"]).parent / "trials.csv").is_file()


def test_text_output_shows_the_pareto_set_once_then_the_summary(tmp_path: Path) -> None:
    path = _space(tmp_path, "budgets: {gflops: 100}\nparams:\n  stages.1.width: [16, 32]\n")
    args = ["search", str(path), "--trials", "2", "--results", str(tmp_path)]
    result = run(*args, "--budget", "gflops=0.000001", "--sampler", "random", "--draws", "0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()  # the results: the Pareto set and the summary
    assert result.stdout.count("Pareto set") == 1 and "Pareto set" not in result.stderr
    summary = [line for line in lines if "infeasible (rejected before training)" in line]
    assert len(summary) == 1 and summary[0].startswith("study cli: 0 complete, 2 infeasible")
    table = tmp_path / "cli" / "trials.parquet"
    assert f"results table: {table} (and trials.csv beside it)" in lines  # path unbroken
    assert "export a spec" not in result.stdout  # nothing on the Pareto set to export
    check, bar = result.stderr.splitlines()  # the progress: the space check, then the bar
    assert check.startswith("space cli: ") and bar.startswith("trials ") and "infeasible 2" in bar


def test_results_go_to_stdout_and_progress_to_stderr(tmp_path: Path) -> None:
    path = _space(tmp_path, "budgets: {gflops: 100}\nparams:\n  stages.1.width: [16, 32]\n")
    args = ["search", str(path), "--trials", "2", "--results", str(tmp_path / "r")]
    result = run(*args, "--sampler", "random", "--seed", "1")
    assert result.returncode == 0, result.stderr
    err = result.stderr.splitlines()
    assert err[0].startswith("space cli: every value of every parameter realised")  # the check
    assert err[-1].startswith("trials ") and "complete 2" in err[-1]  # the bar, at its end
    assert "Pareto set" not in result.stderr and "study cli" not in result.stderr
    out = result.stdout
    assert out.startswith("Pareto set (complete, within budget)")
    assert "architecture" in out and "tiny_c2d: stem 16 | basic(t1) 16 |" in out
    command = f"harness export --results {tmp_path / 'r'} --study cli --knee"
    assert f"export a spec: {command} (or --trial N)" in out.splitlines()
    as_json = run(*args, "--trials", "3", "--sampler", "random", "--seed", "1", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["n_complete"] == 3  # the object alone on stdout
    assert as_json.stderr == ""


def test_a_study_is_a_name_not_a_path(tmp_path: Path) -> None:
    path = _space(tmp_path, "params:\n  stages.1.width: [16, 32]\n")
    results = tmp_path / "results"
    for study in ("../../elsewhere", "a/b", ".hidden", "-x", "x" * 200):
        result = run("search", str(path), "--trials", "1", "--results", str(results),
                     "--study", study, "--draws", "0")  # fmt: skip
        assert result.returncode == 2, (study, result.stderr)
        assert result.stderr.startswith("harness: <command line>: --study: "), result.stderr
        assert result.stderr.count("\n") == 1
    assert not (tmp_path / "elsewhere").exists() and not results.exists()  # nothing written


def test_a_timeout_is_a_positive_number_of_seconds(tmp_path: Path) -> None:
    path = _space(tmp_path, "params:\n  stages.1.width: [16, 32]\n")
    for timeout in ("-1", "0", "nan", "inf"):
        result = run("search", str(path), "--trials", "1", "--results", str(tmp_path),
                     "--timeout", timeout)  # fmt: skip
        assert result.returncode == 2, (timeout, result.stderr)
        assert result.stderr.startswith("harness: <command line>: --timeout: "), result.stderr


@pytest.mark.parametrize(
    ("blind", "verdict"),
    [(0.4, "(time pays: +0.450)"), (0.85, "(a tie)"), (0.9, "(time did not pay here)")],
)
def test_the_summary_says_whether_mixing_frames_paid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], blind: float, verdict: str
) -> None:
    import pandas as pd

    from harness.cli._search import _summary
    from harness.search import SearchResult, load_space

    space = load_space(Path(__file__).parents[2] / "search_spaces" / "demo.yaml")
    rows = [  # one trained network of each kind, and a reused duplicate that does not count
        {"trial": 0, "state": "complete", "mixes_time": True, "top1": 0.85, "gflops": 0.05},
        {"trial": 1, "state": "complete", "mixes_time": False, "top1": blind, "gflops": 0.01},
        {"trial": 2, "state": "complete", "mixes_time": False, "top1": 0.99, "gflops": 0.01,
         "reason": "duplicate of trial 1: result reused"},
    ]  # fmt: skip
    table = pd.DataFrame(rows).assign(reason=lambda df: df["reason"].fillna(""))
    result = SearchResult("s", tmp_path / "trials.parquet", table, dict(space.objectives), {})
    _summary(result, space, 1.0, tmp_path)
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("networks"))
    assert line == (
        f"networks that mix frames: best 0.850 of 1 trained in full; blind to frame order: "
        f"best {blind:.3f} of 1 {verdict}"
    )


def test_the_printed_pareto_set_is_judged_against_the_budgets_in_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Trial 1 completed under an earlier, looser budget; the budget is 0.08 GFLOPs now. The
    # printed set must be the one harness export chooses from: without trial 1.
    import pandas as pd

    from harness.cli._search import _summary
    from harness.search import SearchResult, load_space

    space = load_space(Path(__file__).parents[2] / "search_spaces" / "demo.yaml")
    rows = [
        {"trial": 0, "state": "complete", "top1": 0.6, "gflops": 0.05, "spec_hash": "a" * 64},
        {"trial": 1, "state": "complete", "top1": 0.9, "gflops": 0.5, "spec_hash": "b" * 64},
    ]
    table = pd.DataFrame(rows).assign(reason="", protocol="p", feasible=True)
    result = SearchResult(
        "s", tmp_path / "trials.parquet", table, dict(space.objectives), dict(space.budgets)
    )
    assert list(result.pareto()["trial"]) == [0]
    _summary(result, space, 1.0, tmp_path)
    out = capsys.readouterr().out
    assert "aaaaaaaa" in out and "bbbbbbbb" not in out
