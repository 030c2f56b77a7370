"""Storage URLs: the driver harness installs, and a storage that cannot be opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import SpecError
from harness.search._storage import open_storage


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_a_bare_postgresql_url_uses_psycopg2(scheme: str, tmp_path: Path) -> None:
    # Nothing listens on port 1: the error must come from psycopg2 connecting (the driver
    # harness installs), not from a missing psycopg module.
    url = f"{scheme}://user:secret@127.0.0.1:1/db"
    with pytest.raises(SpecError) as error:
        open_storage(url, tmp_path, "study")
    message = str(error.value)
    assert "psycopg2.OperationalError" in message and "Connection refused" in message
    assert "secret" not in message and "user:***@127.0.0.1:1" in message
    assert "\n" not in message


def test_search_with_an_unreachable_storage_is_one_line(
    tiny_space, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tiny_space("unreachable")
    url = "postgresql://user:secret@127.0.0.1:1/db"
    with pytest.raises(SystemExit) as exit_:
        main(["search", str(space), "--storage", url, "--results", str(tmp_path), "--json"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2
    assert len(err.splitlines()) == 1 and "--storage: cannot open storage" in err
    assert "secret" not in err and "Traceback" not in err
