"""Decoding with PyAV: the right frames, by seeking, at the asked scale; bad files fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _media import frame_index, write_frames, write_video

from harness.data.video import (
    DecodeError,
    load_folder_frames,
    load_video_frames,
    probe_folder,
    probe_video,
)

CODECS = [("mpeg4", "avi"), ("libx264", "mp4"), ("libvpx-vp9", "webm")]


@pytest.mark.parametrize(("codec", "ext"), CODECS)
def test_decodes_the_wanted_frames(tmp_path: Path, codec: str, ext: str) -> None:
    path = write_video(tmp_path / f"v.{ext}", frames=30, codec=codec)
    assert probe_video(path).frames == 30
    wanted = np.array([0, 7, 7, 3, 29, 15, 16])
    frames = load_video_frames(path, wanted)
    assert frames.shape == (7, 32, 40, 3) and frames.dtype == np.uint8
    assert frame_index(frames) == wanted.tolist()


def test_far_apart_frames_are_reached_by_seeking(tmp_path: Path, monkeypatch) -> None:
    import harness.data.video as video

    path = write_video(tmp_path / "long.avi", frames=31, gop=4)
    monkeypatch.setattr(video, "MAX_DECODE_GAP", 4)  # force one seek per frame
    assert frame_index(load_video_frames(path, np.array([30, 2, 17]))) == [30, 2, 17]


def test_past_the_end_repeats_the_last_frame(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.avi", frames=10)
    assert frame_index(load_video_frames(path, np.array([8, 12]))) == [8, 9]


def test_short_side_scaling(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.avi", frames=4, size=(64, 48))
    assert load_video_frames(path, np.array([0]), short_side=24).shape == (1, 24, 32, 3)


def test_bad_files_raise_decode_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00not a video" * 100)
    for path in (junk, tmp_path / "missing.mp4"):
        with pytest.raises(DecodeError, match=path.name):
            probe_video(path)
        with pytest.raises(DecodeError):
            load_video_frames(path, np.array([0]))


def test_frame_folders(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "f", frames=12)
    (folder / "notes.txt").write_text("not a frame")
    assert probe_folder(folder).frames == 12
    frames = load_folder_frames(folder, np.array([11, 0, 5]), short_side=16)
    assert frames.shape == (3, 16, 20, 3)
    assert frame_index(frames) == [11, 0, 5]
    with pytest.raises(DecodeError):
        probe_folder(tmp_path)
