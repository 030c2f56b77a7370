"""Pre-extracted features: ``harness features``, its cache, and the strict reader."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.cli import main
from harness.compiler import build_model
from harness.errors import SpecError
from harness.localization.extract import create_feature_model, list_windows
from harness.localization.features import FeatureFolder, load_features, load_features_meta
from harness.localization.untrimmed import SyntheticUntrimmed, load_untrimmed_spec
from harness.spec import load_spec, spec_hash
from harness.train.checkpoint import save_checkpoint

SPEC = "tiny_c2d"  # 64 channels after global pooling
# Three short videos of the tiny benchmark, small enough for a 16-pixel backbone in a second.
DATA_YAML = """\
type: synthetic-untrimmed
preset: tiny
train_videos: 2
val_videos: 1
frames: [28, 36]
instances: [1, 2]
instance_frames: [8, 12]
min_gap: 4
"""
OPTIONS = ["--window", "4", "--stride", "4", "--size", "16", "--batch", "8"]


def run(*args: str | Path) -> None:
    main(["features", SPEC, *map(str, args)])


def one_error_line(capsys: pytest.CaptureFixture[str], *args: str | Path) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run(*args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "data.yaml"
    path.write_text(DATA_YAML)
    return path


@pytest.fixture(scope="module")
def bench(data: Path) -> SyntheticUntrimmed:
    return SyntheticUntrimmed(load_untrimmed_spec(str(data)))


@pytest.fixture(scope="module")
def extracted(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("features") / "out"
    run("--data", data, "--out", out, *OPTIONS)
    return out


def test_windows_cover_the_video_at_the_stride() -> None:
    assert list(list_windows(12, window=4, stride=2)) == [0, 2, 4, 6, 8]
    assert list(list_windows(13, window=4, stride=4)) == [0, 4, 8]
    assert list(list_windows(3, window=8, stride=4)) == [0]  # one padded window


def test_one_array_per_video_with_its_metadata(extracted: Path, bench: SyntheticUntrimmed) -> None:
    meta = load_features_meta(extracted / "features.json")
    assert (meta.window, meta.stride, meta.size, meta.width) == (4, 4, 16, 64)
    assert meta.fps == 8 and meta.steps_per_second == 2.0
    assert meta.spec_hash == spec_hash(load_spec(SPEC)) and meta.data_key == bench.key
    for video in bench.list_videos():
        array = np.load(extracted / f"{video.name}.npy")
        steps = (video.frames - 4) // 4 + 1
        assert array.shape == (steps, 64) and array.dtype == np.float32
        assert meta.videos[video.name].steps == steps
        assert meta.videos[video.name].subset == video.subset
    truth = json.loads((extracted / "annotations.json").read_text())["database"]
    assert sorted(truth) == sorted(v.name for v in bench.list_videos())


def test_features_are_the_backbone_s_pooled_output(
    extracted: Path, bench: SyntheticUntrimmed
) -> None:
    video = bench.list_videos("val")[0]
    model, _, _ = create_feature_model(SPEC, window=4, size=16)
    frames = bench.load_window(video, 12, 4, size=16)  # step 3 = frames 12..15
    x = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float() / 255
    x = (x - 0.45) / 0.225
    with torch.no_grad():
        expected = model(x)[0].numpy()
    stored = np.load(extracted / f"{video.name}.npy")[3]
    np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-5)
    assert np.abs(np.load(extracted / f"{video.name}.npy")[0] - expected).max() > 1e-3


def test_the_reader_gives_features_truth_and_rate(
    extracted: Path, bench: SyntheticUntrimmed
) -> None:
    videos = load_features(extracted, "val")
    assert [v.video for v in videos] == ["val_0000"]
    (item,) = videos
    assert item.subset == "validation" and item.rate == 2.0 and item.offset == 0.25
    assert item.instances == tuple(bench.ground_truth("val"))
    assert np.array_equal(item.features, np.load(extracted / "val_0000.npy"))
    assert item.step_times()[:3].tolist() == [0.25, 0.75, 1.25]
    assert len(load_features(extracted)) == 3 == len(FeatureFolder(extracted))


def test_a_second_run_skips_what_is_written(
    data: Path, extracted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = sorted(extracted.glob("*.npy"))
    before = {f.name: f.stat().st_mtime_ns for f in files}
    capsys.readouterr()
    run("--data", data, "--out", extracted, *OPTIONS)
    assert "extracted 0 videos, 3 already there" in capsys.readouterr().out
    assert {f.name: f.stat().st_mtime_ns for f in files} == before
    # a damaged file is written again, and only it
    (extracted / "train_0001.npy").write_bytes(b"broken")
    run("--data", data, "--out", extracted, *OPTIONS)
    assert "extracted 1 videos, 2 already there" in capsys.readouterr().out
    after = {f.name: f.stat().st_mtime_ns for f in files}
    assert after["train_0001.npy"] != before["train_0001.npy"]
    assert {k: v for k, v in after.items() if k != "train_0001.npy"} == {
        k: v for k, v in before.items() if k != "train_0001.npy"
    }
    assert np.load(extracted / "train_0001.npy").shape[1] == 64


def test_other_settings_are_refused_or_replaced(
    data: Path, extracted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    run("--data", data, "--out", out, *OPTIONS)
    key = load_features_meta(out / "features.json").key
    line = one_error_line(capsys, "--data", data, "--out", out, *OPTIONS, "--stride", "2")
    assert line.startswith("harness: <command line>: --out: ")
    assert f"key {key}" in line and "stride 4 -> 2" in line and "--overwrite" in line
    run("--data", data, "--out", out, *OPTIONS, "--stride", "2", "--overwrite")
    meta = load_features_meta(out / "features.json")
    assert meta.key != key and meta.stride == 2 and meta.steps_per_second == 4.0
    assert np.load(out / "val_0000.npy").shape[0] == meta.videos["val_0000"].steps


def test_a_checkpoint_s_backbone_is_loaded(
    data: Path, extracted: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(7)
    trained = build_model(SPEC, frames=4, size=16, classes=8)
    checkpoint = tmp_path / "last.pt"
    payload = {"spec_hash": spec_hash(load_spec(SPEC)), "model": trained.state_dict()}
    save_checkpoint(checkpoint, payload)
    model, _, digest = create_feature_model(SPEC, window=4, size=16, weights=checkpoint)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, trained.state_dict()[name])
    out = tmp_path / "out"
    run("--data", data, "--out", out, *OPTIONS, "--weights", checkpoint)
    meta = load_features_meta(out / "features.json")
    assert meta.weights_digest == digest and meta.weights == str(checkpoint)
    assert meta.key != load_features_meta(extracted / "features.json").key
    save_checkpoint(checkpoint, {**payload, "spec_hash": "0" * 64})
    line = one_error_line(capsys, "--data", data, "--out", tmp_path / "b", "--weights", checkpoint)
    assert f"{checkpoint}: --weights: trained for spec hash 000000000000" in line
    checkpoint.write_bytes(b"not a checkpoint")
    line = one_error_line(capsys, "--data", data, "--out", tmp_path / "b", "--weights", checkpoint)
    assert f"{checkpoint}: not loaded" in line


def test_exported_videos_give_features(tmp_path: Path, data: Path) -> None:
    main(["data", "export", str(data), str(tmp_path / "videos"), "--size", "16", "--clips", "1"])
    run("--data", tmp_path / "videos", "--out", tmp_path / "out", *OPTIONS)
    (item,) = load_features(tmp_path / "out", "train")
    frames = json.loads((tmp_path / "videos/annotations.json").read_text())
    seconds = frames["database"]["train_0000"]["duration"]
    assert item.features.shape == ((round(seconds * 8) - 4) // 4 + 1, 64)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda d: (d / "val_0000.npy").unlink(), "val_0000.npy: <root>: missing: features.json"),
        (lambda d: (d / "val_0000.npy").write_bytes(b"\x93NUMPY junk"), "not a .npy array"),
        (lambda d: np.save(d / "val_0000.npy", np.zeros((3, 64), np.float32)), "shape (3, 64)"),
        (lambda d: np.save(d / "val_0000.npy", np.zeros(5)), "expected a (steps, channels)"),
        (lambda d: np.save(d / "val_0000.npy", np.array([object()])), "not a .npy array"),
    ],
)
def test_a_damaged_array_is_one_line_naming_it(
    extracted: Path, tmp_path: Path, damage, expected: str
) -> None:
    copy = tmp_path / "features"
    copy.mkdir()
    for file in extracted.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    damage(copy)
    with pytest.raises(SpecError) as info:
        load_features(copy, "val")
    message = str(info.value)
    assert message.startswith(f"{copy / 'val_0000.npy'}: ") and expected in message
    assert "\n" not in message


def test_a_bad_metadata_file_names_its_line(extracted: Path, tmp_path: Path) -> None:
    meta = json.loads((extracted / "features.json").read_text())
    (tmp_path / "features.json").write_text(json.dumps({**meta, "window": 0}, indent=1))
    with pytest.raises(SpecError, match=r"features.json:\d+:\d+: window: must be at least 1"):
        FeatureFolder(tmp_path)
    (tmp_path / "features.json").write_text("{")
    with pytest.raises(SpecError, match=r"features\.json: <root>: not JSON"):
        FeatureFolder(tmp_path)
    with pytest.raises(SpecError, match="no such file: not a features folder"):
        FeatureFolder(tmp_path / "nowhere")


def test_bad_options_are_one_line(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_error_line(capsys, "--data", data, "--out", tmp_path / "o", "--window", "0")
    assert line == "harness: <command line>: --window: must be at least 1, got 0"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("x")
    line = one_error_line(capsys, "--data", data, "--out", tmp_path / "full", *OPTIONS)
    assert "is not empty and holds no features.json" in line
    assert os.listdir(tmp_path / "full") == ["mine.txt"]
