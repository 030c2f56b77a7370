"""The built-in benchmark: procedurally rendered videos that need time to be classified.

Each video shows one main object (disc, square, triangle, "pac-man" or L shape) on a
textured background, with distractor objects drifting across it and Gaussian noise.
The class is the main object's motion. Most classes come in **time-reversal pairs**:

    move_right / move_left      approach / recede        appear / disappear
    rotate_cw / rotate_ccw      move_down / move_up      orbit_cw / orbit_ccw
    diagonal_down_right / diagonal_up_left               (and fast / slow: speed only)

The second class of a pair is the first one played backwards, with the same distribution
of everything else, so the *set* of frames of a clip has the same distribution in both
classes. A model that averages per-frame features (C2D) is invariant to frame order and
therefore cannot do better than chance within a pair; a temporal model can.

A video is a continuous function of normalised time ``u`` in [0, 1] over ``video_frames``
source frames; a clip renders only the frames its sampler picks, directly at the crop
size the model asks for. So the spec's frames and stride decide how much of the motion a
clip sees, and the stride scales the motion per frame. Everything follows from
``(seed, split, index)``; the class of video ``index`` is ``index % classes``, and the
two members of a pair are consecutive videos rendered from one random stream, so that
video ``2j + 1`` is exactly video ``2j`` played backwards (a matched pair).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.data._io import save_array
from harness.registry import Registry

if TYPE_CHECKING:
    from harness.data.spec import SyntheticDataSpec

__all__ = [
    "SYNTHETIC_CLASSES",
    "Pose",
    "SyntheticClass",
    "SyntheticVideos",
    "list_motions",
    "list_synthetic_classes",
    "register_motion",
    "reversal_pairs",
]

SPLITS = {"train": 0, "val": 1}
SHAPES = ("disc", "square", "triangle", "pacman", "ell")
ASYMMETRIC = ("pacman", "ell")  # shapes whose rotation is visible


@dataclass(frozen=True)
class SyntheticClass:
    """One class of the benchmark: a motion, possibly played backwards."""

    name: str
    motion: str  # a registered motion
    reverse: bool = False  # the time-reversal partner of the class listed before it
    params: tuple[tuple[str, float], ...] = ()  # keyword arguments of the motion


SYNTHETIC_CLASSES: tuple[SyntheticClass, ...] = (
    SyntheticClass("move_right", "translate", params=(("angle", 0.0),)),
    SyntheticClass("move_left", "translate", True, (("angle", 0.0),)),
    SyntheticClass("approach", "scale"),
    SyntheticClass("recede", "scale", True),
    SyntheticClass("appear", "fade"),
    SyntheticClass("disappear", "fade", True),
    SyntheticClass("rotate_cw", "spin"),
    SyntheticClass("rotate_ccw", "spin", True),
    SyntheticClass("move_down", "translate", params=(("angle", 90.0),)),
    SyntheticClass("move_up", "translate", True, (("angle", 90.0),)),
    SyntheticClass("fast", "drift", params=(("low", 0.45), ("high", 0.65))),
    SyntheticClass("slow", "drift", params=(("low", 0.06), ("high", 0.14))),
    SyntheticClass("orbit_cw", "orbit"),
    SyntheticClass("orbit_ccw", "orbit", True),
    SyntheticClass("diagonal_down_right", "translate", params=(("angle", 45.0),)),
    SyntheticClass("diagonal_up_left", "translate", True, (("angle", 45.0),)),
)


def list_synthetic_classes(classes: int = len(SYNTHETIC_CLASSES)) -> list[str]:
    """Names of the first ``classes`` classes."""
    return [c.name for c in SYNTHETIC_CLASSES[:classes]]


def reversal_pairs(classes: int = len(SYNTHETIC_CLASSES)) -> list[tuple[int, int]]:
    """(class, its time reversal) among the first ``classes`` classes."""
    return [
        (i - 1, i)
        for i in range(1, classes)
        if SYNTHETIC_CLASSES[i].reverse
        and SYNTHETIC_CLASSES[i - 1].motion == SYNTHETIC_CLASSES[i].motion
    ]


@dataclass(frozen=True)
class Pose:
    """The main object over time: one value per rendered frame (normalised units)."""

    cx: np.ndarray  # centre, in [0, 1] of the frame width
    cy: np.ndarray  # centre, in [0, 1] of the frame height
    radius: np.ndarray  # size, as a fraction of the frame side
    angle: np.ndarray  # orientation, radians (positive: clockwise on screen)
    alpha: np.ndarray  # opacity in [0, 1]
    shape: str = "disc"


Motion = Callable[..., Pose]  # (rng, u, **params) -> Pose
MOTIONS: Registry[Motion] = Registry("motion")


def register_motion(name: str) -> Callable[[Motion], Motion]:
    """Decorator registering a motion ``fn(rng, u, **params) -> Pose`` under ``name``."""
    return MOTIONS.register(name)


def list_motions() -> list[str]:
    """Registered motion names, sorted."""
    return MOTIONS.names()


def _pose(u: np.ndarray, **values: Any) -> Pose:
    """A Pose whose constant fields are broadcast over the frames ``u``."""
    shape = values.pop("shape")
    arrays = {k: np.broadcast_to(np.asarray(v, np.float32), u.shape) for k, v in values.items()}
    return Pose(shape=shape, **arrays)


def _linear(rng: np.random.Generator, u: np.ndarray, angle: float, distance: float) -> Pose:
    radius = rng.uniform(0.09, 0.16)
    dx, dy = math.cos(angle) * distance, math.sin(angle) * distance
    mx = rng.uniform(radius + abs(dx) / 2, 1 - radius - abs(dx) / 2)
    my = rng.uniform(radius + abs(dy) / 2, 1 - radius - abs(dy) / 2)
    return _pose(
        u,
        cx=mx + (u - 0.5) * dx,
        cy=my + (u - 0.5) * dy,
        radius=radius,
        angle=rng.uniform(0, 2 * math.pi),
        alpha=1.0,
        shape=SHAPES[rng.integers(len(SHAPES))],
    )


@register_motion("translate")
def translate(rng: np.random.Generator, u: np.ndarray, *, angle: float) -> Pose:
    """Straight motion at ``angle`` degrees (0: right, 90: down) over 35-60% of the frame."""
    return _linear(rng, u, math.radians(angle), rng.uniform(0.35, 0.6))


@register_motion("drift")
def drift(rng: np.random.Generator, u: np.ndarray, *, low: float, high: float) -> Pose:
    """Straight motion in a random direction over ``low``-``high`` of the frame."""
    distance = rng.uniform(low, high)
    return _linear(rng, u, rng.uniform(0, 2 * math.pi), distance)


@register_motion("scale")
def scale(rng: np.random.Generator, u: np.ndarray) -> Pose:
    """Growing 2.2-3x in size (approaching the camera)."""
    r0, growth = rng.uniform(0.05, 0.08), rng.uniform(2.2, 3.0)
    rmax = r0 * growth
    return _pose(
        u,
        cx=rng.uniform(rmax, 1 - rmax),
        cy=rng.uniform(rmax, 1 - rmax),
        radius=r0 * growth**u,
        angle=rng.uniform(0, 2 * math.pi),
        alpha=1.0,
        shape=SHAPES[rng.integers(len(SHAPES))],
    )


@register_motion("fade")
def fade(rng: np.random.Generator, u: np.ndarray) -> Pose:
    """Fading in from (nearly) transparent to (nearly) opaque."""
    radius = rng.uniform(0.1, 0.18)
    a0, a1 = rng.uniform(0.0, 0.15), rng.uniform(0.85, 1.0)
    return _pose(
        u,
        cx=rng.uniform(radius, 1 - radius),
        cy=rng.uniform(radius, 1 - radius),
        radius=radius,
        angle=rng.uniform(0, 2 * math.pi),
        alpha=a0 + (a1 - a0) * u,
        shape=SHAPES[rng.integers(len(SHAPES))],
    )


@register_motion("spin")
def spin(rng: np.random.Generator, u: np.ndarray) -> Pose:
    """An asymmetric shape turning clockwise by 90-145 degrees in place."""
    radius = rng.uniform(0.16, 0.24)
    turn = rng.uniform(0.5, 0.8) * math.pi
    return _pose(
        u,
        cx=rng.uniform(radius, 1 - radius),
        cy=rng.uniform(radius, 1 - radius),
        radius=radius,
        angle=rng.uniform(0, 2 * math.pi) + turn * u,
        alpha=1.0,
        shape=ASYMMETRIC[rng.integers(len(ASYMMETRIC))],
    )


@register_motion("orbit")
def orbit(rng: np.random.Generator, u: np.ndarray) -> Pose:
    """Circling clockwise around a point by 110-180 degrees."""
    centre = rng.uniform(0.38, 0.62, size=2)
    ring, radius = rng.uniform(0.15, 0.24), rng.uniform(0.07, 0.11)
    phase = rng.uniform(0, 2 * math.pi) + rng.uniform(0.6, 1.0) * math.pi * u
    return _pose(
        u,
        cx=centre[0] + ring * np.cos(phase),
        cy=centre[1] + ring * np.sin(phase),
        radius=radius,
        angle=rng.uniform(0, 2 * math.pi),
        alpha=1.0,
        shape=SHAPES[rng.integers(len(SHAPES))],
    )


# ---------------------------------------------------------------- rendering


def _box(u: np.ndarray, v: np.ndarray, cx: float, cy: float, hx: float, hy: float) -> np.ndarray:
    return np.maximum(np.abs(u - cx) - hx, np.abs(v - cy) - hy)


def _distance(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Approximate signed distance to the shape's edge, in units of its radius."""
    if shape == "disc":
        return np.sqrt(u * u + v * v) - 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.8
    if shape == "triangle":
        edges = [
            math.cos(a) * u + math.sin(a) * v for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)
        ]
        return np.maximum(np.maximum(edges[0], edges[1]), edges[2]) - 0.5
    if shape == "pacman":
        rho = np.sqrt(u * u + v * v)
        return np.maximum(rho - 1.0, (0.75 - np.abs(np.arctan2(v, u))) * rho)
    return np.minimum(_box(u, v, -0.35, 0.0, 0.28, 0.95), _box(u, v, 0.2, 0.67, 0.8, 0.28))


