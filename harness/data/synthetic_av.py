"""The built-in audio-visual benchmark: the synthetic videos with a sound track, in classes
that neither the picture nor the sound tells apart alone.

Each class is a motion of :mod:`harness.data.synthetic` (shown as there) and a sound.
Classes come in pairs, ``(2k, 2k + 1)``, of two kinds, alternating:

    sound pairs    one motion, two sounds     (move_right, low_tone) (move_right, high_tone)
    motion pairs   two motions, one sound     (approach, low_noise)  (rotate_cw, low_noise)

    pair  kind     classes (motion + sound)
    0     sound    move_right + low_tone       move_right + high_tone
    1     motion   approach + low_noise        rotate_cw + low_noise
    2     sound    appear + up_chirp           appear + down_chirp
    3     motion   move_down + clicks          orbit_cw + clicks
    4     sound    slow + warble               slow + chord
    5     motion   diagonal_down_right + high_noise    recede + high_noise
    6     sound    disappear + hum             disappear + beeps
    7     motion   move_left + mid_noise       rotate_ccw + mid_noise

Every motion and every sound belongs to one pair only, so either stream names the pair;
within a pair only one stream differs. The two videos of a pair (``2j``, ``2j + 1``) are
rendered from one random stream, as the visual benchmark's time-reversal pairs are: the
frames of a sound pair and the sound of a motion pair are *identical*. With ``2P`` classes
(an even number of pairs, as every preset has), a video-only model cannot beat 0.75 and
an audio-only one neither; a model that fuses them can reach 1.0. The first eight classes
show six motions, no two of them time reversals of each other, which a small 3D CNN tells
apart at 8x16x16; from the ninth class on, some motions are time reversals of earlier ones
(recede, disappear, move_left, rotate_ccw), which needs temporal order, as in the visual
benchmark.

Named ``synthetic-av[:ci|tiny|small|large]``, or ``sound: true`` in a synthetic data
spec; its sizes are the visual benchmark's.

Sound: a video's sound is a function of time ``t`` in seconds, defined at any instant,
so it is rendered at any sample rate over any span, and a clip's sound is exactly the
slice of the video's. Frame ``f`` is shown at ``t = f / fps`` (the spec's ``fps``). The
sound is

    gain * envelope(u) * source(t) + hiss * noise(t)

``source`` is the class's sound (a registered :func:`register_sound` function: tones, a
chord, a hum, beeps, chirps, clicks, band-limited noise; pitches in Hz, jittered a few
percent per video, their energy mostly below 3.6 kHz, so 8 kHz sampling suffices).
``envelope`` is the rhythm, tied to the motion's clock ``u = t * fps / (video_frames - 1)``
(the normalised time the motion is drawn at): 3 to 6 beats over the motion at a random
phase, so a beat falls at the same point of the motion at any frame rate. Noise is
Gaussian values on a lattice of points in time, linearly interpolated, each block of the
lattice drawn from a seed of its own, so that any span of it is reproduced exactly.
Sound before ``t = 0`` is silence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from harness.data.synthetic import SPLITS, SYNTHETIC_CLASSES, SyntheticClass, SyntheticVideos
from harness.registry import Registry

if TYPE_CHECKING:
    from harness.data.spec import SyntheticDataSpec

__all__ = [
    "AUDIO_VISUAL_CLASSES",
    "AudioVisualClass",
    "SyntheticAVVideos",
    "audio_visual_pairs",
    "create_synthetic_videos",
    "list_audio_visual_classes",
    "list_sounds",
    "register_sound",
]

AUDIO_STREAM = 2  # last part of a video's sound's random key (the frames' noise uses 1)
BEATS = (3, 6)  # beats over the motion, least and most
FLOOR = 0.3  # the envelope's lowest level: the sound never stops between beats
GAIN = (0.25, 0.45)  # amplitude of the class's sound, full scale 1
HISS_RATE = 8000.0  # lattice points per second of the background noise
_BLOCK = 4096  # lattice points drawn from one seed


@dataclass(frozen=True)
class AudioVisualClass:
    """One class of the audio-visual benchmark: a motion and a sound."""

    name: str
    visual: str  # a class of harness.data.synthetic.SYNTHETIC_CLASSES: the motion shown
    sound: str  # a registered sound: what is heard


def _av(visual: str, sound: str) -> AudioVisualClass:
    return AudioVisualClass(f"{visual}+{sound}", visual, sound)


AUDIO_VISUAL_CLASSES: tuple[AudioVisualClass, ...] = (
    _av("move_right", "low_tone"),  # sound pair
    _av("move_right", "high_tone"),
    _av("approach", "low_noise"),  # motion pair
    _av("rotate_cw", "low_noise"),
    _av("appear", "up_chirp"),  # sound pair
    _av("appear", "down_chirp"),
    _av("move_down", "clicks"),  # motion pair
    _av("orbit_cw", "clicks"),
    _av("slow", "warble"),  # sound pair
    _av("slow", "chord"),
    _av("diagonal_down_right", "high_noise"),  # motion pair
    _av("recede", "high_noise"),
    _av("disappear", "hum"),  # sound pair
    _av("disappear", "beeps"),
    _av("move_left", "mid_noise"),  # motion pair
    _av("rotate_ccw", "mid_noise"),
)
_VISUAL = {c.name: c for c in SYNTHETIC_CLASSES}


def list_audio_visual_classes(classes: int = len(AUDIO_VISUAL_CLASSES)) -> list[str]:
    """Names of the first ``classes`` classes (``MOTION+SOUND``)."""
    return [c.name for c in AUDIO_VISUAL_CLASSES[:classes]]


def audio_visual_pairs(classes: int = len(AUDIO_VISUAL_CLASSES)) -> list[tuple[int, int]]:
    """The pairs ``(2k, 2k + 1)`` among the first ``classes`` classes."""
    return [(i, i + 1) for i in range(0, classes - 1, 2)]


# ---------------------------------------------------------------- sounds

Sound = Callable[[np.random.Generator, np.ndarray], np.ndarray]  # (rng, t seconds) -> samples
SOUNDS: Registry[Sound] = Registry("sound")


def register_sound(name: str) -> Callable[[Sound], Sound]:
    """Decorator registering a sound ``fn(rng, t) -> samples`` under ``name``: ``t`` is
    float64 seconds, the result about unit amplitude; its random draws must not depend
    on ``t``, so that every span of a video's sound agrees with every other."""
    return SOUNDS.register(name)


