"""The audio-visual benchmark: a class design that needs both streams, sound that is one
continuous function of time per video, items with spectrograms, and its export with sound."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from harness.data import (
    SYNTHETIC_CLASSES,
    AudioSettings,
    SyntheticAVVideos,
    SyntheticDataSpec,
    SyntheticVideos,
    VideoDataSpec,
    audio_visual_pairs,
    create_dataset,
    list_audio_visual_classes,
    load_data_spec,
    log_mel,
    reversal_pairs,
    sample_clip,
)
from harness.data.audio import LOG_EPS, clip_log_mel
from harness.data.export import export_synthetic
from harness.data.synthetic_av import AUDIO_VISUAL_CLASSES, list_sounds
from harness.errors import SpecError
from harness.spec.schema import ClipSpec

SETTINGS = AudioSettings(sample_rate=16000, window=400, hop=160, mels=64, frames=64)


def _videos(preset: str = "tiny", split: str = "train", **fields: object) -> SyntheticAVVideos:
    spec = load_data_spec({"type": "synthetic", "sound": True, "preset": preset, **fields})
    assert isinstance(spec, SyntheticDataSpec)
    return SyntheticAVVideos(spec, split)


def _ceiling(keys: list[str]) -> float:
    """Best accuracy from ``keys`` alone, classes equally likely: a key shared by n classes
    is right once in n."""
    counts = Counter(keys)
    return float(np.mean([1 / counts[k] for k in keys]))


# ---------------------------------------------------------------- the class design


def test_every_pair_differs_in_one_stream_only() -> None:
    assert {c.visual for c in AUDIO_VISUAL_CLASSES} <= {c.name for c in SYNTHETIC_CLASSES}
    assert {c.sound for c in AUDIO_VISUAL_CLASSES} <= set(list_sounds())
    pairs = audio_visual_pairs()
    assert pairs == [(2 * k, 2 * k + 1) for k in range(8)]
    for k, (a, b) in enumerate(pairs):
        first, second = AUDIO_VISUAL_CLASSES[a], AUDIO_VISUAL_CLASSES[b]
        if k % 2 == 0:  # sound pairs and motion pairs alternate
            assert first.visual == second.visual and first.sound != second.sound
        else:
            assert first.sound == second.sound and first.visual != second.visual
        # a motion or a sound names its pair: no other pair has it
        others = [c for i, c in enumerate(AUDIO_VISUAL_CLASSES) if i not in (a, b)]
        assert not {first.visual, second.visual} & {c.visual for c in others}
        assert not {first.sound, second.sound} & {c.sound for c in others}
    assert len(set(list_audio_visual_classes())) == len(AUDIO_VISUAL_CLASSES)


@pytest.mark.parametrize("classes", [8, 12, 16])
def test_neither_stream_alone_solves_it(classes: int) -> None:
    chosen = AUDIO_VISUAL_CLASSES[:classes]
    assert _ceiling([c.visual for c in chosen]) == 0.75
    assert _ceiling([c.sound for c in chosen]) == 0.75
    assert _ceiling([f"{c.visual} {c.sound}" for c in chosen]) == 1.0


def test_the_first_eight_motions_need_no_time_order() -> None:
    """The motions of the 8-class sizes hold no time-reversal pair of the visual benchmark."""
    index = {c.name: i for i, c in enumerate(SYNTHETIC_CLASSES)}
    motions = {index[c.visual] for c in AUDIO_VISUAL_CLASSES[:8]}
    assert not any({a, b} <= motions for a, b in reversal_pairs())


def test_pairs_are_matched_frames_or_matched_sound() -> None:
    videos = _videos()
    frames, seconds = np.arange(0, 16, 3), videos.duration
    for a, b in audio_visual_pairs(8):
        first, second = 16 + a, 16 + b  # one group of videos: consecutive indices
        same_frames = np.array_equal(
            videos.render(first, frames, 24), videos.render(second, frames, 24)
        )
        sound = [
            videos.audio(i, start=0, duration=seconds, sample_rate=8000) for i in (first, second)
        ]
        same_sound = np.array_equal(*sound)
        assert same_frames != same_sound  # exactly one stream is identical
        assert same_frames == (AUDIO_VISUAL_CLASSES[a].visual == AUDIO_VISUAL_CLASSES[b].visual)


# ---------------------------------------------------------------- sound


def test_a_clip_s_sound_is_the_exact_slice_of_the_video_s() -> None:
    videos = _videos()
    whole = videos.audio(5, start=0.0, duration=videos.duration, sample_rate=16000)
    assert whole.dtype == np.float32 and whole.shape == (round(16 * 16000 / 25),)
    for first, frames in ((0, 4), (3, 8), (9, 7)):  # clips as the dataset asks for them
        start, duration = videos.frame_time(first), videos.frame_time(frames)
        clip = videos.audio(5, start=start, duration=duration, sample_rate=16000)
        offset = round(start * 16000)
        assert np.array_equal(clip, whole[offset : offset + len(clip)])
    # one function of time: every third sample at 48 kHz is the 16 kHz sound
    fine = videos.audio(5, start=0.0, duration=videos.duration, sample_rate=48000)
    assert np.array_equal(fine[::3], whole)
    assert np.all(videos.audio(5, start=-0.1, duration=0.1, sample_rate=8000) == 0)


def test_sound_is_deterministic_per_seed_split_and_video() -> None:
    def sound(videos: SyntheticAVVideos, index: int = 6) -> np.ndarray:
        return videos.audio(index, start=0.1, duration=0.3, sample_rate=16000)

    assert np.array_equal(sound(_videos()), sound(_videos()))
    assert not np.array_equal(sound(_videos()), sound(_videos(seed=1)))
    assert not np.array_equal(sound(_videos()), sound(_videos(split="val")))
    assert not np.array_equal(sound(_videos()), sound(_videos(), index=6 + 8))
    assert np.abs(sound(_videos())).max() <= 1.0


def test_each_sound_is_told_apart_by_simple_features() -> None:
    """A nearest-centroid rule on the mean log-mel spectrum and its lagged covariance (up
    or down sweeps) names every sound of held-out videos: the sounds are easy; the
    benchmark's difficulty is in pairing the streams."""
    videos = _videos("large")
    sounds = sorted({c.sound for c in AUDIO_VISUAL_CLASSES})
    label = {s: next(i for i, c in enumerate(AUDIO_VISUAL_CLASSES) if c.sound == s) for s in sounds}
    rng = np.random.default_rng(0)

    def features(sound: str, group: int) -> torch.Tensor:
        start = videos.frame_time(int(rng.integers(0, 9)))
        index = group * 16 + label[sound]
        waveform = videos.audio(index, start=start, duration=0.3, sample_rate=16000)
        x = log_mel(waveform, SETTINGS)[0, :25]
        pooled = x.reshape(25, 16, 4).mean(dim=2)
        pooled = pooled - pooled.mean(dim=0)
        lagged = pooled[:-3].T @ pooled[3:] / 22  # energy moving up or down the bins
        return torch.cat([x.mean(dim=0), (lagged - lagged.T).flatten()])

    centroids = torch.stack(
        [torch.stack([features(s, g) for g in range(4)]).mean(0) for s in sounds]
    )
    for s_index, sound in enumerate(sounds):
        for group in range(4, 7):
            distance = (centroids - features(sound, group)).square().sum(dim=1)
            assert int(distance.argmin()) == s_index, sound


