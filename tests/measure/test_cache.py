"""The cost cache: keys, persistence, and that no cost is computed twice."""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.measure import CostCache, CostKey, TrainMemory, precheck
from harness.measure import cache as cache_module
from harness.report import describe_model

# The package exports the function precheck under the module's name.
precheck_module = importlib.import_module("harness.measure.precheck")


def _key(**changes: Any) -> CostKey:
    key = CostKey.of(
        "ab" * 32, (3, 8, 32, 32), batch=4, device="cpu", precision="fp32", kind="precheck"
    )
    return replace(key, **changes)


def test_every_field_of_the_key_counts() -> None:
    digests = {
        _key().digest(),
        _key(spec_hash="cd" * 32).digest(),
        _key(input_shape=(3, 8, 64, 64)).digest(),
        _key(batch=8).digest(),
        _key(device="cuda").digest(),
        _key(precision="bf16").digest(),
        _key(kind="latency").digest(),
        _key(options={"optimizer": "adamw"}).digest(),
    }
    assert len(digests) == 8
    assert _key().digest() == _key().digest()


def test_results_persist_across_instances(tmp_path: Path) -> None:
    CostCache(tmp_path).put(_key(), {"flops": 42})
    fresh = CostCache(tmp_path)
    assert fresh.get(_key()) == {"flops": 42}
    assert fresh.get(_key(batch=2)) is None
    assert len(fresh) == 1


def test_default_directory_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cache_module.CACHE_ENV, str(tmp_path / "costs"))
    assert CostCache().path == tmp_path / "costs" / "costs.sqlite"
    monkeypatch.delenv(cache_module.CACHE_ENV)
    assert CostCache().directory == Path("results") / ".cache"


def _count_calls(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_precheck_is_computed_once_per_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    simulations = _count_calls(monkeypatch, precheck_module, "simulate_train_step")
    builds = _count_calls(monkeypatch, precheck_module, "build_model")
    cache = CostCache(tmp_path)
    first = precheck("tiny_c2d", batch=2, cache=cache)
    again = precheck("tiny_c2d", batch=2, cache=CostCache(tmp_path))  # from disk
    assert again == first
    assert (len(simulations), len(builds)) == (1, 1)  # a hit builds nothing
    precheck("tiny_c2d", batch=4, cache=cache)
    precheck("tiny_c2d", batch=2, precision="bf16", cache=cache)
    precheck("tiny_c2d", batch=2, classes=5, cache=cache)
    assert len(simulations) == 4


def test_an_entry_of_another_version_is_measured_again(tmp_path: Path) -> None:
    cache = CostCache(tmp_path)
    first = precheck("tiny_c2d", batch=2, cache=cache)

    def stored() -> str:
        connection = cache._connect()
        try:
            ((value,),) = connection.execute("SELECT value FROM costs").fetchall()
        finally:
            connection.close()
        return str(value)

    connection = cache._connect()
    with connection:  # as another version of the result's fields would have written it
        connection.execute("UPDATE costs SET value = json_set(value, '$.added_later', 1)")
    connection.close()
    assert "added_later" in stored()
    assert precheck("tiny_c2d", batch=2, cache=CostCache(tmp_path)) == first
    assert "added_later" not in stored()  # replaced by the measurement


def test_an_empty_cache_given_is_the_one_used(tmp_path: Path) -> None:
    from harness.costs import CostRequest, measure_costs

    cache = CostCache(tmp_path / "mine")
    assert len(cache) == 0  # falsy: it must not be taken for "no cache given"
    measure_costs("tiny_c2d", CostRequest(batch=2), ["gflops"], cache=cache)
    assert len(CostCache(tmp_path / "mine")) == 1


def test_describe_model_caches_training_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The report's training step is the cost room's pre-check: one simulation per setting.
    estimates = _count_calls(monkeypatch, precheck_module, "_simulate")
    cache = CostCache(tmp_path)
    first = describe_model("tiny_c2d", batch=2, cache=cache)
    again = describe_model("tiny_c2d", batch=2, cache=cache)
    assert isinstance(again.train_memory, TrainMemory)
    assert again.train_memory == first.train_memory
    assert len(estimates) == 1
    describe_model("tiny_c2d", batch=2, optimizer="adamw", cache=cache)
    assert len(estimates) == 2


def test_describe_model_counts_flops_once_and_a_hit_builds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.report as report_module

    counts = _count_calls(monkeypatch, report_module, "count_flops")
    builds = _count_calls(monkeypatch, report_module, "build_model")
    first = describe_model("tiny_c2d", cache=CostCache(tmp_path))
    again = describe_model("tiny_c2d", cache=CostCache(tmp_path))  # from disk
    assert again == first and again.stages == first.stages
    assert (len(counts), len(builds)) == (1, 1)
    other = describe_model("tiny_c2d", frames=4, cache=CostCache(tmp_path))
    assert other.input_shape != first.input_shape and len(counts) == 2


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"not SQLite\n" * 100, "is not a SQLite database"),
        (b"SQLite format 3\x00" + b"\xff" * 4000, "damaged SQLite database"),
    ],
    ids=["garbage", "torn"],
)
def test_a_damaged_cache_is_one_error_and_is_left_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, words: str
) -> None:
    from harness.errors import SpecError

    monkeypatch.chdir(tmp_path)  # the default folder is relative: results/.cache
    path = tmp_path / "results" / ".cache" / "costs.sqlite"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(SpecError, match=words) as error:
        CostCache().get(_key())
    assert str(error.value).startswith(f"{Path('results/.cache/costs.sqlite')}: HARNESS_CACHE_DIR:")
    assert path.read_bytes() == content  # nothing written into it
    assert sorted(p.name for p in path.parent.iterdir()) == ["costs.sqlite"]


def test_a_foreign_costs_table_is_refused_untouched(tmp_path: Path) -> None:
    import sqlite3

    from harness.errors import SpecError

    with sqlite3.connect(tmp_path / "costs.sqlite") as db:
        db.execute("CREATE TABLE costs (digest TEXT PRIMARY KEY, junk TEXT)")
    before = (tmp_path / "costs.sqlite").read_bytes()
    with pytest.raises(SpecError, match="not a harness cost cache"):
        CostCache(tmp_path).put(_key(), {"flops": 1})
    assert (tmp_path / "costs.sqlite").read_bytes() == before
    (tmp_path / "file").write_text("x")
    with pytest.raises(SpecError, match="is not a folder"):
        CostCache(tmp_path / "file").get(_key())
