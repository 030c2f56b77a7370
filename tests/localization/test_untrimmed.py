"""The built-in untrimmed benchmark: exact spans, lazy frames, annotation files, export."""

from __future__ import annotations

import json
import time
from pathlib import Path

import av
import numpy as np
import pytest

from harness.cli import main
from harness.data.spec import load_data_spec
from harness.data.video import probe_video
from harness.errors import SpecError
from harness.localization import load_activitynet, load_thumos14
from harness.localization.untrimmed import (
    SyntheticUntrimmed,
    UntrimmedDataSpec,
    load_untrimmed_spec,
)
from harness.localization.videos import (
    ActivityNetVideos,
    load_untrimmed,
    save_activitynet,
    save_thumos14,
)

SIZE = 32
# A smaller benchmark than tiny for the export: 3 short videos.
SMALL_YAML = """\
type: synthetic-untrimmed
preset: tiny
train_videos: 2
val_videos: 1
frames: [40, 56]
instances: [1, 2]
instance_frames: [8, 12]
min_gap: 4
"""


@pytest.fixture(scope="module")
def tiny() -> SyntheticUntrimmed:
    return SyntheticUntrimmed("synthetic-untrimmed:tiny")


def clean(**fields: object) -> SyntheticUntrimmed:
    """The tiny benchmark without noise or distractors: pixels change only by the actions."""
    return SyntheticUntrimmed(
        load_untrimmed_spec({"preset": "tiny", "noise": 0.0, "distractors": 0, **fields})
    )


def test_names_parse_as_synthetic_does() -> None:
    tiny = load_untrimmed_spec("synthetic-untrimmed:tiny")
    assert (tiny.preset, tiny.classes, tiny.train_videos, tiny.val_videos) == ("tiny", 4, 4, 2)
    assert load_untrimmed_spec("synthetic-untrimmed").preset == "small"
    assert load_untrimmed_spec({"preset": "tiny", "seed": 3}).seed == 3
    with pytest.raises(SpecError, match=r"unknown synthetic-untrimmed size 'tiyn' \(did you "
                       r"mean 'tiny'\?\); known: tiny, small"):  # fmt: skip
        load_untrimmed_spec("synthetic-untrimmed:tiyn")


def test_a_bad_yaml_field_names_its_line(write_yaml) -> None:
    path = write_yaml("type: synthetic-untrimmed\npreset: tiny\nclasses: 40\n", "data.yaml")
    with pytest.raises(SpecError) as info:
        load_untrimmed_spec(str(path))
    assert str(info.value).startswith(f"{path}:3:") and "data.classes" in str(info.value)
    path = write_yaml("type: synthetic-untrimmed\nframes: [20, 30]\nmin_gap: 8\n", "short.yaml")
    with pytest.raises(SpecError, match=r"the shortest video .20 frames. cannot hold 2"):
        load_untrimmed_spec(str(path))


def test_recognition_data_refuses_the_untrimmed_name() -> None:
    with pytest.raises(SpecError, match=r"untrimmed .temporal localization. benchmark"):
        load_data_spec("synthetic-untrimmed:tiny")


def test_spans_are_exact_and_follow_the_spec(tiny: SyntheticUntrimmed) -> None:
    spec = tiny.spec
    assert [v.name for v in tiny.list_videos("val")] == ["val_0000", "val_0001"]
    assert len(tiny.list_videos()) == spec.train_videos + spec.val_videos
    for video in tiny.list_videos():
        spans = tiny.spans(video)
        assert spec.frames[0] <= video.frames <= spec.frames[1]
        assert spec.instances[0] <= len(spans) <= spec.instances[1]
        edges = [0, *[x for s in spans for x in (s.start, s.end)], video.frames]
        gaps = [b - a for a, b in zip(edges[::2], edges[1::2], strict=True)]
        assert min(gaps) >= spec.min_gap
        assert all(spec.instance_frames[0] <= s.frames <= spec.instance_frames[1] for s in spans)
        assert video.duration == video.frames / 8
        assert [(i.start, i.end) for i in video.instances] == [
            (s.start / 8, s.end / 8) for s in spans
        ]
        assert [i.label for i in video.instances] == [tiny.classes[s.label] for s in spans]