def list_sounds() -> list[str]:
    """Registered sound names, sorted."""
    return SOUNDS.names()


def _jitter(rng: np.random.Generator, hz: float) -> float:
    return hz * rng.uniform(0.96, 1.04)


def _sine(hz: float, t: np.ndarray) -> np.ndarray:
    return np.sin(2 * math.pi * hz * t)


def value_noise(seed: int, t: np.ndarray, rate: float) -> np.ndarray:
    """Gaussian values on a lattice of ``rate`` points per second, linearly interpolated
    (a continuous, reproducible noise whose spectrum falls off above ``rate / 2``)."""
    if t.size == 0:
        return np.zeros(0)
    x = np.maximum(t, 0.0) * rate
    k = np.floor(x).astype(np.int64)
    first, last = int(k.min()) // _BLOCK, (int(k.max()) + 1) // _BLOCK
    blocks = [
        np.random.default_rng([seed, b]).standard_normal(_BLOCK) for b in range(first, last + 1)
    ]
    lattice = np.concatenate(blocks)
    k -= first * _BLOCK
    low, high = lattice[k], lattice[k + 1]
    return low + (x - np.floor(x)) * (high - low)


def _band_noise(rng: np.random.Generator, t: np.ndarray, centre: float, width: float) -> np.ndarray:
    """Noise in about ``centre +- width / 2`` Hz (``centre`` 0: below ``width / 2``)."""
    seed = int(rng.integers(2**62))
    noise = value_noise(seed, t, width)
    return noise if centre == 0 else noise * _sine(centre, t) * math.sqrt(2)


