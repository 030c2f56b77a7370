"""Annotations cannot reach files outside the data set: escaping entries are skipped, unread.

Each test puts a perfectly valid video *outside* the data set folder and names it from the
annotations (``../``, an absolute path, a symbolic link). Had the reader followed the name,
the video would have become a training record; instead it is counted as "outside the data
root", and neither PyAV nor Python opens anything under the outside folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from _media import write_frames, write_video

import harness.data.index as index_module
from harness.data import DataWarning, load_data_spec, load_video_index
from harness.data.index import OUTSIDE
from harness.data.spec import VideoDataSpec

_opened: list[str] | None = None  # paths Python opened while a test watches


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _opened is not None and event == "open" and isinstance(args[0], str | bytes | Path):
        _opened.append(os.fsdecode(args[0]))  # type: ignore[arg-type]


sys.addaudithook(_audit)


@contextlib.contextmanager
def _nothing_opened_under(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail if Python opens, or PyAV probes, any path under ``folder`` inside the block."""
    global _opened
    probed: list[str] = []
    for name in ("probe_video", "probe_folder"):
        real = getattr(index_module, name)

        def spy(path: Path, _real=real) -> object:  # type: ignore[no-untyped-def]
            probed.append(str(path))
            return _real(path)

        monkeypatch.setattr(index_module, name, spy)
    _opened = []
    try:
        yield
    finally:
        opened, _opened = _opened, None
    outside = str(folder.resolve())
    touched = [p for p in (*opened, *probed) if os.path.realpath(p).startswith(outside)]
    assert not touched, touched


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the data set holding a valid video (and frames) nobody may read."""
    folder = tmp_path / "outside"
    write_video(folder / "secret.avi", frames=4)
    write_video(folder / "secret.webm", frames=4, codec="libvpx-vp9")
    write_frames(folder / "frames", frames=4)
    return folder


def _spec(root: Path, tmp_path: Path, **fields: object) -> VideoDataSpec:
    data = {"type": "video", "root": str(root), "cache_dir": str(tmp_path / "cache"), **fields}
    spec = load_data_spec(data)
    assert isinstance(spec, VideoDataSpec)
    return spec


def _skipped(spec: VideoDataSpec, split: str) -> tuple[list[str], dict[str, int]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        index = load_video_index(spec, split)
    return sorted(Path(r.path).name for r in index.records), index.skipped


def test_ucf101_lines_cannot_escape(tmp_path: Path, outside: Path, monkeypatch) -> None:
    root = tmp_path / "ucf"
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 Archery\n")
    (lists / "trainlist01.txt").write_text(
        "Archery/v_ok.avi 1\n"
        "Archery/../../outside/secret.avi 1\n"  # climbs out of the videos folder
        f"Archery/../../../../../../../../..{outside}/secret.avi 1\n"
        f"{outside}/secret.avi 1\n"  # absolute: pathlib would drop the root
    )
    write_video(root / "Archery" / "v_ok.avi", frames=4)
    spec = _spec(root, tmp_path)
    with _nothing_opened_under(outside, monkeypatch):
        names, skipped = _skipped(spec, "train")
    assert names == ["v_ok.avi"] and skipped == {OUTSIDE: 3}


def test_hmdb51_split_files_cannot_escape(tmp_path: Path, outside: Path, monkeypatch) -> None:
    root = tmp_path / "hmdb"
    root.mkdir()
    text = "ok.avi 1\n../outside/secret.avi 1\n../../outside/secret.avi 1\n"
    (root / "wave_test_split1.txt").write_text(text)
    write_video(root / "wave" / "ok.avi", frames=4)
    with _nothing_opened_under(outside, monkeypatch):
        names, skipped = _skipped(_spec(root, tmp_path), "train")
    assert names == ["ok.avi"] and skipped == {OUTSIDE: 1, "missing file": 1}


def test_ssv2_ids_cannot_escape(tmp_path: Path, outside: Path, monkeypatch) -> None:
    root = tmp_path / "ssv2"
    root.mkdir()
    (root / "labels.json").write_text(json.dumps({"Waving": "0"}))
    items = [{"id": i, "template": "Waving"} for i in ("1", "../outside/secret", str(outside))]
    (root / "train.json").write_text(json.dumps([*items, {"id": f"{outside}/secret"}]))
    write_video(root / "1.webm", frames=4, codec="libvpx-vp9")
    with _nothing_opened_under(outside, monkeypatch):
        names, skipped = _skipped(_spec(root, tmp_path), "train")
    assert names == ["1.webm"] and skipped == {OUTSIDE: 3}


def test_links_out_of_the_data_set_are_skipped(tmp_path: Path, outside: Path, monkeypatch) -> None:
    root = tmp_path / "k400"
    (root / "videos").mkdir(parents=True)
    rows = ["label,youtube_id,time_start,time_end,split", "run,ok,,,train", "run,lnk,,,train"]
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    write_video(root / "videos" / "ok.avi", frames=4)
    (root / "videos" / "lnk.avi").symlink_to(outside / "secret.avi")
    with _nothing_opened_under(outside, monkeypatch):
        names, skipped = _skipped(_spec(root, tmp_path, layout="kinetics"), "train")
    assert names == ["ok.avi"] and skipped == {OUTSIDE: 1}


def test_folder_layouts_skip_linked_classes_and_frames(
    tmp_path: Path, outside: Path, monkeypatch
) -> None:
    root = tmp_path / "ds"
    write_video(root / "train" / "jump" / "ok.avi", frames=4)
    (root / "train" / "jump" / "lnk.avi").symlink_to(outside / "secret.avi")
    (root / "train" / "run").symlink_to(outside, target_is_directory=True)  # a class folder
    (root / "val").mkdir()
    with _nothing_opened_under(outside, monkeypatch):
        names, skipped = _skipped(_spec(root, tmp_path, layout="folder"), "train")
    assert names == ["ok.avi"] and skipped == {OUTSIDE: 3}  # the link, and run's two videos

    frames = tmp_path / "fr"
    write_frames(frames / "train" / "wave" / "ok", frames=4)
    (frames / "train" / "wave" / "whole").symlink_to(outside / "frames")
    write_frames(frames / "train" / "wave" / "mixed", frames=4)
    (frames / "train" / "wave" / "mixed" / "img_00099.jpg").symlink_to(
        next((outside / "frames").iterdir())
    )
    (frames / "val").mkdir()
    with _nothing_opened_under(outside, monkeypatch):
        names, skipped = _skipped(_spec(frames, tmp_path, layout="frames"), "train")
    assert names == ["ok"] and skipped == {OUTSIDE: 2}


def test_yaml_paths_are_relative_to_the_yaml_file(tmp_path: Path, monkeypatch) -> None:
    write_video(tmp_path / "sets" / "ds" / "jump" / "a.avi", frames=4)
    config = tmp_path / "sets" / "data.yaml"
    config.write_text("type: video\nroot: ds\ncache_dir: cache\n")
    monkeypatch.chdir(tmp_path)  # the working folder plays no part
    spec = load_data_spec(str(config))
    assert isinstance(spec, VideoDataSpec)
    assert Path(spec.root) == tmp_path / "sets" / "ds" and spec.layout == "folder"
    assert Path(spec.cache_dir or "") == tmp_path / "sets" / "cache"
    monkeypatch.setenv("HOME", str(tmp_path))
    config.write_text("type: video\nroot: ~/sets/ds\n")
    spec = load_data_spec(str(config))
    assert isinstance(spec, VideoDataSpec) and Path(spec.root) == tmp_path / "sets" / "ds"
