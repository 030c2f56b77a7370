"""Searching localization networks: a localization base makes a localization space, with
detection metrics, features extracted once, budgets judged before training, and a study
that resumes where it stopped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest

from harness.errors import SpecError
from harness.localization.evaluate import PROTOCOLS
from harness.measure import cache as cache_module
from harness.results import reused
from harness.search import _tasks as tasks
from harness.search import evaluate_candidates, load_space, run_search
from harness.search._check import check_space
from harness.search.space import SearchSpace

BASE = """\
task: localization
input: {width: 64, steps: 16, backbone: tiny_r2plus1d, window: 8, stride: 4}
neck: {type: pyramid, width: 16, levels: 2, depth: 1}
head: {type: anchor_free, width: 16, depth: 1}
classes: 4
"""

SPACE = """\
name: {name}
base: base.yaml
data: synthetic-untrimmed:tiny
budgets: {{gflops: 0.0008}}
fidelity: {{epochs: 2}}
train: {{batch_size: 8, lr: 0.003}}
params:
  neck.width: [16, 32, 64]
  neck.levels: [1, 2]
{extra}"""


@pytest.fixture
def loc_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a small localization space (features cached under tmp_path)."""
    monkeypatch.setenv(cache_module.CACHE_ENV, str(tmp_path / "cache"))

    def write(name: str = "loc", extra: str = "") -> Path:
        (tmp_path / "base.yaml").write_text(BASE)
        path = tmp_path / f"{name}.yaml"
        path.write_text(SPACE.format(name=name, extra=extra))
        return path

    return write


def test_a_localization_base_makes_a_localization_space(loc_space) -> None:
    space = load_space(loc_space())
    assert space.task == "localization"
    assert space.objectives == {"average_mAP": "maximize", "gflops": "minimize"}
    spec = space.create_spec({"neck.width": 32, "neck.levels": 1})
    assert spec.neck is not None and (spec.neck.width, spec.neck.levels) == (32, 1)
    assert set(get_args(SearchSpace.model_fields["protocol"].annotation)) == set(PROTOCOLS)


@pytest.mark.parametrize(
    ("extra", "where", "message"),
    [
        ("objectives: {top1: maximize}\n", "objectives.top1", "not measured in a localization"),
        ("fidelity: {epochs: 2, frames: 8}\n", "fidelity.frames", "remove fidelity.frames"),
        ("train: {label_smoothing: 0.1}\n", "train.label_smoothing", "does not use"),
        ("retry_with_checkpointing: true\n", "retry_with_checkpointing", "recognition"),
        ("tied: {input.window: neck.width}\n", "tied.input.window", "only input.steps"),
        ("protocol: coco\n", "protocol", "activitynet"),
        (
            "backbone_weights: a.pt\nbackbone_training: {epochs: 1}\n",
            "backbone_training",
            "not both",
        ),
    ],
)
def test_what_a_localization_space_cannot_do_is_named(
    loc_space, extra: str, where: str, message: str
) -> None:
    text = loc_space().read_text()
    for key in ("fidelity", "train"):  # replace a key rather than repeat it
        if extra.startswith(f"{key}:"):
            text = "\n".join(line for line in text.splitlines() if not line.startswith(key))
    path = loc_space().with_name("bad.yaml")
    path.write_text(text + "\n" + extra)
    with pytest.raises(SpecError) as info:
        load_space(path)
    assert where in str(info.value) and message in str(info.value)


def test_a_recognition_space_does_not_measure_map(tiny_space) -> None:
    path = tiny_space()
    text = path.read_text().replace("top1: maximize", "average_mAP: maximize")
    path.write_text(text)
    with pytest.raises(SpecError, match="not measured in a recognition space"):
        load_space(path)


def test_features_of_another_width_are_named_at_the_base(loc_space, tmp_path: Path) -> None:
    path = loc_space()
    (tmp_path / "base.yaml").write_text(BASE.replace("width: 64", "width: 32"))
    with pytest.raises(SpecError, match=r"reads 32-d features; those of data .* are 64-d"):
        check_space(load_space(path), draws=0)


def test_videos_without_a_backbone_to_extract_with_are_named(loc_space, tmp_path: Path) -> None:
    path = loc_space()
    (tmp_path / "base.yaml").write_text(BASE.replace(", backbone: tiny_r2plus1d", ""))
    with pytest.raises(SpecError, match=r"data: .*names no input.backbone"):
        check_space(load_space(path), draws=0)


