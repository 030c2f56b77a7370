"""Sound: settings, the mel filterbank, log-mel spectrograms, decoding a video's audio
track (resampled, windowed, cached) and audio-visual items of real video folders."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from pydantic import ValidationError

import harness.data.audio as audio_module
from harness.data import (
    AudioSettings,
    DataWarning,
    DecodeError,
    create_dataset,
    load_audio,
    load_data_spec,
    log_mel,
)
from harness.data.audio import LOG_EPS, clip_log_mel, hz_to_mel, mel_filterbank, mel_to_hz
from harness.errors import SpecError
from harness.spec.schema import ClipSpec

FPS = 25
SETTINGS = AudioSettings(sample_rate=16000, window=400, hop=160, mels=64, frames=40)


def tone(hz: float, seconds: float, rate: int, onset: float = 0.0) -> np.ndarray:
    """A sine of amplitude 0.5 that starts at ``onset`` seconds (silence before)."""
    t = np.arange(round(seconds * rate)) / rate
    return np.where(t >= onset, 0.5 * np.sin(2 * math.pi * hz * t), 0.0).astype(np.float32)


def write_av(
    path: Path,
    *,
    frames: int = 8,
    sound: np.ndarray | None = None,
    rate: int = 16000,
    channels: int = 1,
) -> Path:
    """A 32x32 video of ``frames`` grey frames at 25 fps, with ``sound`` (AAC, copied to
    every channel) when given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=FPS)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = None
        if sound is not None:
            audio = container.add_stream("aac", rate=rate)
            audio.layout = "mono" if channels == 1 else "stereo"
        for i in range(frames):
            image = np.full((32, 32, 3), (8 * i + 4) % 256, np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode())
        if audio is not None and sound is not None:
            planes = np.repeat(sound[None, :], channels, axis=0).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=audio.layout.name)
            frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
            container.mux(audio.encode(frame))
            container.mux(audio.encode(None))
    return path


# ---------------------------------------------------------------- settings and mels


def test_settings_defaults_and_checks() -> None:
    default = AudioSettings()
    assert (default.sample_rate, default.window, default.hop, default.mels, default.frames) == (
        16000,
        400,
        160,
        80,
        128,
    )
    assert default.n_fft == 512 and default.top == 8000
    assert default.samples == 127 * 160 + 400
    with pytest.raises(ValidationError, match="above half the sample rate"):
        AudioSettings(sample_rate=16000, fmax=9000)
    with pytest.raises(ValidationError, match="below fmax"):
        AudioSettings(fmin=5000, fmax=4000)
    with pytest.raises(ValidationError):
        AudioSettings(mels=True)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        AudioSettings(type="audio")  # type: ignore[call-arg]


def test_mel_scale_round_trip_and_breakpoint() -> None:
    hz = np.array([0.0, 200.0, 999.0, 1000.0, 1001.0, 4000.0, 8000.0])
    assert np.allclose(mel_to_hz(hz_to_mel(hz)), hz)
    assert float(hz_to_mel(1000.0)) == pytest.approx(15.0)  # linear part: 200/3 Hz per mel
    assert np.all(np.diff(hz_to_mel(np.linspace(0, 8000, 200))) > 0)