def _extent(centre: np.ndarray, reach: np.ndarray, size: int) -> tuple[int, int]:
    """Pixel range [low, high) that the object covers over all frames along one axis."""
    low = int(np.floor(float((centre - reach).min()) * size)) - 1
    high = int(np.ceil(float((centre + reach).max()) * size)) + 1
    return max(low, 0), min(max(high, 0), size)


def _mask(pose: Pose, size: int) -> tuple[np.ndarray, slice, slice]:
    """Anti-aliased coverage times alpha, ``(T, h, w)`` float32, on the rows and columns
    the object reaches in any frame (rendering only there keeps the cost low)."""
    reach = pose.radius * 1.45  # every shape lies within 1.4 radii of its centre
    (y0, y1), (x0, x1) = _extent(pose.cy, reach, size), _extent(pose.cx, reach, size)
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    r = pose.radius[:, None, None]
    dx = (grid[None, None, x0:x1] - pose.cx[:, None, None]) / r
    dy = (grid[None, y0:y1, None] - pose.cy[:, None, None]) / r
    cos, sin = np.cos(pose.angle)[:, None, None], np.sin(pose.angle)[:, None, None]
    u, v = cos * dx + sin * dy, cos * dy - sin * dx
    coverage = np.clip(0.5 - _distance(pose.shape, u, v) * (r * size), 0.0, 1.0)
    return coverage * pose.alpha[:, None, None], slice(y0, y1), slice(x0, x1)


