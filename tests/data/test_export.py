"""``harness data export``: the synthetic benchmark written as real videos, read back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from harness.cli import main
from harness.data import SyntheticVideos, VideoDataSpec, detect_layout, load_data_spec
from harness.data.export import export_synthetic
from harness.data.layouts import get_layout

FRAMES = 16  # synthetic:tiny's video length
SIZE = 32
CLASSES = ["move_right", "move_left"]  # the tiny benchmark's first two classes, in label order


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export") / "videos"
    main(["data", "export", "synthetic:tiny", str(root), "--clips", "2", "--val-clips", "1",
          "--classes", "2", "--size", str(SIZE)])  # fmt: skip
    return root


def test_export_writes_decodable_videos_in_class_folders(exported: Path) -> None:
    files = sorted(p.relative_to(exported).as_posix() for p in exported.rglob("*.mp4"))
    assert files == sorted(
        [f"train/{c}/{c}_{i:04d}.mp4" for c in CLASSES for i in range(2)]
        + [f"val/{c}/{c}_0000.mp4" for c in CLASSES]
    )
    for file in files:
        video = decode(exported / file)
        assert video.shape == (FRAMES, SIZE, SIZE, 3)


def test_exported_pixels_are_the_benchmark_s(exported: Path) -> None:
    spec = load_data_spec("synthetic:tiny").model_copy(update={"classes": 2})
    # the i-th clip of class c is synthetic video i * classes + c
    rendered = SyntheticVideos(spec, "train").render(1 * 2 + 1, np.arange(FRAMES), SIZE)
    decoded = decode(exported / "train" / "move_left" / "move_left_0001.mp4")
    # NOTE: lossy yuv420p coding; a wrong video or frame order differs by tens of levels.
    assert np.abs(decoded.astype(int) - rendered).mean() < 6


def test_export_is_deterministic_from_the_seed(tmp_path: Path) -> None:
    spec = load_data_spec("synthetic:tiny")
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        seeded = spec.model_copy(update={"seed": seed})
        export_synthetic(seeded, tmp_path / name, clips=1, classes=2, size=SIZE)
        runs[name] = decode(tmp_path / name / "val" / "move_right" / "move_right_0000.mp4")
    assert np.array_equal(runs["a"], runs["b"])
    assert not np.array_equal(runs["a"], runs["c"])


def test_the_folder_layout_reads_the_export(exported: Path) -> None:
    assert detect_layout(exported) == "folder"
    spec = load_data_spec(str(exported))
    assert isinstance(spec, VideoDataSpec) and spec.layout == "folder"
    layout = get_layout("folder")
    train, val = layout.list_split(spec, "train"), layout.list_split(spec, "val")
    assert sorted(train.classes) == sorted(CLASSES)
    assert len(train.entries) == 4 and len(val.entries) == 2


def test_one_epoch_trains_on_the_export(exported: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "train", "tiny_c2d", "--data", str(exported),
         "--epochs", "1", "--json", "--frames", "4", "--size", "16", "--batch", "4",
         "--workers", "0", "--device", "cpu"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "complete" and result["epochs"] == 1
    assert sorted(result["classes"]) == sorted(CLASSES)
    assert 0 <= result["top1"] <= result["top5"] <= 1
    assert result["history"][0]["clips"] == 4


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("synthetic:tiny", "{file}/out"), "DIR: cannot write to"),
        (("synthetic:tiny", "{exported}"), "DIR: "),  # not empty
        (("ucf101:{tmp}", "{tmp}/out"), "SOURCE: only the built-in benchmarks can be exported"),
        (("{exported}", "{tmp}/out"), "SOURCE: only the built-in benchmarks can be exported"),
        (("synthetic:tiny", "{tmp}/out", "--clips", "0"), "--clips: must be at least 1, got 0"),
        (("synthetic:tiny", "{tmp}/out", "--size", "33"), "--size: must be even"),
        (("synthetic:tiny", "{tmp}/out", "--classes", "9"), "--classes: must be between 2 and 8"),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    args: tuple[str, ...],
    expected: str,
    exported: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "file").write_text("not a folder")
    where = {"file": tmp_path / "file", "exported": exported, "tmp": tmp_path}
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "export", *(a.format(**where) for a in args)])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0]
    assert lines[0].startswith("harness: <command line>: ") and expected in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
