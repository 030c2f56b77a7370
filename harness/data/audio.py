"""Sound for audio-visual models: decoding a video's audio track, and log-mel spectrograms.

    video file --load_audio (PyAV, resampled to mono)--> waveform (N,) float32
        --log_mel (STFT, mel filterbank, log)--> spectrogram (1, frames, mels)

:class:`AudioSettings` holds what the network reads; the model spec's audio input carries
the same fields (``sample_rate``, ``window``, ``hop``, ``mels``, ``frames``).

Time: ``start`` and ``duration`` are seconds on the video's clock, whose zero is the first
frame of the file's first video stream (the clock :func:`harness.data.video.load_video_frames`
counts frames on), so a clip's sound starts with its first frame. Samples the audio
stream does not cover (before it begins, after it ends) are silence (zeros).

The spectrogram (our own, not a library's):

- STFT: Hann window of ``window`` samples every ``hop`` samples, no centring (frame ``k``
  covers samples ``[k * hop, k * hop + window)``, so frame 0 starts at the clip's start),
  zero-padded to ``n_fft``, the next power of two, for a finer frequency grid.
- Power scaled by ``4 / sum(window) ** 2``: a sinusoid of amplitude ``A`` reads ``A ** 2``
  at its frequency.
- Mel filterbank on the Slaney scale (linear below 1 kHz, logarithmic above; Slaney's
  Auditory Toolbox): ``mels`` triangles whose corners are equally spaced mels between
  ``fmin`` and ``fmax``; each triangle peaks at 1 at its centre frequency (not
  area-normalised, so a wide high filter gathers more of a broadband sound's energy).
- ``log(mel + LOG_EPS)``; the time axis is cut or padded at its end to ``frames``;
  padding is silence, ``log(LOG_EPS)``.

A video's waveform is decoded once and kept in the disk cache as int16 (see
:func:`load_audio`), so that later epochs, whatever their random clip starts, read a
slice of it instead of decoding again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Annotated

import av
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.data._io import cache_file, file_identity, save_array
from harness.data.video import DecodeError
from harness.spec import NotBool, Number

__all__ = [
    "LOG_EPS",
    "AudioSettings",
    "clip_log_mel",
    "front_end_macs",
    "has_audio",
    "hz_to_mel",
    "load_audio",
    "log_mel",
    "mel_filterbank",
    "mel_to_hz",
    "probe_audio",
]

LOG_EPS = 1e-8  # added before the log: -80 dB below a full-scale sinusoid's power
_READ_ERRORS = (av.FFmpegError, OSError, ValueError, IndexError, EOFError)
SEEK_AFTER = 2.0  # seconds: a window starting later is reached by a seek, not by decoding
SEEK_MARGIN = 0.5  # seconds decoded before the window after a seek (decoder warm-up)
_INT16_SCALE = 32767.0  # the cache stores waveforms as int16 at this scale

_Int = Annotated[int, NotBool]


class AudioSettings(BaseModel):
    """What an audio-visual network hears: the waveform's rate and its spectrogram.

    The defaults are the common 16 kHz log-mel front end (25 ms windows every 10 ms,
    80 bins, 1.28 s of sound).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_rate: _Int = Field(default=16000, ge=1000, le=192_000)  # Hz the audio is resampled to
    window: _Int = Field(default=400, ge=16, le=65536)  # STFT window, samples (400: 25 ms)
    hop: _Int = Field(default=160, ge=1, le=65536)  # samples between frames (160: 10 ms)
    mels: _Int = Field(default=80, ge=1, le=512)  # mel bins
    frames: _Int = Field(default=128, ge=1, le=100_000)  # spectrogram frames the network reads
    fmin: Number = Field(default=0.0, ge=0)  # lowest filter corner, Hz
    fmax: Number | None = Field(default=None, gt=0)  # highest filter corner, Hz (None: rate / 2)

    @model_validator(mode="after")
    def _check_band(self) -> AudioSettings:
        nyquist = self.sample_rate / 2
        if self.fmax is not None and self.fmax > nyquist:
            raise ValueError(f"fmax {self.fmax:g} Hz is above half the sample rate ({nyquist:g})")
        if self.fmin >= self.top:
            raise ValueError(f"fmin {self.fmin:g} Hz must be below fmax ({self.top:g} Hz)")
        return self

    @property
    def top(self) -> float:
        """The highest filter corner, Hz."""
        return self.sample_rate / 2 if self.fmax is None else self.fmax

    @property
    def n_fft(self) -> int:
        """FFT size: the window zero-padded to the next power of two."""
        return 1 << (self.window - 1).bit_length()

    @property
    def samples(self) -> int:
        """Waveform samples the ``frames`` spectrogram frames cover."""
        return (self.frames - 1) * self.hop + self.window

    @property
    def duration(self) -> float:
        """Seconds of sound the spectrogram covers."""
        return self.samples / self.sample_rate