@pytest.mark.parametrize("settings", [AudioSettings(), SETTINGS, AudioSettings(fmin=100, mels=40)])
def test_filterbank_is_triangles_with_rising_centres(settings: AudioSettings) -> None:
    weights = mel_filterbank(settings)
    assert weights.shape == (settings.n_fft // 2 + 1, settings.mels)
    assert weights.min() >= 0 and weights.max() <= 1
    assert np.all(weights.max(axis=0) > 0)  # no empty filter
    bins = np.arange(weights.shape[0]) * settings.sample_rate / settings.n_fft
    peaks = bins[weights.argmax(axis=0)]
    assert np.all(np.diff(peaks) >= 0)  # centres rise with the bin number
    for column in weights.T:
        top = int(column.argmax())
        rising, falling = column[: top + 1], column[top:]
        assert np.all(np.diff(rising[rising > 0]) > 0)  # one peak: up, then down
        assert np.all(np.diff(falling[falling > 0]) < 0)
    # each triangle reaches 1 at its centre (the corners are the neighbours' centres)
    corners = mel_to_hz(
        np.linspace(hz_to_mel(settings.fmin), hz_to_mel(settings.top), settings.mels + 2)
    )
    fine = settings.model_copy(update={"window": settings.window * 64})
    dense = mel_filterbank(fine)
    fine_bins = np.arange(dense.shape[0]) * fine.sample_rate / fine.n_fft
    for m in (0, settings.mels // 2, settings.mels - 1):
        at_centre = int(np.argmin(np.abs(fine_bins - corners[m + 1])))
        assert dense[at_centre, m] == pytest.approx(1.0, abs=0.02)
        outside = (fine_bins <= corners[m]) | (fine_bins >= corners[m + 2])
        assert np.all(dense[outside, m] == 0)


@pytest.mark.parametrize("hz", [440.0, 1000.0, 3000.0, 6100.0])
def test_a_pure_tone_peaks_in_its_mel_bin(hz: float) -> None:
    spectrogram = log_mel(tone(hz, 0.5, 16000), SETTINGS)
    assert spectrogram.shape == (1, SETTINGS.frames, SETTINGS.mels)
    profile = spectrogram[0, 5:30].mean(dim=0)
    corners = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(8000.0), SETTINGS.mels + 2))
    # a frequency lies in two overlapping triangles: the energy peaks in one of them
    containing = [m for m in range(SETTINGS.mels) if corners[m] < hz < corners[m + 2]]
    assert len(containing) == 2 and int(profile.argmax()) in containing
    # calibrated: a sine of amplitude 0.5 reads about 0.25 in the bins of its frequency
    assert math.exp(float(profile.max())) == pytest.approx(0.25, rel=0.5)


def test_time_axis_starts_at_the_clip_and_pads_with_silence() -> None:
    sound = tone(1000.0, 0.2, 16000, onset=0.1)  # 100 ms of silence, then 100 ms of tone
    spectrogram = log_mel(sound, SETTINGS)[0]
    level = spectrogram.max(dim=1).values
    silence = math.log(LOG_EPS)
    # frame k covers samples [160 k, 160 k + 400): silent while that ends before 1600
    assert torch.all(level[:8] == silence) and torch.all(level[8:17] > silence + 5)
    # 0.2 s has (3200 - 400) / 160 + 1 = 18.5 frames: the rest is padding
    assert torch.all(level[20:] == silence)
    longer = log_mel(np.tile(sound, 10), SETTINGS)  # cut at the end, not the start
    assert torch.allclose(longer[0, :10], spectrogram[:10])
    assert torch.all(log_mel(np.zeros(0, np.float32), SETTINGS) == silence)


# ---------------------------------------------------------------- decoding


def test_load_audio_resamples_stereo_44k_to_mono_and_aligns_the_window(tmp_path: Path) -> None:
    sound = tone(1000.0, 1.0, 44100, onset=0.4)
    path = write_av(tmp_path / "a.mp4", frames=25, sound=sound, rate=44100, channels=2)
    waveform = load_audio(path, sample_rate=8000, start=0.3, duration=0.5)
    assert waveform is not None and waveform.dtype == np.float32 and waveform.shape == (4000,)
    onset = int(np.argmax(np.abs(waveform) > 0.1))
    assert abs(onset - 800) <= 16  # 0.4 s is 0.1 s into the window: sample 800 at 8 kHz
    assert 0.4 < np.abs(waveform[1000:]).max() <= 0.6  # the tone, not doubled by downmixing
    past_the_end = load_audio(path, sample_rate=8000, start=0.9, duration=0.5)
    assert past_the_end is not None and past_the_end.shape == (4000,)
    assert np.all(past_the_end[1000:] == 0)  # silence after the stream ends