def test_a_search_judges_before_training_and_resumes(
    loc_space, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fits: list[int] = []
    original = tasks._fit_localizer

    def counted(*args, **kwargs):
        fits.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(tasks, "_fit_localizer", counted)
    space = load_space(loc_space())
    report = check_space(space, draws=20)
    assert report.data.unit == "videos" and report.data.classes == 4
    assert (report.data.train_clips, report.data.val_clips) == (4, 2)
    assert "4 train and 2 val videos" in report.lines()[0]
    first = run_search(space, trials=3, results_dir=tmp_path / "results", check=False)
    table = first.table.set_index("trial")
    assert set(table["state"]) <= {"complete", "infeasible"}
    trained = table[table["state"] == "complete"]
    over = table[table["state"] == "infeasible"]
    assert len(fits) == int((~reused(trained)).sum()) > 0  # never an over-budget one
    assert (over["gflops"] > 0.0008).all() and (trained["gflops"] <= 0.0008).all()
    assert trained["average_mAP"].between(0, 1).all() and trained["mAP_50"].notna().all()
    protocol = "synthetic-untrimmed:tiny|activitynet|features=init|steps=16|epochs=2|subset=1.0"
    assert (trained["protocol"] == protocol).all()
    assert (trained["train_memory_mb"] > 0).all()
    history = json.loads(trained["history"].iloc[0])
    assert [row["epoch"] for row in history] == [2]  # scored where the search reads it
    assert history[-1]["average_mAP"] == trained["average_mAP"].iloc[0]
    # resumed: the first three trials stay as they were, and three more run
    again = run_search(space, trials=6, results_dir=tmp_path / "results", check=False)
    kept = again.table.set_index("trial").loc[[0, 1, 2]]
    assert list(kept["spec_hash"]) == list(table["spec_hash"])
    assert len(again.table) == 6
    complete = again.table[again.table["state"] == "complete"]
    assert len(fits) == int((~reused(complete)).sum())  # each trained once, none again


def test_a_backbone_trained_first_extracts_once(loc_space, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.train

    runs: list[str] = []
    original = harness.train.train

    def counted(spec, data, **kwargs):
        runs.append(str(data))
        return original(spec, data, **kwargs)

    monkeypatch.setattr(harness.train, "train", counted)
    path = loc_space(extra="backbone_training: {data: 'synthetic:ci', epochs: 1}\n")
    space = load_space(path)
    data = tasks.load_space_data(space)
    assert runs == ["synthetic:ci"]
    meta = json.loads((data.folder / "features.json").read_text())
    assert meta["weights"] is not None and meta["weights"].endswith(".pt")
    assert tasks.protocol_key(space, space.create_spec({})).count("features=trained:synthetic:ci:1")
    assert tasks.load_space_data(space).folder == data.folder
    assert runs == ["synthetic:ci"]  # trained once: the second call reuses backbone and features


@pytest.mark.parametrize(
    ("extra", "scored"),
    [
        ("halving: {min_epochs: 2, eta: 3}\n", {2, 6, 18, 20}),  # rungs at 2 x 3^k
        ("objectives: {average_mAP: maximize}\n", None),  # the pruner reads every epoch
        ("objectives: {average_mAP: maximize}\npruner: none\n", {20}),
        ("", {20}),
    ],
)
def test_a_localizer_is_scored_after_the_epochs_the_search_reads(
    loc_space, extra: str, scored: set[int] | None
) -> None:
    text = loc_space().read_text().replace("fidelity: {epochs: 2}", "fidelity: {epochs: 20}")
    path = loc_space().with_name("scored.yaml")
    path.write_text(text + extra)
    assert tasks._scored_epochs(load_space(path)) == scored


HEAD_KINDS = """\
name: kinds
base: base.yaml
data: synthetic-untrimmed:tiny
fidelity: {epochs: 1}
params:
  head.type: [anchor_free, bmn]
  neck: {type: categorical, choices: [null], when: {head.type: bmn}}
  neck.width: {type: categorical, choices: [16, 32], when: {head.type: anchor_free}}
  head.width_3d: {type: categorical, choices: [16], when: {head.type: bmn}}
  head.width_2d: {type: categorical, choices: [8], when: {head.type: bmn}}
  head.samples: {type: categorical, choices: [4], when: {head.type: bmn}}
"""


def test_a_space_over_head_kinds_scores_proposals_class_agnostically(
    loc_space, tmp_path: Path
) -> None:
    loc_space()  # the base and the cache
    path = tmp_path / "kinds.yaml"
    path.write_text(HEAD_KINDS)
    space = load_space(path)
    assert check_space(space, draws=0).realised == 3  # anchor_free x 2 widths, bmn
    bmn = {"head.type": "bmn", "neck": None, "head.width_3d": 16, "head.width_2d": 8,
           "head.samples": 4}  # fmt: skip
    result = evaluate_candidates(space, [bmn, {"head.type": "anchor_free", "neck.width": 16}],
                                 study="kinds", results_dir=tmp_path / "results")  # fmt: skip
    table = result.table.set_index("trial")
    assert list(table["family"]) == ["base:bmn", "base:conv+anchor_free"]
    assert (table["state"] == "complete").all() and table["average_mAP"].notna().all()


def test_a_candidate_the_compiler_rejects_is_a_failed_row_that_names_it(
    loc_space, tmp_path: Path
) -> None:
    loc_space()
    path = tmp_path / "groups.yaml"
    groups = "  head.groups: {type: categorical, choices: [4, 3], when: {head.type: bmn}}\n"
    path.write_text(HEAD_KINDS.replace("name: kinds", "name: groups") + groups)
    bad = {"head.type": "bmn", "neck": None, "head.width_3d": 16, "head.width_2d": 8,
           "head.samples": 4, "head.groups": 3}  # fmt: skip
    result = evaluate_candidates(load_space(path), [bad], study="groups",
                                 results_dir=tmp_path / "results")  # fmt: skip
    row = result.table.iloc[0]
    assert row["state"] == "failed" and "groups must divide" in row["reason"]
    assert row["family"] == "base:bmn" and len(row["spec_hash"]) == 64  # it says which one


def test_the_task_is_read_from_the_base_once(loc_space, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.search.space as space_module

    space = load_space(loc_space())
    reads: list[str] = []
    original = space_module.is_localization_ref
    monkeypatch.setattr(space_module, "is_localization_ref",
                        lambda ref: reads.append(str(ref)) or original(ref))  # fmt: skip
    for width in (16, 32, 64) * 10:  # as the feasibility scan and the trials ask
        assert space.create_spec({"neck.width": width}).neck is not None
    assert space.task == "localization" and reads == []
    assert space.with_budgets({"gflops": 1.0}).task == "localization" and reads == []