# ---------------------------------------------------------------- spectrogram

_SLANEY_LINEAR = 200.0 / 3  # Hz per mel below the break
_SLANEY_BREAK = 1000.0  # Hz where the scale turns logarithmic
_SLANEY_LOG_STEP = math.log(6.4) / 27  # natural-log frequency step per mel above it


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Frequencies (Hz) on the Slaney mel scale: linear to 1 kHz (15 mels), log above."""
    f = np.asarray(hz, dtype=np.float64)
    linear = f / _SLANEY_LINEAR
    top = _SLANEY_BREAK / _SLANEY_LINEAR
    logarithmic = top + np.log(np.maximum(f, _SLANEY_BREAK) / _SLANEY_BREAK) / _SLANEY_LOG_STEP
    return np.where(f < _SLANEY_BREAK, linear, logarithmic)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """The inverse of :func:`hz_to_mel`."""
    m = np.asarray(mel, dtype=np.float64)
    top = _SLANEY_BREAK / _SLANEY_LINEAR
    linear = m * _SLANEY_LINEAR
    logarithmic = _SLANEY_BREAK * np.exp(_SLANEY_LOG_STEP * (np.maximum(m, top) - top))
    return np.where(m < top, linear, logarithmic)


def mel_filterbank(settings: AudioSettings) -> np.ndarray:
    """Triangular filters, ``(n_fft // 2 + 1, mels)`` float32: column ``m`` weighs the FFT
    bins of mel bin ``m``, rising from 0 at its lower corner to 1 at its centre and back
    to 0 at its upper corner (the centres of its neighbours)."""
    return _filters(settings).numpy().copy()


@functools.lru_cache(maxsize=8)
def _filters(settings: AudioSettings) -> torch.Tensor:
    """:func:`mel_filterbank`, kept for the spectrograms of every clip (settings are
    frozen, hence hashable)."""
    corners = mel_to_hz(
        np.linspace(hz_to_mel(settings.fmin), hz_to_mel(settings.top), settings.mels + 2)
    )
    bins = np.arange(settings.n_fft // 2 + 1) * settings.sample_rate / settings.n_fft
    low, centre, high = corners[:-2, None], corners[1:-1, None], corners[2:, None]
    rising = (bins[None, :] - low) / (centre - low)
    falling = (high - bins[None, :]) / (high - centre)
    weights = np.clip(np.minimum(rising, falling), 0.0, None)
    return torch.from_numpy(np.ascontiguousarray(weights.T, dtype=np.float32))


@functools.lru_cache(maxsize=8)
def _window(window: int, n_fft: int) -> torch.Tensor:
    """A periodic Hann window of ``window`` samples at the start of ``n_fft``."""
    padded = torch.zeros(n_fft)
    padded[:window] = torch.hann_window(window, periodic=True)
    return padded


def log_mel(waveform: np.ndarray | torch.Tensor, settings: AudioSettings) -> torch.Tensor:
    """The log-mel spectrogram of a mono waveform at ``settings.sample_rate``.

    Args:
        waveform: samples, ``(N,)``; its first sample is the clip's start.
        settings: window, hop, bins and frames.

    Returns:
        ``(1, frames, mels)`` float32: ``log(mel power + LOG_EPS)``; frames past the end
        of the waveform are silence.
    """
    x = torch.as_tensor(waveform, dtype=torch.float32).reshape(-1)[: settings.samples]
    n_fft = settings.n_fft
    # NOTE: zeros to a whole number of frames, plus the FFT padding after the last window
    x = torch.nn.functional.pad(x, (0, settings.samples - len(x) + n_fft - settings.window))
    window = _window(settings.window, n_fft)
    spectrum = torch.stft(
        x,
        n_fft,
        hop_length=settings.hop,
        win_length=n_fft,
        window=window,
        center=False,
        return_complex=True,
    )[:, : settings.frames]
    power = spectrum.abs().square() * (4.0 / float(window.sum()) ** 2)
    mel = power.T @ _filters(settings)  # (frames, mels)
    return torch.log(mel + LOG_EPS).unsqueeze(0)


def clip_log_mel(waveform: np.ndarray | torch.Tensor, settings: AudioSettings) -> torch.Tensor:
    """The log-mel spectrogram of a clip's sound, spanning the clip exactly.

    ``waveform`` is the sound from the clip's first frame to the end of its last: its
    spectrogram (``settings``' window and hop) has the frames that span holds, and its time
    axis is resampled linearly to ``settings.frames``. Frame ``k`` of the network's input
    is then always at ``k / frames`` of the clip, whatever the clip's frames, stride and
    frame rate, so a fusion that maps audio time onto the clip's frames lines them up.

    Returns:
        ``(1, frames, mels)`` float32, as :func:`log_mel`.
    """
    x = torch.as_tensor(waveform, dtype=torch.float32).reshape(-1)
    natural = max(1, 1 + (len(x) - settings.window) // settings.hop) if len(x) else 1
    spectrogram = log_mel(x, settings.model_copy(update={"frames": natural}))
    if natural == settings.frames:
        return spectrogram
    stretched = torch.nn.functional.interpolate(
        spectrogram.transpose(1, 2), size=settings.frames, mode="linear", align_corners=False
    )
    return stretched.transpose(1, 2).contiguous()


def front_end_macs(settings: AudioSettings) -> int:
    """Multiply-adds of one clip's spectrogram, as the data loader computes it (outside the
    network, so not in its ``gflops``): per frame, the FFT of ``n_fft`` points (radix 2:
    ``n_fft / 2 * log2(n_fft)`` complex products of 4 real multiply-adds), the window and
    the power spectrum (one multiply-add a value each) and the mel projection (a
    ``(n_fft / 2 + 1) x mels`` matrix product). Resampling and decoding are not counted.
    """
    n = settings.n_fft
    bins = n // 2 + 1
    per_frame = 2 * n * (n.bit_length() - 1) + settings.window + 2 * bins + bins * settings.mels
    return settings.frames * per_frame


# ---------------------------------------------------------------- decoding


def has_audio(path: str | Path) -> bool:
    """Whether a video file has an audio stream (headers only).

    Raises:
        DecodeError: the file cannot be opened.
    """
    try:
        with av.open(str(path)) as container:
            return len(container.streams.audio) > 0
    except _READ_ERRORS as exc:
        raise DecodeError(f"{path}: cannot read ({exc})") from None


def _origin(container: av.container.InputContainer) -> float:
    """Seconds on the container's timeline of the video clock's zero (its first frame)."""
    if container.streams.video:
        stream = container.streams.video[0]
        if stream.start_time is not None and stream.time_base is not None:
            return float(stream.start_time * stream.time_base)
    return 0.0


def _decode(
    container: av.container.InputContainer, sample_rate: int, start: float, end: float | None
) -> np.ndarray:
    """Mono float32 samples at ``sample_rate`` of ``[start, end)`` on the video's clock
    (``end=None``: to the end of the stream); zeros where the stream has no sound."""
    stream = container.streams.audio[0]
    stream.codec_context.thread_count = 1  # NOTE: loader workers are the parallelism
    origin = _origin(container)
    base = stream.time_base or Fraction(1, sample_rate)
    if start > SEEK_AFTER:
        target = int((origin + start - SEEK_MARGIN) / base)
        container.seek(target, stream=stream, backward=True)
    # NOTE: the input's layout is kept and its channels averaged: libswresample's own
    # downmix to mono adds them at -3 dB, 1.41 times the level of identical channels
    resampler = av.AudioResampler(format="fltp", rate=sample_rate)
    chunks: list[np.ndarray] = []
    first: float | None = None  # time of the first resampled sample, on the video's clock
    count = 0
    for frame in container.decode(stream):
        for out in resampler.resample(frame):
            if first is None:
                first = _frame_time(out, frame) - origin
            chunks.append(out.to_ndarray().mean(axis=0, dtype=np.float32))
            count += out.samples
        if end is not None and first is not None and first + count / sample_rate >= end:
            break
    else:
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().mean(axis=0, dtype=np.float32))
    decoded = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return _place(decoded, first or 0.0, sample_rate, start, end)


def _frame_time(out: av.AudioFrame, source: av.AudioFrame) -> float:
    """Seconds on the container's timeline of a resampled frame's first sample."""
    for frame in (out, source):
        if frame.pts is not None and frame.time_base is not None:
            return float(frame.pts * frame.time_base)
    return 0.0


def _place(
    samples: np.ndarray, first: float, sample_rate: int, start: float, end: float | None
) -> np.ndarray:
    """``samples`` (beginning at time ``first``) cut to ``[start, end)``, zeros where
    they do not reach."""
    offset = round((start - first) * sample_rate)  # index into samples of the window's start
    count = len(samples) - offset if end is None else round((end - start) * sample_rate)
    out = np.zeros(max(count, 0), np.float32)
    low, high = max(offset, 0), min(offset + len(out), len(samples))
    if high > low:
        out[low - offset : high - offset] = samples[low:high]
    return out


def _load_cached(target: Path) -> np.ndarray | None:
    """The cached int16 track, or None when the file is missing or not a valid one."""
    if not target.is_file():
        return None
    try:
        cached = np.load(target, mmap_mode="r")
    except (OSError, ValueError, EOFError):
        return None
    if cached.dtype != np.int16 or cached.ndim != 1:
        return None
    return cached


def _quantise(waveform: np.ndarray) -> np.ndarray:
    return np.round(np.clip(waveform, -1.0, 1.0) * _INT16_SCALE).astype(np.int16)


def _track(path: Path, sample_rate: int, cache_dir: Path) -> np.ndarray | None:
    """The whole track on the video's clock as int16 (from the cache, else decoded and
    cached; a corrupt cache file is decoded again); None without an audio stream."""
    target = cache_file(path, "audio", sample_rate, cache_dir=cache_dir)
    cached = _load_cached(target)
    if cached is not None:
        return cached
    track = _decode_file(path, sample_rate, 0.0, None)
    if track is None:
        return None
    quantised = _quantise(track)
    # NOTE: a cache that cannot be written only costs decoding again next time
    with contextlib.suppress(OSError):
        save_array(quantised, target)
    return quantised


def _decode_file(
    path: Path, sample_rate: int, start: float, end: float | None
) -> np.ndarray | None:
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            return _decode(container, sample_rate, start, end)
    except _READ_ERRORS as exc:
        raise DecodeError(f"{path}: cannot decode its audio ({exc})") from None


def load_audio(
    path: str | Path,
    *,
    sample_rate: int,
    start: float,
    duration: float,
    cache_dir: Path | None = None,
) -> np.ndarray | None:
    """The sound of a video file over ``[start, start + duration)`` seconds.

    Any input rate is resampled (libswresample) to ``sample_rate``, and the channels of
    any layout are averaged into one. With ``cache_dir`` the whole track is decoded once
    and kept there (keyed by the file's path, size, modification time and the rate) as
    int16; later calls slice it, so with a cache every window is on the int16 grid, the
    first as the later ones.

    Args:
        path: the video file.
        sample_rate: Hz of the returned samples.
        start: seconds from the video's first frame.
        duration: seconds; the result has ``round(duration * sample_rate)`` samples.
        cache_dir: where decoded tracks are kept (None: decode the window only).

    Returns:
        ``(round(duration * sample_rate),)`` float32 in [-1, 1], zeros where the stream
        has no sound; None when the file has no audio stream.

    Raises:
        DecodeError: the file or its audio stream cannot be read.
    """
    file = Path(path)
    if cache_dir is None:
        return _decode_file(file, sample_rate, start, start + duration)
    try:
        track = _track(file, sample_rate, cache_dir)
    except OSError as exc:
        raise DecodeError(f"{path}: cannot read ({exc})") from None
    if track is None:
        return None
    window = _place(track, 0.0, sample_rate, start, start + duration)
    return window.astype(np.float32) / _INT16_SCALE


def probe_audio(paths: list[str], *, cache_file: Path, threads: int = 8) -> list[bool | None]:
    """Whether each video file has an audio stream (None: it cannot be read).

    Answers are kept in the JSON file ``cache_file`` (keyed by path, size and
    modification time), so that a large data set is probed once.
    """
    try:
        known: dict[str, bool] = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        known = {}

    def probe(path: str) -> tuple[str | None, bool | None]:
        try:
            key = file_identity(Path(path))
        except OSError:
            return None, None
        if isinstance(known.get(key), bool):
            return key, known[key]
        try:
            return key, has_audio(path)
        except DecodeError:
            return key, None

    with ThreadPoolExecutor(threads) as pool:
        answers = list(pool.map(probe, paths))
    fresh = {k: v for k, v in answers if k is not None and v is not None and k not in known}
    if fresh:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({**known, **fresh}))
            os.replace(tmp, cache_file)
        except OSError:
            pass  # NOTE: a read-only cache only costs a new probe next time
    return [value for _, value in answers]