def test_load_audio_seeks_into_long_files(tmp_path: Path) -> None:
    sound = tone(500.0, 4.0, 16000, onset=3.0)
    path = write_av(tmp_path / "long.mp4", frames=100, sound=sound)
    waveform = load_audio(path, sample_rate=16000, start=2.75, duration=0.5)  # past SEEK_AFTER
    assert waveform is not None
    assert abs(int(np.argmax(np.abs(waveform) > 0.1)) - 4000) <= 32
    whole = load_audio(path, sample_rate=16000, start=0.0, duration=4.0)
    assert whole is not None
    assert np.allclose(waveform, whole[44000:52000], atol=0.02)


def test_no_audio_stream_is_none_and_a_broken_file_a_decode_error(tmp_path: Path) -> None:
    silent = write_av(tmp_path / "silent.mp4")
    assert load_audio(silent, sample_rate=16000, start=0, duration=0.2) is None
    assert load_audio(silent, sample_rate=16000, start=0, duration=0.2, cache_dir=tmp_path) is None
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 20)
    with pytest.raises(DecodeError, match=r"broken\.mp4"):
        load_audio(broken, sample_rate=16000, start=0, duration=0.2)
    with pytest.raises(DecodeError, match=r"broken\.mp4"):
        load_audio(broken, sample_rate=16000, start=0, duration=0.2, cache_dir=tmp_path)


def test_cache_decodes_once_and_recomputes_a_corrupt_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_av(tmp_path / "a.mp4", frames=25, sound=tone(700.0, 1.0, 16000))
    cache = tmp_path / "cache"
    first = load_audio(path, sample_rate=16000, start=0.2, duration=0.3, cache_dir=cache)
    direct = load_audio(path, sample_rate=16000, start=0.2, duration=0.3)
    assert first is not None and direct is not None
    assert np.abs(first - direct).max() < 1e-4  # the cache keeps int16
    files = list((cache / "audio").glob("*.npy"))
    assert len(files) == 1

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the track must come from the cache")

    monkeypatch.setattr(audio_module, "_decode_file", no_decoding)
    again = load_audio(path, sample_rate=16000, start=0.2, duration=0.3, cache_dir=cache)
    assert again is not None and np.array_equal(again, first)
    other = load_audio(path, sample_rate=16000, start=0.6, duration=0.3, cache_dir=cache)
    assert other is not None and other.shape == (4800,)  # another window, same cache file
    monkeypatch.undo()

    for damage in (b"garbage", files[0].read_bytes()[:100]):  # not an array; truncated
        files[0].write_bytes(damage)
        fixed = load_audio(path, sample_rate=16000, start=0.2, duration=0.3, cache_dir=cache)
        assert fixed is not None and np.array_equal(fixed, first)


# ---------------------------------------------------------------- data sets


def _folder(root: Path) -> Path:
    """Two classes, train and val; one training video of each class has no sound."""
    for split in ("train", "val"):
        for label, hz in (("high", 2000.0), ("low", 300.0)):
            write_av(root / split / label / "a.mp4", sound=tone(hz, 8 / FPS, 16000))
        if split == "train":
            write_av(root / split / "high" / "mute.mp4")
            write_av(root / split / "low" / "mute.mp4")
    return root


@pytest.mark.parametrize("seconds", [0.2, 0.64, 1.5])
def test_a_clip_s_spectrogram_spans_the_clip_whatever_its_length(seconds: float) -> None:
    settings = AudioSettings(sample_rate=16000, mels=32, frames=64)
    t = np.arange(int(seconds * 16000)) / 16000
    waveform = np.where(t >= seconds / 2, np.sin(2 * np.pi * 1000 * t), 0.0)  # from halfway
    spectrogram = clip_log_mel(waveform, settings)
    assert spectrogram.shape == (1, 64, 32)
    loud = spectrogram[0].max(dim=1).values > -6
    onset = int(torch.nonzero(loud)[0])
    assert abs(onset - 32) <= 2, onset  # halfway through the clip: frame 32 of 64
    assert bool(loud[onset:].all()) and not bool(loud[: onset - 1].any())
    natural = 1 + (len(waveform) - 400) // 160
    if natural == 64:
        assert torch.equal(spectrogram, log_mel(waveform, settings))


