"""A real study to read: a short search of ``search_spaces/tiny.yaml`` (seconds a trial)."""

from __future__ import annotations

from pathlib import Path

import pytest

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a 6-trial study of the tiny space (shared: do not modify)."""
    from harness.search import load_space, run_search

    results = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HARNESS_CACHE_DIR", str(results / ".cache"))
        space = load_space(SPACES / "tiny.yaml")
        run_search(space, trials=6, study="tiny", results_dir=results, check=False)
    return results / "tiny"