# ---------------------------------------------------------------- specs and items


@pytest.mark.parametrize(
    ("text", "preset", "classes"), [("synthetic-av", "small", 12), ("synthetic-av:ci", "ci", 8)]
)
def test_names_and_yaml(text: str, preset: str, classes: int, tmp_path: Path) -> None:
    spec = load_data_spec(text)
    assert isinstance(spec, SyntheticDataSpec) and spec.sound
    assert (spec.preset, spec.classes, spec.fps) == (preset, classes, 25)
    path = tmp_path / "av.yaml"
    path.write_text("type: synthetic\nsound: true\npreset: tiny\nclasses: 4\nfps: 30\n")
    loaded = load_data_spec(str(path))
    assert isinstance(loaded, SyntheticDataSpec) and loaded.sound
    assert (loaded.classes, loaded.fps) == (4, 30)
    path.write_text("type: synthetic\nsound: true\nclasses: 5\n")
    with pytest.raises(SpecError, match="must be even"):
        load_data_spec(str(path))
    with pytest.raises(SpecError, match="unknown synthetic-av size 'huge'"):
        load_data_spec("synthetic-av:huge")


def test_sound_keys_are_late_keys() -> None:
    """The visual benchmark's dump (a run's identity, the render cache's key) is as it was."""
    plain, av_spec = load_data_spec("synthetic:tiny"), load_data_spec("synthetic-av:tiny")
    assert not {"sound", "fps", "hiss"} & plain.model_dump().keys()
    assert av_spec.model_dump()["sound"] is True
    assert SyntheticVideos(plain, "train").key != SyntheticAVVideos(av_spec, "train").key  # type: ignore[arg-type]


