"""Search spaces: every shipped space loads; bad spaces name file:line:col and key path."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from harness.errors import SpecError
from harness.search import create_sampler, list_samplers, load_space
from harness.search._tasks import describe_candidate
from harness.spec import spec_hash

SPACES = sorted((Path(__file__).resolve().parents[2] / "search_spaces").glob("*.yaml"))


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_shipped_space_loads_and_samples(path: Path) -> None:
    space = load_space(path)
    study = optuna.create_study(
        directions=space.directions(), sampler=optuna.samplers.RandomSampler(seed=0)
    )
    trial = study.ask()
    spec = space.create_spec(space.sample(trial))
    assert len(describe_candidate(space, spec)["spec_hash"]) == 64
    if space.task == "recognition":
        assert describe_candidate(space, spec)["spec_hash"] == spec_hash(spec)


def test_conditional_and_tied(tiny_space) -> None:
    space = load_space(tiny_space())
    study = optuna.create_study(
        directions=space.directions(), sampler=optuna.samplers.RandomSampler(seed=1)
    )
    seen_types = set()
    for _ in range(12):
        values = space.sample(study.ask())
        seen_types.add(values["stages.1.block.type"])
        has_kernel = "stages.1.block.temporal_kernel" in values
        assert has_kernel == (values["stages.1.block.type"] == "basic")
        spec = space.create_spec(values)
        assert spec.stages[2].block.type == spec.stages[1].block.type  # tied
    assert seen_types == {"basic", "r2plus1d"}


BAD = [
    (
        "params:\n  stages.1.width: {type: int, low: 9, high: 3}\n",
        ":5:3: params.stages.1.width",
        "below low",
    ),
    ("params:\n  stages.9.width: [8]\n", ":5:3: params.stages.9.width", "does not exist"),
    ("params:\n  stages.1.block.type: [basik]\n", "params.stages.1.block.type", "invalid"),
    ("objectives: {top1: maximize, flops: minimize}\n", "objectives", "unknown objective 'flops'"),
    ("budgets: {latency: 3}\n", "budgets", "unknown cost 'latency'"),
    (
        "params:\n  stages.1.width: {type: int, low: 8, high: 16, stepp: 8}\n",
        ":5:49: params.stages.1.width.stepp",
        "unknown key",
    ),
    ("sampler_options: [\n", ":5:1: <root>", "YAML syntax error"),
]


@pytest.mark.parametrize(("tail", "where", "what"), BAD)
def test_bad_space(tmp_path: Path, tail: str, where: str, what: str) -> None:
    (tmp_path / "base.yaml").write_text("base: r3d_18\n")
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nbase: base.yaml\ndata: synthetic:ci\n" + tail)
    with pytest.raises(SpecError) as info:
        load_space(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert where in message and what in message, message


def test_samplers_registry() -> None:
    names = list_samplers()
    for name in ("tpe", "nsga2", "nsga3", "random", "grid"):
        assert name in names
    with pytest.raises(SpecError, match="known: "):
        create_sampler("tpee", seed=0, space=None)  # type: ignore[arg-type]


def test_grid_sampler_covers_the_grid(tiny_space) -> None:
    space = load_space(tiny_space())
    sampler = create_sampler("grid", seed=0, space=space)
    assert isinstance(sampler, optuna.samplers.GridSampler)


def test_data_next_to_the_space_file_is_found_from_anywhere(
    tiny_space, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tiny_space()
    (path.parent / "direction.yaml").write_text("type: synthetic\nsize: tiny\nclasses: 2\n")
    for written, expected in (
        ("direction.yaml", str((path.parent / "direction.yaml").resolve())),
        ("folder:direction.yaml", f"folder:{(path.parent / 'direction.yaml').resolve()}"),
        ("synthetic:ci", "synthetic:ci"),
        ("elsewhere/videos", "elsewhere/videos"),  # not beside the space: as written
    ):
        path.write_text(path.read_text().replace("data: synthetic:ci", f"data: {written}"))
        monkeypatch.chdir(tmp_path.parent)  # not the space's folder
        assert load_space(path).data == expected
        path.write_text(path.read_text().replace(f"data: {written}", "data: synthetic:ci"))
