"""The built-in untrimmed benchmark: long videos with several actions, rendered on demand.

Each video is one scene of the recognition benchmark (:mod:`harness.data.synthetic`): a
textured background with distractors drifting across the whole video and pixel noise.
Over it, a few **action instances** of the benchmark's classes (the time-reversal pairs
among them) follow one another, each the class's motion played over its own span, a new
object of its own colour and shape; between them, background stretches where the main
object does nothing (``idle: still``: it holds the pose of the nearest action's nearest
end; ``idle: none``: there is no main object)::

    frame  0 ...... 31 | 32 ...... 55 | 56 .... 79 | 80 ....... 111 | 112 ... 127
           background  | move_left    | background | approach       | background

Instances cover frames ``[start, end)``, exactly, so at ``fps`` frames per second the
segment in seconds is ``[start / fps, end / fps]``. Everything follows from ``(seed,
split, video)``; a video is a function of the frame index, so a window of it renders
without the rest. Named ``synthetic-untrimmed[:tiny|small]`` or by a YAML file with
``type: synthetic-untrimmed`` (see :func:`load_untrimmed_spec`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# NOTE: the scene and the motions are the recognition benchmark's own, so that an action
# here looks exactly as a clip of its class does there.
from harness.data.spec import fill_from_preset, parse_preset
from harness.data.synthetic import (
    MOTIONS,
    SPLITS,
    SYNTHETIC_CLASSES,
    Pose,
    _contrasting,
    _distractors,
    _pose,
    _render,
    _Scene,
    _upsample_matrix,
    list_synthetic_classes,
)
from harness.errors import SpecError
from harness.localization._source import UntrimmedSource, UntrimmedVideo, get_subset
from harness.localization.evaluate import Instance
from harness.spec import Document, Integer, Number, error_message, error_path, load_yaml_file

__all__ = [
    "UNTRIMMED_KIND",
    "UNTRIMMED_PRESETS",
    "Span",
    "SyntheticUntrimmed",
    "UntrimmedDataSpec",
    "is_untrimmed_name",
    "load_untrimmed_spec",
]

UNTRIMMED_KIND = "synthetic-untrimmed"  # the data-spec type, and the prefix of its names
_Count = tuple[Integer, Integer]  # (least, most)
MAX_INSTANCES = 10_000  # actions per video
MAX_FRAMES = 10_000_000  # frames per video

# Sizes of the benchmark: tiny for tests (a video renders in milliseconds at 32 x 32),
# small for comparisons (minutes-long videos at 8 fps, as THUMOS14's are hours at 30).
UNTRIMMED_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "classes": 4,  # two time-reversal pairs
        "train_videos": 4,
        "val_videos": 2,
        "frames": (96, 160),
        "fps": 8,
        "instances": (1, 3),
        "instance_frames": (16, 32),
        "min_gap": 8,
        "distractors": 1,
        "noise": 0.03,
        "texture": 0.04,
        "scale": 1.5,
    },
    "small": {
        "classes": 8,
        "train_videos": 96,
        "val_videos": 32,
        "frames": (256, 768),
        "fps": 8,
        "instances": (2, 6),
        "instance_frames": (24, 96),
        "min_gap": 16,
        "distractors": 2,
        "noise": 0.05,
        "texture": 0.06,
        "scale": 1.3,
    },
}


class UntrimmedDataSpec(BaseModel):
    """The built-in untrimmed benchmark (fields left out take ``preset``'s values; the
    defaults written here are the ``small`` preset's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["synthetic-untrimmed"] = "synthetic-untrimmed"
    preset: Literal["tiny", "small"] = "small"  # size the other fields default to
    classes: Integer = Field(default=8, ge=2, le=16)  # the first N classes of the class table
    train_videos: Integer = Field(default=96, ge=1, le=1_000_000)  # videos, training split
    val_videos: Integer = Field(default=32, ge=1, le=1_000_000)  # videos, validation split
    frames: _Count = (256, 768)  # shortest and longest video, frames
    fps: Integer = Field(default=8, ge=1, le=1000)  # frames per second (seconds = frame / fps)
    instances: _Count = (2, 6)  # fewest and most actions per video
    instance_frames: _Count = (24, 96)  # shortest and longest action, frames
    min_gap: Integer = Field(default=16, ge=0, le=100_000)  # least background around an action
    idle: Literal["still", "none"] = "still"  # the main object between actions (see module)
    distractors: Integer = Field(default=2, ge=0, le=16)  # at most this many distractors
    noise: Number = Field(default=0.05, ge=0, le=0.5)  # largest pixel-noise std, [0, 1] units
    texture: Number = Field(default=0.06, ge=0, le=0.5)  # std of the background's blotches
    scale: Number = Field(default=1.3, gt=0, le=4)  # main object's size, x the motion's own
    seed: Integer = Field(default=0, ge=0)  # every pixel follows from (seed, split, video)

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        return fill_from_preset(data, UNTRIMMED_PRESETS)

    @model_validator(mode="after")
    def _fits(self) -> UntrimmedDataSpec:
        for name, most in (
            ("frames", MAX_FRAMES),
            ("instances", MAX_INSTANCES),
            ("instance_frames", MAX_FRAMES),
        ):
            low, high = getattr(self, name)
            if not 1 <= low <= high <= most:
                raise ValueError(f"{name} must be (least, most) with 1 <= least <= most <= {most}")
        if self.instance_frames[0] < 2:
            raise ValueError("instance_frames: an action lasts at least 2 frames")
        fewest = self.instances[0]
        need = fewest * self.instance_frames[1] + (fewest + 1) * self.min_gap
        if self.frames[0] < need:
            raise ValueError(
                f"the shortest video ({self.frames[0]} frames) cannot hold {fewest} of the "
                f"longest actions with their gaps ({need} frames)"
            )
        return self

    def data_key(self) -> str:
        """A short hash of every field that decides a pixel or an annotation."""
        fields = self.model_dump(exclude={"preset"})
        return hashlib.sha1(repr(sorted(fields.items())).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- loading


def _validate(data: Any, where: Document | str) -> UntrimmedDataSpec:
    try:
        return UntrimmedDataSpec.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        path = ("data", *error_path(data, error["loc"]))
        message = error_message(error, UntrimmedDataSpec)
        if isinstance(where, str):
            raise SpecError(message, path=path, file=where) from None
        raise SpecError(
            message, path=path, location=where.locate(path[1:]), file=where.file
        ) from None


def _yaml_type(path: Path) -> Any:
    """The ``type`` of a YAML data spec, or None when the file is no mapping."""
    doc = load_yaml_file(path)
    return doc.data.get("type") if isinstance(doc.data, dict) else None


def is_untrimmed_name(text: str) -> bool:
    """Whether ``text`` names the untrimmed benchmark: ``synthetic-untrimmed[:SIZE]``, or a
    YAML file whose ``type`` is ``synthetic-untrimmed``."""
    if text == UNTRIMMED_KIND or text.startswith(f"{UNTRIMMED_KIND}:"):
        return True
    path = Path(text)
    return (
        path.suffix in (".yaml", ".yml") and path.is_file() and _yaml_type(path) == UNTRIMMED_KIND
    )


def load_untrimmed_spec(
    data: str | Path | Mapping[str, Any] | UntrimmedDataSpec,
) -> UntrimmedDataSpec:
    """The spec of the untrimmed benchmark named by ``data``.

    Args:
        data: ``"synthetic-untrimmed"`` (the ``small`` size), ``"synthetic-untrimmed:tiny"``,
            a YAML file of :class:`UntrimmedDataSpec` fields, a mapping of them, or a spec.

    Raises:
        SpecError: an unknown size, or a bad field (file, line and key path ``data.KEY``).
    """
    if isinstance(data, UntrimmedDataSpec):
        return data
    if isinstance(data, Mapping):
        return _validate({"type": UNTRIMMED_KIND, **data}, "<data>")
    text = str(data).strip()
    if text == UNTRIMMED_KIND or text.startswith(f"{UNTRIMMED_KIND}:"):
        preset = parse_preset(text, UNTRIMMED_KIND, UNTRIMMED_PRESETS)
        return _validate({"type": UNTRIMMED_KIND, "preset": preset}, "<data>")
    doc = load_yaml_file(text)
    if not isinstance(doc.data, dict):
        raise doc.error("a data spec must be a mapping of keys", ())
    return _validate(doc.data, doc)


# ---------------------------------------------------------------- layout


@dataclass(frozen=True)
class Span:
    """One action of a video, in frames."""

    label: int  # class index
    start: int  # first frame
    end: int  # one past the last frame

    @property
    def frames(self) -> int:
        return self.end - self.start


def _spans(
    rng: np.random.Generator, spec: UntrimmedDataSpec, labels: list[int]
) -> tuple[int, list[Span]]:
    """A video's length and its actions' spans; ``labels`` gives the classes, in order."""
    length = int(rng.integers(spec.frames[0], spec.frames[1] + 1))
    count = int(rng.integers(spec.instances[0], spec.instances[1] + 1))
    sizes = [
        int(n) for n in rng.integers(spec.instance_frames[0], spec.instance_frames[1] + 1, count)
    ]
    while len(sizes) > spec.instances[0] and sum(sizes) + (len(sizes) + 1) * spec.min_gap > length:
        sizes.pop()  # NOTE: the spec's check guarantees the fewest instances always fit
    slack = length - sum(sizes) - (len(sizes) + 1) * spec.min_gap
    extra = np.floor(rng.dirichlet(np.ones(len(sizes) + 1)) * slack).astype(int)
    extra[0] += slack - int(extra.sum())
    spans, at = [], 0
    for i, size in enumerate(sizes):
        at += spec.min_gap + int(extra[i])
        spans.append(Span(labels[i], at, at + size))
        at += size
    return length, spans


def _hold_still(spans: list[Span], frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Between actions, the nearest action's nearest end: (action, frame within it)."""
    starts = np.array([s.start for s in spans])
    ends = np.array([s.end - 1 for s in spans])
    gap_to_start = np.abs(frames[:, None] - starts[None, :])
    gap_to_end = np.abs(frames[:, None] - ends[None, :])
    nearest = np.minimum(gap_to_start, gap_to_end).argmin(axis=1)
    at_end = (
        gap_to_end[np.arange(len(frames)), nearest] < gap_to_start[np.arange(len(frames)), nearest]
    )
    local = np.where(at_end, ends[nearest] - starts[nearest], 0)
    return nearest, local


def _no_object(spans: list[Span], frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Between actions, no main object: action -1."""
    return np.full(len(frames), -1), np.zeros(len(frames), int)


# What the main object does between actions (the spec's ``idle``).
IDLE: dict[str, Callable[[list[Span], np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "still": _hold_still,
    "none": _no_object,
}


# ---------------------------------------------------------------- rendering


class SyntheticUntrimmed(UntrimmedSource):
    """Both splits of the untrimmed benchmark: layouts drawn at once, pixels on demand.

    Args:
        spec: the benchmark spec (or anything :func:`load_untrimmed_spec` reads).
    """

    def __init__(self, spec: UntrimmedDataSpec | str) -> None:
        self.spec = load_untrimmed_spec(spec)
        self.key = self.spec.data_key()
        self.origin = f"{UNTRIMMED_KIND}:{self.spec.preset}"
        self.classes = list_synthetic_classes(self.spec.classes)
        self._videos: dict[str, list[UntrimmedVideo]] = {}
        self._spans: dict[str, list[Span]] = {}
        for split, count in (("train", self.spec.train_videos), ("val", self.spec.val_videos)):
            self._draw(split, count)

    def _draw(self, split: str, count: int) -> None:
        spec = self.spec
        # NOTE: classes come in shuffled rounds over the split, so each is about as frequent
        order = np.random.default_rng([spec.seed, SPLITS[split], 4])
        labels: list[int] = []
        videos = []
        for index in range(count):
            while len(labels) < spec.instances[1]:
                labels += [int(c) for c in order.permutation(spec.classes)]
            length, spans = _spans(
                np.random.default_rng([spec.seed, SPLITS[split], index, 3]), spec, labels
            )
            del labels[: len(spans)]
            name = f"{split}_{index:04d}"
            self._spans[name] = spans
            instances = tuple(
                Instance(name, self.classes[s.label], s.start / spec.fps, s.end / spec.fps)
                for s in spans
            )
            videos.append(
                UntrimmedVideo(name, get_subset(split), length, float(spec.fps), instances)
            )
        self._videos[split] = videos

    def list_videos(self, split: str | None = None) -> list[UntrimmedVideo]:
        if split is None:
            return [v for videos in self._videos.values() for v in videos]
        subset = get_subset(split)
        return [v for videos in self._videos.values() for v in videos if v.subset == subset]

    def spans(self, video: UntrimmedVideo | str) -> list[Span]:
        """The actions of ``video`` in frames."""
        return list(self._spans[video if isinstance(video, str) else video.name])

    def load_frames(self, video: UntrimmedVideo, indices: np.ndarray, *, size: int) -> np.ndarray:
        frames = np.clip(np.asarray(indices, dtype=np.int64), 0, video.frames - 1)
        split, index = video.name.rsplit("_", 1)
        key = [self.spec.seed, SPLITS[split], int(index)]
        spans = self._spans[video.name]
        action, local = IDLE[self.spec.idle](spans, frames)
        for i, span in enumerate(spans):
            inside = (frames >= span.start) & (frames < span.end)
            action[inside], local[inside] = i, frames[inside] - span.start
        out = np.empty((len(frames), size, size, 3), np.uint8)
        scene_rng = np.random.default_rng([*key, 5])
        base = scene_rng.uniform(0.1, 0.9, 3).astype(np.float32)
        texture = scene_rng.normal(0, self.spec.texture, (5, 5, 3)).astype(np.float32)
        noise = float(scene_rng.uniform(0, self.spec.noise))
        count = int(scene_rng.integers(0, self.spec.distractors + 1))
        weights = _upsample_matrix(size, 5)
        background = base + (weights @ texture.transpose(2, 0, 1) @ weights.T).transpose(1, 2, 0)
        for i in np.unique(action):
            rows = np.flatnonzero(action == i)
            time = frames[rows].astype(np.float32) / max(video.frames - 1, 1)
            # NOTE: the distractors' stream is drawn afresh for every group of frames, so
            # their paths over the whole video do not depend on which frames are asked for
            others = _distractors(np.random.default_rng([*key, 0]), time, count)
            pose, colour = self._main_object(key, spans, int(i), local[rows], base)
            scene = _Scene(background=background, colour=colour, distractors=others, noise=noise)
            out[rows] = _render(scene, pose, size, [[*key, 1, int(f)] for f in frames[rows]])
        return out

    def _main_object(
        self, key: list[int], spans: list[Span], action: int, local: np.ndarray, base: np.ndarray
    ) -> tuple[Pose, np.ndarray]:
        """The main object of ``action`` at frames ``local`` of it (invisible for -1)."""
        if action < 0:
            nothing = _pose(
                local.astype(np.float32),
                cx=0.5,
                cy=0.5,
                radius=0.01,
                angle=0.0,
                alpha=0.0,
                shape="disc",
            )
            return nothing, base
        span = spans[action]
        cls = SYNTHETIC_CLASSES[span.label]
        rng = np.random.default_rng([*key, 2, action])
        colour = _contrasting(rng, base)
        u = local.astype(np.float32) / (span.frames - 1)
        if cls.reverse:
            u = 1 - u
        pose = MOTIONS.get(cls.motion)(rng, u, **dict(cls.params))
        return dataclasses.replace(pose, radius=pose.radius * self.spec.scale), colour