def test_items_hold_frames_and_the_spectrogram_of_their_span() -> None:
    data = load_data_spec({"type": "synthetic", "sound": True, "preset": "ci", "train_clips": 16})
    clip = ClipSpec(frames=4, stride=2, size=16)
    dataset = create_dataset(data, "train", clip=clip, audio=SETTINGS)
    x, label, video = dataset[(3, 11)]
    assert set(x) == {"rgb", "audio"} and (label, video) == (3, 3)
    assert x["rgb"].shape == (3, 4, 16, 16) and x["audio"].shape == (1, 64, 64)
    again = dataset[(3, 11)][0]
    assert torch.equal(again["rgb"], x["rgb"]) and torch.equal(again["audio"], x["audio"])
    plain = create_dataset(data, "train", clip=clip)[(3, 11)][0]
    assert torch.equal(plain, x["rgb"])  # the frames do not change with the sound
    # the clip's frames: the sampler's first draw from the item's seed
    indices = sample_clip("strided", 16, frames=4, stride=2, rng=np.random.default_rng(11))
    first, last = int(indices[0]), int(indices[-1])
    videos = _videos("ci", train_clips=16)
    span = videos.audio(3, start=first / 25, duration=(last - first + 1) / 25, sample_rate=16000)
    assert torch.equal(x["audio"], clip_log_mel(span, SETTINGS))
    # 0.28 s of sound stretched over the 64 frames: no silence after it
    assert bool((x["audio"][0].max(dim=1).values > math.log(LOG_EPS) + 1).all())


def test_the_silent_benchmark_has_no_sound_to_give() -> None:
    clip = ClipSpec(frames=4, size=16)
    with pytest.raises(SpecError, match="synthetic-av:tiny"):
        create_dataset("synthetic:tiny", "train", clip=clip, audio=SETTINGS)
    assert isinstance(create_dataset("synthetic-av:tiny", "val", clip=clip)[0][0], torch.Tensor)


# ---------------------------------------------------------------- export


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export-av") / "videos"
    spec = load_data_spec("synthetic-av:tiny")
    assert isinstance(spec, SyntheticDataSpec)
    export_synthetic(spec, root, clips=1, val_clips=1, classes=4, size=32)
    return root


def test_export_writes_the_sound_track(exported: Path) -> None:
    files = sorted(exported.rglob("*.mp4"))
    assert len(files) == 8
    for file in files:
        with av.open(str(file)) as container:
            assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
            stream = container.streams.audio[0]
            assert stream.codec_context.name == "aac" and stream.sample_rate == 16000
    names = {p.name for p in (exported / "train").iterdir()}
    assert names == set(list_audio_visual_classes(4))


def test_the_export_read_back_has_the_benchmark_s_sound(exported: Path, tmp_path: Path) -> None:
    data = load_data_spec({"type": "video", "root": str(exported), "cache_dir": str(tmp_path)})
    assert isinstance(data, VideoDataSpec)
    clip = ClipSpec(frames=8, stride=1, size=32)
    dataset = create_dataset(data, "val", clip=clip, audio=SETTINGS)
    assert sorted(dataset.classes) == sorted(list_audio_visual_classes(4))
    spec = load_data_spec("synthetic-av:tiny").model_copy(update={"classes": 4})
    assert isinstance(spec, SyntheticDataSpec)
    videos = SyntheticAVVideos(spec, "val")
    for item in range(dataset.num_videos):
        x, label, _ = dataset[item]
        name = dataset.classes[label]
        index = list_audio_visual_classes(4).index(name)  # val clip 0 of each class
        # the centred 8-frame clip of 16 frames starts at frame 4
        direct = clip_log_mel(
            videos.audio(index, start=4 / 25, duration=8 / 25, sample_rate=16000), SETTINGS
        )
        assert (x["audio"] - direct).abs().mean() < 0.3, name
    # and the sound pairs' frames are one: only the sound tells these two apart
    names = list_audio_visual_classes(4)
    video_of = {dataset.classes[int(label)]: i for i, label in enumerate(dataset.labels)}
    first, second = (dataset[video_of[n]][0] for n in names[:2])
    assert (first["rgb"] - second["rgb"]).abs().mean() < 0.05
    assert (first["audio"] - second["audio"]).abs().mean() > 1.0
    assert math.isfinite(float(first["audio"].sum()))


def test_harness_data_export_takes_an_audio_visual_yaml(tmp_path: Path) -> None:
    from harness.cli import main

    path = tmp_path / "av.yaml"
    path.write_text("type: synthetic\nsound: true\npreset: tiny\nclasses: 2\n")
    out = tmp_path / "out"
    main(
        ["data", "export", str(path), str(out), "--clips", "1", "--val-clips", "1", "--size", "16"]
    )
    files = sorted(out.rglob("*.mp4"))
    assert sorted(p.parent.name for p in files) == sorted(list_audio_visual_classes(2) * 2)
    for file in files:
        with av.open(str(file)) as container:
            assert len(container.streams.audio) == 1


def test_an_odd_number_of_audio_visual_classes_is_refused(tmp_path: Path) -> None:
    spec = load_data_spec("synthetic-av:tiny")
    assert isinstance(spec, SyntheticDataSpec)
    with pytest.raises(SpecError, match="--classes: must be even"):
        export_synthetic(spec, tmp_path / "out", clips=1, classes=3, size=16)
