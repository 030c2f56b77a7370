"""``harness dashboard``: the command it runs (the served app is tests/dashboard's job)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.cli._dashboard import APP, streamlit_command


def test_dashboard_serves_this_machine_only_by_default() -> None:
    command = streamlit_command(Path("/tmp/results"), port=8600, host="127.0.0.1")
    assert command[:5] == [sys.executable, "-m", "streamlit", "run", str(APP)]
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert command[command.index("--server.port") + 1] == "8600"
    assert command[-3:] == ["--", "--results", "/tmp/results"]
    assert APP.is_file()


def test_dashboard_help_and_bad_port() -> None:
    run = [sys.executable, "-m", "harness", "dashboard"]
    result = subprocess.run([*run, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "--results" in result.stdout and "127.0.0.1" in result.stdout
    result = subprocess.run([*run, "--port", "0"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2


def test_dashboard_of_a_missing_or_file_results_folder_is_one_line(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "harness", "dashboard", "--results"]
    (tmp_path / "file").write_text("x")
    for results, why in ((tmp_path / "none", "does not exist"), (tmp_path / "file", "is not a")):
        result = subprocess.run([*run, str(results)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2
        assert result.stderr.startswith("harness: <command line>: --results: results directory")
        assert why in result.stderr and result.stderr.count("\n") == 1