def test_the_layout_follows_from_the_seed(tiny: SyntheticUntrimmed) -> None:
    again = SyntheticUntrimmed("synthetic-untrimmed:tiny")
    assert again.ground_truth() == tiny.ground_truth() and again.key == tiny.key
    other = SyntheticUntrimmed(load_untrimmed_spec({"preset": "tiny", "seed": 1}))
    assert other.ground_truth() != tiny.ground_truth() and other.key != tiny.key


def test_classes_are_balanced_and_include_reversal_pairs() -> None:
    bench = SyntheticUntrimmed(load_untrimmed_spec({"preset": "tiny", "train_videos": 40}))
    counts: dict[str, int] = {}
    for item in bench.ground_truth("train"):
        counts[item.label] = counts.get(item.label, 0) + 1
    assert sorted(counts) == sorted(["move_right", "move_left", "approach", "recede"])
    assert max(counts.values()) - min(counts.values()) <= 4  # shuffled rounds of 4 classes


def test_a_window_renders_alone_as_in_the_whole_video(tiny: SyntheticUntrimmed) -> None:
    video = tiny.list_videos("train")[1]
    start = time.perf_counter()
    whole = tiny.load_frames(video, np.arange(video.frames), size=SIZE)
    assert time.perf_counter() - start < 0.5
    assert whole.shape == (video.frames, SIZE, SIZE, 3) and whole.dtype == np.uint8
    for first in (0, 13, video.frames - 8):
        window = tiny.load_window(video, first, 8, size=SIZE)
        assert np.array_equal(window, whole[first : first + 8])
    picked = tiny.load_frames(video, np.array([5, 70, 5, video.frames + 3]), size=SIZE)
    assert np.array_equal(picked, whole[[5, 70, 5, video.frames - 1]])


def test_actions_move_only_inside_their_spans() -> None:
    bench = clean(idle="still")
    video = bench.list_videos("val")[1]
    frames = bench.load_frames(video, np.arange(video.frames), size=SIZE).astype(int)
    spans = bench.spans(video)
    first, last = spans[0], spans[-1]
    # before the first action the object holds its first pose; after the last, its last one
    assert all(np.array_equal(frames[f], frames[first.start]) for f in range(first.start))
    assert all(
        np.array_equal(frames[f], frames[last.end - 1]) for f in range(last.end, video.frames)
    )
    for span in spans:
        inside = frames[span.start : span.end]
        assert np.abs(np.diff(inside, axis=0)).sum(axis=(1, 2, 3)).min() > 0  # always moving
    empty = clean(idle="none")
    video = empty.list_videos("val")[1]
    frames = empty.load_frames(video, np.arange(video.frames), size=SIZE).astype(int)
    span = empty.spans(video)[0]
    assert all(np.array_equal(frames[f], frames[0]) for f in range(span.start))  # background
    assert not np.array_equal(frames[span.start + 1], frames[0])


def test_activitynet_json_round_trips(tiny: SyntheticUntrimmed, tmp_path: Path) -> None:
    path = tmp_path / "gt.json"
    save_activitynet(tiny.list_videos(), path)
    assert load_activitynet(path, "validation") == tiny.ground_truth("val")
    assert load_activitynet(path, "training") == tiny.ground_truth("train")
    entry = json.loads(path.read_text())["database"]["val_0000"]
    video = tiny.list_videos("val")[0]
    assert entry["subset"] == "validation" and entry["fps"] == 8
    assert entry["duration"] == video.frames / 8


