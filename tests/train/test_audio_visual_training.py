"""Audio-visual networks train end to end: on the built-in benchmark, and on exported .mp4
files with a sound track, one of them without (skipped or heard as silence, as the data
spec says)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.cli import main
from harness.data.export import get_video_codec, write_clip
from harness.data.index import DataWarning
from harness.errors import SpecError
from harness.spec import load_spec
from harness.train import Fidelity, TrainConfig, train

CONFIG = TrainConfig(num_workers=0, device="cpu", batch_size=4, lr=0.005, warmup_epochs=0.0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``harness data export synthetic-av:ci``: 4 classes, 2 training videos each, with
    sound; plus one training video without a sound track."""
    out = tmp_path_factory.mktemp("av") / "videos"
    main(["data", "export", "synthetic-av:ci", str(out), "--clips", "2", "--val-clips", "1",
          "--classes", "4", "--size", "16"])  # fmt: skip
    first = sorted((out / "train").iterdir())[0]
    frames = np.full((16, 16, 16, 3), 128, dtype=np.uint8)
    write_clip(first / "silent.mp4", frames, codec=get_video_codec(), fps=25)
    return out


def _data(root: Path, tmp_path: Path, missing: str) -> dict:
    return {"type": "video", "root": str(root), "cache_dir": str(tmp_path / "cache"),
            "missing_audio": missing}  # fmt: skip


def test_the_fused_reference_trains_on_the_builtin_benchmark() -> None:
    result = train("tiny_av", "synthetic-av:ci", config=CONFIG, fidelity=Fidelity(epochs=1,
                   subset=0.25), progress=False)  # fmt: skip
    assert result.status == "complete" and 0 <= result.top1 <= 1
    assert result.classes[0] == "move_right+low_tone"


def test_a_video_without_sound_is_skipped_and_counted(exported: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train("tiny_av", _data(exported, tmp_path, "skip"), config=CONFIG,
                       fidelity=Fidelity(epochs=1), progress=False)  # fmt: skip
    assert result.status == "complete"
    said = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert any("no audio track" in m and "silent.mp4" in m for m in said), said


def test_a_video_without_sound_is_heard_as_silence(exported: Path, tmp_path: Path) -> None:
    result = train("tiny_av", _data(exported, tmp_path, "silence"), config=CONFIG,
                   fidelity=Fidelity(epochs=1), progress=False)  # fmt: skip
    assert result.status == "complete" and len(result.classes) == 4


def test_an_audio_input_of_another_name_is_named(tmp_path: Path) -> None:
    spec = load_spec("tiny_audio")
    data = spec.model_dump(mode="json", exclude={"published"}, exclude_none=True)
    data["inputs"] = {"sound": data["inputs"]["audio"]}
    path = tmp_path / "renamed.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError) as info:
        train(str(path), "synthetic-av:ci", config=CONFIG, fidelity=Fidelity(epochs=1),
              progress=False)  # fmt: skip
    assert info.value.path == ("inputs", "sound") and "'audio'" in info.value.message


def test_the_model_s_audio_input_and_the_data_s_settings_agree() -> None:
    from harness.data.audio import AudioSettings
    from harness.spec.audio import AudioInputSpec

    spec = AudioInputSpec.model_json_schema()["properties"]
    data = AudioSettings.model_json_schema()["properties"]
    shared = set(spec) & set(data)
    assert shared == {"sample_rate", "window", "hop", "mels", "frames"}
    for name in shared:
        bounds = ("minimum", "maximum")
        assert [spec[name].get(b) for b in bounds] == [data[name].get(b) for b in bounds], name


def test_a_space_of_audio_visual_networks_needs_data_with_sound(tmp_path: Path) -> None:
    from harness.search import check_space, load_space

    path = tmp_path / "av.yaml"
    path.write_text("base: tiny_av\ndata: 'synthetic:ci'\nfidelity: {epochs: 1}\n"
                    "params:\n  join.type: [concat, scores]\n")  # fmt: skip
    with pytest.raises(SpecError, match="synthetic-av") as info:
        check_space(load_space(path), draws=0)
    assert info.value.path == ("data",)