@register_sound("low_tone")
def low_tone(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """A 300 Hz tone with a weak octave."""
    hz = _jitter(rng, 300.0)
    return _sine(hz, t) + 0.3 * _sine(2 * hz, t)


@register_sound("high_tone")
def high_tone(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """A pure 2 kHz tone."""
    return _sine(_jitter(rng, 2000.0), t)


@register_sound("chord")
def chord(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """A major triad on 523 Hz (C, E, G)."""
    root = _jitter(rng, 523.25)
    return np.sum([_sine(root * ratio, t) for ratio in (1.0, 1.26, 1.498)], axis=0) / 2.0


@register_sound("hum")
def hum(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """A 120 Hz sawtooth-like buzz: its first 15 harmonics at 1 / k."""
    hz = _jitter(rng, 120.0)
    return np.sum([_sine(k * hz, t) / k for k in range(1, 16)], axis=0) / 1.5


@register_sound("beeps")
def beeps(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """A 1.4 kHz tone switched on and off 8 times a second (smooth edges)."""
    hz, rate = _jitter(rng, 1400.0), _jitter(rng, 8.0)
    gate = np.clip(3.0 * _sine(rate, t) + 0.5, 0.0, 1.0)
    return gate * _sine(hz, t)


@register_sound("warble")
def warble(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """A 1 kHz tone whose pitch swings +-200 Hz 6 times a second."""
    hz, rate = _jitter(rng, 1000.0), _jitter(rng, 6.0)
    return np.sin(2 * math.pi * hz * t + (200.0 / rate) * np.sin(2 * math.pi * rate * t))


def _sweeps(rng: np.random.Generator, t: np.ndarray, f0: float, f1: float) -> np.ndarray:
    """Exponential sweeps from ``f0`` to ``f1`` Hz, repeated every 0.2-0.3 s (the phase of
    a sweep is the integral of its frequency, in closed form)."""
    period = rng.uniform(0.2, 0.3)
    scale = _jitter(rng, 1.0)
    f0, f1 = f0 * scale, f1 * scale
    tau = np.mod(t, period)
    growth = math.log(f1 / f0)
    phase = f0 * period * (np.exp(growth * tau / period) - 1.0) / growth
    return np.sin(2 * math.pi * phase)


@register_sound("up_chirp")
def up_chirp(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Rising sweeps, 400 Hz to 1.6 kHz."""
    return _sweeps(rng, t, 400.0, 1600.0)


@register_sound("down_chirp")
def down_chirp(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Falling sweeps, 1.6 kHz to 400 Hz."""
    return _sweeps(rng, t, 1600.0, 400.0)


@register_sound("clicks")
def clicks(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """14 clicks a second: 2.5 kHz pings decaying in 4 ms."""
    rate, hz = _jitter(rng, 14.0), _jitter(rng, 2500.0)
    since = np.mod(t, 1.0 / rate)
    return 2.0 * np.exp(-since / 0.004) * _sine(hz, since)


@register_sound("low_noise")
def low_noise(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Rumble: noise below about 300 Hz."""
    return _band_noise(rng, t, 0.0, 600.0)


@register_sound("mid_noise")
def mid_noise(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Noise around 1.2 kHz, about 500 Hz wide."""
    return _band_noise(rng, t, _jitter(rng, 1200.0), 500.0)


@register_sound("high_noise")
def high_noise(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Hiss around 3 kHz, about 800 Hz wide."""
    return _band_noise(rng, t, _jitter(rng, 3000.0), 800.0)


# ---------------------------------------------------------------- videos


class SyntheticAVVideos(SyntheticVideos):
    """The videos of one split of the audio-visual benchmark: frames and sound on demand.

    Args:
        spec: the data-set spec (``sound: true``).
        split: ``"train"`` or ``"val"``.
    """

    def __init__(self, spec: SyntheticDataSpec, split: str) -> None:
        assert spec.sound, "the audio-visual benchmark's spec has sound: true"
        super().__init__(spec, split)
        self.classes = list_audio_visual_classes(spec.classes)

    def visual_class(self, index: int) -> SyntheticClass:
        """The motion video ``index`` shows."""
        return _VISUAL[AUDIO_VISUAL_CLASSES[self.label(index)].visual]

    @property
    def duration(self) -> float:
        """Seconds of one video: its frames at the spec's ``fps``."""
        return self.spec.video_frames / self.spec.fps

    def frame_time(self, frame: float) -> float:
        """When source frame ``frame`` is shown, in seconds."""
        return frame / self.spec.fps

    def audio(self, index: int, *, start: float, duration: float, sample_rate: int) -> np.ndarray:
        """The sound of video ``index`` over ``[start, start + duration)`` seconds.

        Returns:
            ``(round(duration * sample_rate),)`` float32 in [-1, 1]: sample ``n`` is the
            sound at ``(round(start * sample_rate) + n) / sample_rate`` seconds, so that
            windows on one sample grid are slices of one another exactly.
        """
        first, count = round(start * sample_rate), round(duration * sample_rate)
        t = (first + np.arange(max(count, 0), dtype=np.float64)) / sample_rate
        return self.sound(index, t)

    def sound(self, index: int, t: np.ndarray) -> np.ndarray:
        """The sound of video ``index`` at the instants ``t`` (seconds), float32."""
        spec = self.spec
        # NOTE: keyed like the frames, by the pair (index // 2): a motion pair's sound is one
        rng = np.random.default_rng([spec.seed, SPLITS[self.split], index // 2, AUDIO_STREAM])
        beats, phase = int(rng.integers(BEATS[0], BEATS[1] + 1)), rng.uniform()
        gain, hiss_seed = rng.uniform(*GAIN), int(rng.integers(2**62))
        source = SOUNDS.get(AUDIO_VISUAL_CLASSES[self.label(index)].sound)(rng, t)
        u = t * spec.fps / max(spec.video_frames - 1, 1)
        pulse = 0.5 + 0.5 * np.cos(2 * math.pi * (beats * u - phase))
        envelope = FLOOR + (1 - FLOOR) * pulse * pulse
        wave = gain * envelope * source + spec.hiss * value_noise(hiss_seed, t, HISS_RATE)
        wave[t < 0] = 0.0
        return np.clip(wave, -1.0, 1.0).astype(np.float32)


def create_synthetic_videos(spec: SyntheticDataSpec, split: str) -> SyntheticVideos:
    """The videos of ``split`` of the built-in benchmark ``spec`` names (with their sound
    when the spec has ``sound: true``)."""
    return SyntheticAVVideos(spec, split) if spec.sound else SyntheticVideos(spec, split)
