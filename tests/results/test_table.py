"""The results table: round trip, tolerance of damaged files, no torch/Optuna imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd

import harness.results
from harness.results import COLUMNS, load_results, save_results


def test_round_trip(tmp_path: Path) -> None:
    rows = pd.DataFrame(
        [
            {"study": "s", "trial": 0, "state": "complete", "top1": 0.5, "param.a.b": 3},
            {"study": "s", "trial": 1, "state": "infeasible", "param.a.b": "x"},
        ]
    )
    path = save_results(rows, tmp_path / "s")
    assert path == tmp_path / "s" / "trials.parquet"
    assert (tmp_path / "s" / "trials.csv").is_file()
    df = load_results(tmp_path)
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert df["trial"].tolist() == [0, 1]
    assert df["param.a.b"].tolist() == ["3", "x"]  # mixed types are stored as text
    assert df["top1"].isna().tolist() == [False, True]


def test_missing_and_damaged(tmp_path: Path) -> None:
    assert load_results(tmp_path / "nowhere").empty
    save_results(
        pd.DataFrame([{"study": "good", "trial": 0, "state": "complete"}]), tmp_path / "good"
    )
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "trials.parquet").write_bytes(b"not parquet")
    df = load_results(tmp_path)
    assert df["study"].tolist() == ["good"]
    assert any("bad/trials.parquet" in e for e in df.attrs["errors"])


def test_imports_neither_torch_nor_optuna() -> None:
    package = Path(harness.results.__file__).parent
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                root = name.split(".")[0]
                assert root not in ("torch", "optuna"), f"{source.name} imports {name}"
                assert not name.startswith(("harness.search", "harness.compiler")), name


def test_every_metric_a_search_measures_has_its_column() -> None:
    from harness.costs import COSTS
    from harness.search.space import METRICS, TASK_METRICS

    assert set(METRICS) == {m for metrics in TASK_METRICS.values() for m in metrics}
    assert set(METRICS) <= set(COLUMNS)
    assert all(COLUMNS[m] == "Float64" for m in METRICS)
    assert set(COSTS) <= set(COLUMNS)