@functools.lru_cache(maxsize=16)
def _upsample_matrix(size: int, cells: int) -> np.ndarray:
    """Bilinear interpolation weights from ``cells`` grid points to ``size`` pixels."""
    position = (np.arange(size) + 0.5) / size * (cells - 1)
    low = np.clip(np.floor(position).astype(int), 0, cells - 2)
    frac = position - low
    weights = np.zeros((size, cells), np.float32)
    weights[np.arange(size), low] = 1 - frac
    weights[np.arange(size), low + 1] = frac
    return weights


def _luma(colour: np.ndarray) -> float:
    return float(colour @ np.array([0.299, 0.587, 0.114]))


def _contrasting(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A random colour at least 0.25 brighter or darker than ``background``."""
    colour = rng.uniform(0, 1, 3)
    bg = _luma(background)
    step = rng.uniform(0.25, 0.5)
    target = bg + step if bg + step <= 1 else bg - step
    return np.clip(colour - _luma(colour) + target, 0, 1).astype(np.float32)


@dataclass(frozen=True)
class _Scene:
    background: np.ndarray  # (size, size, 3) float32
    colour: np.ndarray  # main object's colour
    distractors: list[tuple[Pose, np.ndarray]]
    noise: float


def _distractors(
    rng: np.random.Generator, u: np.ndarray, count: int
) -> list[tuple[Pose, np.ndarray]]:
    out = []
    for _ in range(count):
        angle, distance = rng.uniform(0, 2 * math.pi), rng.uniform(0, 0.4)
        x0, y0 = rng.uniform(0.1, 0.9, size=2)
        pose = _pose(
            u,
            cx=x0 + (u - 0.5) * distance * math.cos(angle),
            cy=y0 + (u - 0.5) * distance * math.sin(angle),
            radius=rng.uniform(0.04, 0.08),
            angle=rng.uniform(0, 2 * math.pi),
            alpha=1.0,
            shape=SHAPES[rng.integers(3)],
        )
        out.append((pose, rng.uniform(0, 1, 3).astype(np.float32)))
    return out


def _render(scene: _Scene, pose: Pose, size: int, noise_keys: list[list[int]]) -> np.ndarray:
    """Composite the frames; frame t's noise is drawn from the seed ``noise_keys[t]``."""
    frames = np.broadcast_to(scene.background, (len(pose.cx), size, size, 3)).copy()
    for other, colour in [*scene.distractors, (pose, scene.colour)]:
        cover, rows, cols = _mask(other, size)
        region = frames[:, rows, cols]
        region += cover[..., None] * (colour - region)
    if scene.noise > 0:
        for frame, key in zip(frames, noise_keys, strict=True):
            noise = np.random.default_rng(key).standard_normal(frame.shape, dtype=np.float32)
            frame += noise * scene.noise
    frames *= 255.0
    frames += 0.5
    return np.clip(frames, 0, 255, out=frames).astype(np.uint8)


class SyntheticVideos:
    """The videos of one split of the benchmark, rendered on demand.

    Args:
        spec: the data-set spec.
        split: ``"train"`` or ``"val"``.
    """

    def __init__(self, spec: SyntheticDataSpec, split: str) -> None:
        self.spec = spec
        self.split = split
        self.count = spec.train_clips if split == "train" else spec.val_clips
        self.classes = list_synthetic_classes(spec.classes)
        fields = spec.model_dump(exclude={"cache_dir", "train_sampler", "test_sampler"})
        self.key = hashlib.sha1(repr(sorted(fields.items())).encode()).hexdigest()[:16]

    def __len__(self) -> int:
        return self.count

    def label(self, index: int) -> int:
        """Class of video ``index``."""
        return index % self.spec.classes

    def visual_class(self, index: int) -> SyntheticClass:
        """The motion video ``index`` shows (the audio-visual benchmark maps its classes
        onto these)."""
        return SYNTHETIC_CLASSES[self.label(index)]

    def render(self, index: int, frames: np.ndarray, size: int) -> np.ndarray:
        """Frames ``frames`` (source frame numbers) of video ``index``, ``(T, S, S, 3)`` uint8."""
        if self.spec.cache_dir is not None:
            return self._cached(index, size)[np.clip(frames, 0, self.spec.video_frames - 1)]
        return self._render(index, np.asarray(frames), size)

    def _render(self, index: int, frames: np.ndarray, size: int) -> np.ndarray:
        # NOTE: both members of a time-reversal pair (labels 2k, 2k + 1: adjacent indices)
        # share one random stream, and noise is keyed by the frame of the forward motion, so
        # video 2j + 1 is exactly video 2j played backwards.
        spec = self.spec
        key = [spec.seed, SPLITS[self.split], index // 2]
        rng = np.random.default_rng(key)
        cls = self.visual_class(index)
        last = spec.video_frames - 1
        forward = np.clip(frames, 0, last)
        if cls.reverse:
            forward = last - forward
        u = forward.astype(np.float32) / last
        base = rng.uniform(0.1, 0.9, 3).astype(np.float32)
        texture = rng.normal(0, spec.texture, (5, 5, 3)).astype(np.float32)
        weights = _upsample_matrix(size, 5)
        background = base + (weights @ texture.transpose(2, 0, 1) @ weights.T).transpose(1, 2, 0)
        colour = _contrasting(rng, base)
        noise = rng.uniform(0, spec.noise)
        pose = MOTIONS.get(cls.motion)(rng, u, **dict(cls.params))
        pose = dataclasses.replace(pose, radius=pose.radius * spec.scale)
        others = _distractors(rng, u, int(rng.integers(0, spec.distractors + 1)))
        scene = _Scene(background=background, colour=colour, distractors=others, noise=noise)
        return _render(scene, pose, size, [[*key, 1, int(f)] for f in forward])

    def _cached(self, index: int, size: int) -> np.ndarray:
        assert self.spec.cache_dir is not None
        folder = Path(self.spec.cache_dir).expanduser() / "synthetic" / self.key
        target = folder / f"{self.split}-{size}-{index}.npy"
        if target.is_file():
            return np.load(target)
        video = self._render(index, np.arange(self.spec.video_frames), size)
        save_array(video, target)
        return video
