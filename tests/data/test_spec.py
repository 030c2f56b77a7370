"""Data-set names, paths and YAML files resolve to validated specs; mistakes are SpecErrors."""

from __future__ import annotations

from pathlib import Path

import pytest
from _media import write_video

from harness.data import SyntheticDataSpec, VideoDataSpec, load_data_spec
from harness.errors import SpecError


@pytest.mark.parametrize(
    ("text", "preset", "classes"),
    [
        ("synthetic", "small", 12),
        ("synthetic:ci", "ci", 8),
        ("synthetic:tiny", "tiny", 8),
        ("synthetic:large", "large", 16),
    ],
)
def test_synthetic_names(text: str, preset: str, classes: int) -> None:
    spec = load_data_spec(text)
    assert isinstance(spec, SyntheticDataSpec)
    assert spec.preset == preset and spec.classes == classes


def test_yaml_file_overrides_the_preset(tmp_path: Path) -> None:
    path = tmp_path / "data.yaml"
    path.write_text("type: synthetic\npreset: tiny\nclasses: 4\nseed: 3\n")
    spec = load_data_spec(str(path))
    assert isinstance(spec, SyntheticDataSpec)
    assert (spec.classes, spec.seed, spec.video_frames) == (4, 3, 16)


def test_layout_prefix_and_detection(tmp_path: Path) -> None:
    write_video(tmp_path / "ds" / "jump" / "a.avi", frames=4)
    named = load_data_spec(f"folder:{tmp_path / 'ds'}")
    detected = load_data_spec(str(tmp_path / "ds"))
    assert isinstance(named, VideoDataSpec) and isinstance(detected, VideoDataSpec)
    assert named.layout == detected.layout == "folder"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("synthetic:huge", "data: unknown synthetic size 'huge'; known: ci, tiny, small, large"),
        ("/no/such/folder", "data.root: no such file or folder: /no/such/folder"),
        ("kinetics:/no/such.csv", "data.root: no such file or folder"),
        ({"type": "synthetic", "clases": 3}, "data.clases: unknown key 'clases' (did you mean"),
        ({"type": "synthetic", "classes": 40}, "data.classes: must be at most 16"),
        (
            {"type": "synthetic", "train_sampler": "tsm"},
            "unknown sampler 'tsm' (did you mean 'tsn'?)",
        ),
        ({"type": "video", "layout": "kinetic", "root": "."}, "unknown layout 'kinetic'"),
        ({"type": "audio"}, "data.type: unknown type 'audio'; known types: 'synthetic', 'video'"),
        ("", "data: empty data set name"),
    ],
)
def test_mistakes_are_spec_errors(data: object, message: str) -> None:
    with pytest.raises(SpecError) as info:
        load_data_spec(data)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_yaml_mistake_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("type: synthetic\nnoise: lots\n")
    with pytest.raises(SpecError, match=r"bad\.yaml.*data\.noise: Input should be a valid number"):
        load_data_spec(str(path))


def test_undetectable_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SpecError, match="cannot tell the layout"):
        load_data_spec(str(tmp_path))