def test_thumos14_lists_round_trip(tiny: SyntheticUntrimmed, tmp_path: Path) -> None:
    files = save_thumos14(tiny.list_videos("val"), tmp_path, classes=tiny.classes)
    assert sorted(f.name for f in files) == sorted(f"{c}_val.txt" for c in tiny.classes)
    key = lambda i: (i.video, i.label, i.start)  # noqa: E731
    assert sorted(load_thumos14(tmp_path), key=key) == sorted(tiny.ground_truth("val"), key=key)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SyntheticUntrimmed]:
    base = tmp_path_factory.mktemp("untrimmed")
    (base / "data.yaml").write_text(SMALL_YAML)
    main(["data", "export", str(base / "data.yaml"), str(base / "out"), "--size", str(SIZE)])
    return base / "out", SyntheticUntrimmed(load_untrimmed_spec(str(base / "data.yaml")))


def test_export_writes_videos_of_the_exact_length(
    exported: tuple[Path, SyntheticUntrimmed],
) -> None:
    root, bench = exported
    names = sorted(p.name for p in (root / "videos").iterdir())
    assert names == ["train_0000.mp4", "train_0001.mp4", "val_0000.mp4"]
    for video in bench.list_videos():
        path = root / "videos" / f"{video.name}.mp4"
        assert probe_video(path).frames == video.frames
        with av.open(str(path)) as container:
            assert sum(1 for _ in container.decode(video=0)) == video.frames
    assert load_activitynet(root / "annotations.json") == bench.ground_truth()
    key = lambda i: (i.video, i.label, i.start)  # noqa: E731
    lists = sorted(load_thumos14(root / "thumos14"), key=key)
    assert lists == sorted(bench.ground_truth("val"), key=key)


def test_the_export_reads_back_as_untrimmed_videos(
    exported: tuple[Path, SyntheticUntrimmed],
) -> None:
    root, bench = exported
    source = load_untrimmed(root)
    assert isinstance(source, ActivityNetVideos)
    assert source.list_videos() == bench.list_videos()
    assert source.ground_truth("val") == bench.ground_truth("val")
    video = source.list_videos("train")[1]
    window = source.load_window(video, 20, 8, size=SIZE)
    rendered = bench.load_window(video, 20, 8, size=SIZE)
    assert window.shape == (8, SIZE, SIZE, 3)
    # NOTE: lossy yuv420p coding; another window differs by tens of levels
    assert np.abs(window.astype(int) - rendered).mean() < 6
    assert np.abs(window.astype(int) - bench.load_window(video, 0, 8, size=SIZE)).mean() > 6


def test_videos_missing_from_the_folder_are_left_out_with_a_warning(
    exported: tuple[Path, SyntheticUntrimmed], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = exported
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "v_val_0000.mp4").write_bytes(
        (root / "videos/val_0000.mp4").read_bytes()
    )
    (tmp_path / "gt.json").write_bytes((root / "annotations.json").read_bytes())
    source = ActivityNetVideos(tmp_path / "gt.json")
    assert [v.name for v in source.list_videos()] == ["val_0000"]
    assert "2 of the 3 videos" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("synthetic-untrimmed:huge", "{tmp}/out"), "<data>: data: unknown synthetic-untrimmed"),
        (("synthetic-untrimmed:tiny", "{tmp}/out", "--size", "33"), "--size: must be even"),
        (("synthetic-untrimmed:tiny", "{tmp}/out", "--classes", "30"), "--classes: "),
        (("synthetic-untrimmed:tiny", "{tmp}/out", "--clips", "0"), "--clips: "),
    ],
)
def test_bad_export_input_is_one_line_and_status_2(
    args: tuple[str, ...], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "export", *(a.format(tmp=tmp_path) for a in args)])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness: ") and expected in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_unknown_data_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"--data: .* is not untrimmed video data"):
        load_untrimmed(tmp_path / "nothing")
    assert isinstance(load_untrimmed(UntrimmedDataSpec(preset="tiny")), SyntheticUntrimmed)
    with pytest.raises(SpecError, match="--videos: the built-in benchmark has no video files"):
        load_untrimmed("synthetic-untrimmed:tiny", videos=tmp_path)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"database": {"a": {"subset": "training", "fps": -1}}}))
    with pytest.raises(SpecError) as info:
        load_untrimmed(path)
    assert str(info.value) == (f"{path}: database.a.fps: expected a positive frame rate, got -1")
