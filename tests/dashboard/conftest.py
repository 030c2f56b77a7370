"""Fixtures for the dashboard tests: a fixture results store written with pandas."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the dashboard package sits beside harness/, not installed
    sys.path.insert(0, str(ROOT))


def _load_make_store():
    spec = importlib.util.spec_from_file_location(
        "dashboard_fixture_store", Path(__file__).parent / "fixtures" / "make_store.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_store = _load_make_store()


@pytest.fixture(scope="session")
def results_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only-by-convention fixture store shared by the session (do not modify)."""
    return make_store.write_results_store(tmp_path_factory.mktemp("results"), trials=120)


@pytest.fixture
def fresh_store(tmp_path: Path) -> Path:
    """A fixture store of one's own, free to corrupt."""
    return make_store.write_results_store(tmp_path / "results", trials=30)


@pytest.fixture
def localization_store(fresh_store: Path) -> tuple[Path, str]:
    """A fixture store of one's own with a localization study; and that study's protocol."""
    make_store.write_localization_study(fresh_store)
    return fresh_store, make_store.LOCALIZATION_PROTOCOL
