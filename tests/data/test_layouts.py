"""Readers for every layout: classes, splits, segments; bad entries skipped and counted."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from _media import LEVEL, write_frames, write_video

from harness.data import (
    DataWarning,
    create_dataset,
    detect_layout,
    list_layouts,
    load_data_spec,
    load_video_index,
)
from harness.data.spec import KINETICS_MEAN, KINETICS_STD, VideoDataSpec
from harness.errors import SpecError
from harness.spec.schema import ClipSpec

CLIP = ClipSpec(frames=4, stride=1, size=16)
# Data sets built after a test checked its warning warn again; pytest.warns still sees them.
pytestmark = pytest.mark.filterwarnings("ignore::harness.data.index.DataWarning")


def _spec(root: Path, tmp_path: Path, **fields: object) -> VideoDataSpec:
    data = {"type": "video", "root": str(root), "cache_dir": str(tmp_path / "cache"), **fields}
    spec = load_data_spec(data)
    assert isinstance(spec, VideoDataSpec)
    return spec


def _levels(clip: torch.Tensor) -> list[int]:
    """Frame numbers of a normalised grey clip written by write_video."""
    grey = (clip[0] * KINETICS_STD[0] + KINETICS_MEAN[0]) * 255
    return [round((float(g.mean()) - 4) / LEVEL) for g in grey]


def _index(spec: VideoDataSpec, split: str) -> tuple[list[str], list[str], dict[str, int]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        index = load_video_index(spec, split)
    names = sorted(Path(r.path).name for r in index.records)
    return list(index.classes), names, index.skipped


def test_folder_with_splits_skips_and_counts_bad_entries(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for split, name in (("train", "a"), ("train", "b"), ("val", "c")):
        for label in ("jump", "run"):
            write_video(root / split / label / f"{name}.avi", frames=8)
    (root / "train" / "run" / "corrupt.avi").write_bytes(b"garbage" * 50)
    write_video(root / "val" / "swim" / "d.avi", frames=8)  # not a training class
    spec = _spec(root, tmp_path)
    assert spec.layout == "folder"
    with pytest.warns(DataWarning, match=r"skipped 1 of 5 videos .*1 unreadable or corrupt"):
        index = load_video_index(spec, "train")
    assert index.classes == ("jump", "run") and len(index.records) == 4
    assert _index(spec, "val")[2] == {"label not in the class list": 1}
    clip, label, _ = create_dataset(spec, "train", clip=CLIP)[(0, 5)]
    assert clip.shape == (3, 4, 16, 16) and label == 0


def test_folder_without_splits_holds_out_a_fraction(tmp_path: Path) -> None:
    for label in ("jump", "run"):
        for i in range(10):
            write_video(tmp_path / "ds" / label / f"{i}.avi", frames=2)
    spec = _spec(tmp_path / "ds", tmp_path, val_fraction=0.3)
    train, val = _index(spec, "train")[1], _index(spec, "val")[1]
    assert len(train) + len(val) == 20 and 0 < len(val) < 12
    assert not set(load_video_index(spec, "val").records) & set(
        load_video_index(spec, "train").records
    )


def test_frame_folders(tmp_path: Path) -> None:
    for split in ("train", "val"):
        write_frames(tmp_path / "ds" / split / "wave" / "clip1", frames=10)
    spec = _spec(tmp_path / "ds", tmp_path)
    assert spec.layout == "frames"
    dataset = create_dataset(spec, "val", clip=CLIP)
    assert _levels(dataset[0][0]) == [3, 4, 5, 6]  # the centred 4 of 10 frames


def test_kinetics_csv_segments(tmp_path: Path) -> None:
    root = tmp_path / "k400"
    rows = [
        "label,youtube_id,time_start,time_end,split",
        "abseiling,aaa,1,3,train",  # a trimmed segment file
        "bowling,bbb,0.4,0.8,train",  # the full video, trimmed at read time
        "bowling,ccc,0,10,train",  # no such video
        "bowling,ddd,0,10,val",
    ]
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "kinetics.csv").write_text("\n".join(rows) + "\n")
    write_video(root / "videos" / "train" / "abseiling" / "aaa_000001_000003.mp4", frames=8)
    write_video(root / "videos" / "bbb.mp4", frames=30)
    write_video(root / "videos" / "ddd.mp4", frames=8)
    spec = _spec(root / "annotations" / "kinetics.csv", tmp_path, videos=str(root / "videos"))
    assert spec.layout == "kinetics"
    classes, names, skipped = _index(spec, "train")
    assert classes == ["abseiling", "bowling"] and names == ["aaa_000001_000003.mp4", "bbb.mp4"]
    assert skipped == {"missing file": 1}
    segment = next(r for r in load_video_index(spec, "train").records if r.path.endswith("bbb.mp4"))
    assert (segment.first, segment.frames) == (10, 10)  # 0.4 s .. 0.8 s at 25 fps
    dataset = create_dataset(spec, "train", clip=CLIP, train=False)
    assert _levels(dataset[1][0]) == [13, 14, 15, 16]  # centred within frames 10..19
    assert _index(spec, "val")[1] == ["ddd.mp4"]


def test_ucf101_split_lists(tmp_path: Path) -> None:
    root = tmp_path / "ucf"
    (root / "ucfTrainTestlist").mkdir(parents=True)
    (root / "ucfTrainTestlist" / "classInd.txt").write_text("1 ApplyLipstick\n2 Archery\n")
    (root / "ucfTrainTestlist" / "trainlist01.txt").write_text(
        "ApplyLipstick/v_a.avi 1\nArchery/v_b.avi 2\n"
    )
    (root / "ucfTrainTestlist" / "testlist01.txt").write_text("Archery/v_c.avi\nBowling/v_d.avi\n")
    for name in ("ApplyLipstick/v_a.avi", "Archery/v_b.avi", "Archery/v_c.avi", "Bowling/v_d.avi"):
        write_video(root / "UCF-101" / name, frames=4)
    spec = _spec(root, tmp_path)
    assert spec.layout == "ucf101"
    assert _index(spec, "train")[:2] == (["ApplyLipstick", "Archery"], ["v_a.avi", "v_b.avi"])
    assert _index(spec, "val")[1:] == (["v_c.avi"], {"label not in the class list": 1})


def test_hmdb51_split_files(tmp_path: Path) -> None:
    root = tmp_path / "hmdb"
    (root / "testTrainMulti_7030_splits").mkdir(parents=True)
    for label in ("brush_hair", "cartwheel"):
        text = f"{label}_1.avi 1\n{label}_2.avi 2\n{label}_3.avi 0\n"
        (root / "testTrainMulti_7030_splits" / f"{label}_test_split1.txt").write_text(text)
        for i in (1, 2, 3):
            write_video(root / label / f"{label}_{i}.avi", frames=4)
    spec = _spec(root, tmp_path)
    assert spec.layout == "hmdb51"
    assert _index(spec, "train")[:2] == (
        ["brush_hair", "cartwheel"],
        ["brush_hair_1.avi", "cartwheel_1.avi"],
    )
    assert _index(spec, "val")[1] == ["brush_hair_2.avi", "cartwheel_2.avi"]


def test_ssv2_json_and_no_flips(tmp_path: Path) -> None:
    root = tmp_path / "ssv2"
    root.mkdir()
    labels = {
        "Pushing something from left to right": "0",
        "Pushing something from right to left": "1",
    }
    (root / "labels.json").write_text(json.dumps(labels))
    items = [
        {"id": "1", "template": "Pushing [something] from left to right"},
        {"id": "2", "template": "Pushing [something] from right to left"},
    ]
    (root / "train.json").write_text(json.dumps(items))
    (root / "validation.json").write_text(
        json.dumps([*items[:1], {"id": "3", "template": "Waving"}])
    )
    for vid in ("1", "2"):
        write_video(root / "videos" / f"{vid}.webm", frames=4, codec="libvpx-vp9")
    spec = _spec(root, tmp_path, videos=str(root / "videos"))
    assert spec.layout == "ssv2" and not spec.allows_flip()
    classes, names, _ = _index(spec, "train")
    assert classes == list(labels) and names == ["1.webm", "2.webm"]
    assert _index(spec, "val")[2] == {"label not in the class list": 1}
    assert _spec(root, tmp_path, flip=True).allows_flip()


def test_empty_split_fails_clearly(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_video(root / "train" / "jump" / "a.avi", frames=4)
    (root / "val" / "jump").mkdir(parents=True)
    (root / "val" / "jump" / "broken.avi").write_bytes(b"")
    spec = _spec(root, tmp_path)
    with (
        pytest.warns(DataWarning),
        pytest.raises(SpecError, match=r"'val' split .* no usable videos"),
    ):
        load_video_index(spec, "val")


KINETICS_HEAD = "label,youtube_id,time_start,time_end,split\na,aaa,0,1,train\n"


@pytest.mark.parametrize(
    ("layout", "files", "error"),
    [
        ("kinetics", {"k.csv": KINETICS_HEAD + "a,bbb,soon,2,train\n"}, r"k\.csv:3: time_start"),
        ("kinetics", {"k.csv": KINETICS_HEAD + "a,bbb,1,inf,train\n"}, r"k\.csv:3: time_end"),
        ("ucf101", {"classInd.txt": "1 a\nb\n", "trainlist01.txt": ""}, r"classInd\.txt:2: "),
        ("hmdb51", {"a_test_split1.txt": "x.avi 1\n\ny.avi 7\n"}, r"a_test_split1\.txt:3: "),
        ("ssv2", {"labels.json": '{"a": "0",\n"b": x}'}, r"labels\.json:2:6: data\.root"),
        ("ssv2", {"labels.json": '{"a": "zero"}'}, r"labels\.json: a: class id"),
    ],
    ids=["kinetics-time", "kinetics-inf", "ucf-class-line", "hmdb-line", "ssv2-json", "ssv2-id"],
)
def test_unreadable_annotation_lines_name_file_and_line(
    tmp_path: Path, layout: str, files: dict[str, str], error: str
) -> None:
    for name, text in files.items():
        (tmp_path / "ds" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "ds" / name).write_text(text)
    spec = _spec(tmp_path / "ds", tmp_path, layout=layout)
    with pytest.raises(SpecError, match=error):
        load_video_index(spec, "train")


@pytest.mark.parametrize("layout", ["folder", "frames", "ucf101", "hmdb51"])
def test_a_file_where_a_folder_is_needed(tmp_path: Path, layout: str) -> None:
    (tmp_path / "f").write_text("x")
    spec = _spec(tmp_path / "f", tmp_path, layout=layout)
    with pytest.raises(SpecError, match=rf"f is a file; the '{layout}' layout reads a folder"):
        load_video_index(spec, "train")


def test_video_that_fails_mid_epoch_is_replaced(tmp_path: Path, monkeypatch) -> None:
    import harness.data.dataset as dataset_module

    for name in ("a", "b"):
        write_video(tmp_path / "ds" / "jump" / f"{name}.avi", frames=6)
    spec = _spec(tmp_path / "ds", tmp_path, val_fraction=0.01)
    dataset = create_dataset(spec, "train", clip=CLIP)
    real = dataset_module.load_video_frames

    def flaky(path: str, indices: np.ndarray, **kwargs: object) -> np.ndarray:
        if path.endswith("a.avi"):
            raise dataset_module.DecodeError(f"{path}: truncated")
        return real(path, indices, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dataset_module, "load_video_frames", flaky)
    with pytest.warns(DataWarning, match="a.avi: truncated"):
        clip, _, video = dataset[(0, 1)]
    assert clip.shape == (3, 4, 16, 16) and video == 0


def test_videos_that_all_fail_mid_epoch_stop_with_one_error(tmp_path: Path, monkeypatch) -> None:
    import harness.data.dataset as dataset_module

    for name in ("a", "b"):
        write_video(tmp_path / "ds" / "jump" / f"{name}.avi", frames=6)
    spec = _spec(tmp_path / "ds", tmp_path, val_fraction=0.01)
    dataset = create_dataset(spec, "train", clip=CLIP)

    def broken(path: str, indices: np.ndarray, **kwargs: object) -> np.ndarray:
        raise dataset_module.DecodeError(f"{path}: truncated")

    monkeypatch.setattr(dataset_module, "load_video_frames", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(dataset_module.DecodeError, match=r"in a row .*2 different.*truncated"):
            dataset[(0, 1)]
    assert not caught  # the error says it all


def test_every_layout_is_detected() -> None:
    assert set(list_layouts()) == {"folder", "frames", "hmdb51", "kinetics", "ssv2", "ucf101"}
    assert detect_layout(Path("/definitely/not/here")) is None
