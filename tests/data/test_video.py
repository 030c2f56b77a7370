"""Decoding with PyAV: the right frames, by seeking, at the asked scale; bad files fail clearly."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _media import frame_index, write_frames, write_pattern_video, write_video

from harness.data.video import (
    DecodeError,
    _lowres,
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


def test_reduced_resolution_decoding_level() -> None:
    assert _lowres(320, 240, None) == 0
    assert _lowres(320, 240, 37) == 2  # 60 lines decoded, then scaled to 37
    assert [_lowres(320, 240, s) for s in (120, 121, 240)] == [1, 0, 0]
    assert _lowres(4000, 3000, 16) == 3  # never deeper than an eighth


@pytest.mark.parametrize(("codec", "ext"), [("mpeg4", "avi"), ("libx264", "mp4")])
@pytest.mark.parametrize("short_side", [37, 112])
def test_scaled_decoding_matches_a_torch_resize_of_full_frames(
    tmp_path: Path, codec: str, ext: str, short_side: int
) -> None:
    """Decoding at a reduced size (MPEG-4: lowres) and scaling in libswscale agree with
    decoding full frames and resizing them in torch (antialiased), within a few levels."""
    path = write_pattern_video(tmp_path / f"p.{ext}", codec=codec)
    wanted = np.array([0, 3, 7, 12, 15])
    full = torch.from_numpy(load_video_frames(path, wanted)).permute(0, 3, 1, 2).float()
    size = (short_side, round(320 * short_side / 240))
    reference = F.interpolate(full, size=size, mode="bilinear", antialias=True)
    for lowres, tolerance in ((True, 4.0), (False, 2.5)):
        frames = load_video_frames(path, wanted, short_side=short_side, lowres=lowres)
        assert frames.shape == (5, *size, 3)
        scaled = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
        assert (scaled - reference).abs().mean() < tolerance  # grey levels of 255


def test_reduced_resolution_keeps_the_output_size(tmp_path: Path) -> None:
    path = write_video(tmp_path / "odd.avi", frames=6, size=(162, 122))  # 41 x 31 at lowres 2
    for lowres in (True, False):
        frames = load_video_frames(path, np.array([1, 4]), short_side=30, lowres=lowres)
        assert frames.shape == (2, 30, 40, 3)
        assert frame_index(frames) == [1, 4]


def _decode_in_child(path: str, queue: multiprocessing.Queue) -> None:
    queue.put(load_video_frames(path, np.array([2]), short_side=16).shape)


def test_a_forked_child_decodes_after_its_parent(tmp_path: Path) -> None:
    """Loader workers are forked from a process that may have decoded already: a scaling
    context (or its thread pool) inherited from the parent must not hang the child."""
    path = str(write_video(tmp_path / "v.avi", frames=6, size=(64, 48)))
    load_video_frames(path, np.array([1]), short_side=16)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_decode_in_child, args=(path, queue))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("decoding hung in a forked child")
    assert child.exitcode == 0 and queue.get(timeout=5) == (1, 16, 21, 3)


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