def test_video_items_carry_the_clip_s_spectrogram(tmp_path: Path) -> None:
    data = {"type": "video", "root": str(_folder(tmp_path / "ds")), "cache_dir": str(tmp_path)}
    clip = ClipSpec(frames=4, stride=1, size=32)
    dataset = create_dataset(data, "val", clip=clip, audio=SETTINGS)
    items = {dataset.classes[label]: x for x, label, _ in (dataset[i] for i in range(2))}
    for x in items.values():
        assert set(x) == {"rgb", "audio"}
        assert x["rgb"].shape == (3, 4, 32, 32) and x["audio"].shape == (1, 40, 64)
        # the centred clip spans frames 2-5: 0.16 s, 2560 samples, 14 spectrogram frames,
        # stretched over the network's 40: sound all along, no silence after it
        assert torch.all(x["audio"][0].max(dim=1).values > -6)
    high, low = (items[n]["audio"][0, :12].mean(dim=0).argmax() for n in ("high", "low"))
    assert int(high) > int(low)
    plain = create_dataset(data, "val", clip=clip)[0][0]
    assert isinstance(plain, torch.Tensor) and torch.equal(plain, items[dataset.classes[0]]["rgb"])


def test_missing_audio_is_silence_or_skipped(tmp_path: Path) -> None:
    root = _folder(tmp_path / "ds")
    base = {"type": "video", "root": str(root), "cache_dir": str(tmp_path / "cache")}
    clip = ClipSpec(frames=4, size=32)
    silence = create_dataset(base, "train", clip=clip, audio=SETTINGS)
    assert silence.num_videos == 4
    mute = [i for i, r in enumerate(silence.records) if r.path.endswith("mute.mp4")]  # type: ignore[attr-defined]
    assert len(mute) == 2
    assert torch.all(silence[mute[0]][0]["audio"] == math.log(LOG_EPS))

    with pytest.warns(DataWarning, match="skipped 2 of 4 videos of the 'train' split: no audio"):
        skipping = create_dataset(
            {**base, "missing_audio": "skip"}, "train", clip=clip, audio=SETTINGS
        )
    assert skipping.num_videos == 2 and sorted(skipping.labels.tolist()) == [0, 1]
    assert skipping.skipped["no audio track"] == 2  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sound asked: nothing is skipped
        assert create_dataset({**base, "missing_audio": "skip"}, "train", clip=clip).num_videos == 4

    mute_only = tmp_path / "mute"
    for split in ("train", "val"):
        write_av(mute_only / split / "x" / "a.mp4")
        write_av(mute_only / split / "y" / "a.mp4")
    with pytest.raises(SpecError, match="missing_audio: no video of the 'train' split"):
        create_dataset(
            {
                "type": "video",
                "root": str(mute_only),
                "missing_audio": "skip",
                "cache_dir": str(tmp_path),
            },
            "train",
            clip=clip,
            audio=SETTINGS,
        )


def test_missing_audio_is_a_late_key() -> None:
    spec = load_data_spec({"type": "video", "root": "/", "layout": "folder"})
    assert "missing_audio" not in spec.model_dump()  # runs stored before it still resume
    skip = spec.model_copy(update={"missing_audio": "skip"})
    assert skip.model_dump()["missing_audio"] == "skip"
    with pytest.raises(SpecError, match="missing_audio"):
        load_data_spec({"type": "video", "root": "/", "layout": "folder", "missing_audio": "drop"})


def test_the_front_end_s_multiply_adds_by_hand() -> None:
    from harness.data.audio import front_end_macs

    # 128 frames of: a 512-point FFT (256 x 9 complex products, 4 multiply-adds each), the
    # 400-sample window, the power of 257 bins (2 each), the 257 x 80 mel projection
    assert front_end_macs(AudioSettings()) == 128 * (256 * 9 * 4 + 400 + 2 * 257 + 257 * 80)
    settings = AudioSettings(window=300, mels=40, frames=10)  # n_fft 512 still
    assert front_end_macs(settings) == 10 * (256 * 9 * 4 + 300 + 2 * 257 + 257 * 40)
