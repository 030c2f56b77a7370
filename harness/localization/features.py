"""Pre-extracted features: one ``(T, C)`` array per untrimmed video, as most ActivityNet and
THUMOS14 localization work reads its input.

    DIR/VIDEO.npy          float32 (T, C): step t is the window of frames
                           [t * stride, t * stride + window), pooled to C channels
    DIR/features.json      how they were made (:class:`FeaturesMeta`) and the cache key
    DIR/annotations.json   the videos' ground truth, ActivityNet format

Step ``t`` is centred at ``(t * stride + window / 2) / fps`` seconds: ``offset + t / rate``
with ``rate = fps / stride`` steps per second. :func:`extract_features` (in
:mod:`harness.localization.extract`) writes such a folder; :class:`FeatureFolder` reads it
strictly: a missing, corrupt or misshapen ``.npy`` file is a :class:`SpecError` naming it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import SpecError
from harness.localization._source import get_subset, save_text
from harness.localization.evaluate import Instance
from harness.localization.formats import load_activitynet
from harness.localization.videos import ANNOTATIONS_NAME
from harness.spec import error_message, error_path, load_yaml_file

__all__ = [
    "FEATURES_FORMAT",
    "META_NAME",
    "FeatureFolder",
    "FeaturesMeta",
    "VideoEntry",
    "VideoFeatures",
    "load_features",
    "load_features_meta",
    "read_feature_array",
    "save_features_meta",
]

META_NAME = "features.json"  # the metadata file of a features folder
FEATURES_FORMAT = 1  # bumped when the folder's layout changes
_LOCATE_LIMIT = 2_000_000  # bytes: larger metadata files are named without a line


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VideoEntry(_Frozen):
    """One video of a features folder."""

    subset: str  # ActivityNet subset: training, validation
    frames: int = Field(ge=1)  # frames of the video
    fps: float = Field(gt=0)  # its frames per second
    steps: int = Field(ge=1)  # feature steps (rows of its .npy)


class FeaturesMeta(_Frozen):
    """``features.json``: what made a features folder, and the key its cache answers to."""

    format: int = FEATURES_FORMAT  # layout version of the folder
    key: str  # cache key: hash of every setting below that decides a value
    spec: str  # the backbone as named (zoo name or YAML path)
    spec_hash: str  # hash of the realised backbone spec (as checkpoints record it)
    weights: str | None = None  # checkpoint loaded; None: the spec's initialisation, seed 0
    weights_digest: str  # sha256 of the network's parameters and buffers
    data: str  # the data as named
    data_key: str  # identity of the data (every pixel and annotation)
    window: int = Field(ge=1)  # frames per window (one feature step)
    stride: int = Field(ge=1)  # frames between the starts of consecutive windows
    size: int = Field(ge=1)  # frame side the network reads, pixels
    width: int = Field(ge=1)  # channels of a feature (C)
    fps: float | None = None  # frames per second, where every video has the same
    steps_per_second: float | None = None  # fps / stride, where every video has the same
    videos: dict[str, VideoEntry] = {}  # video -> its entry, for every .npy written

    def rate(self, video: str) -> float:
        """Feature steps per second of ``video`` (its fps / stride)."""
        return self.videos[video].fps / self.stride

    def offset(self, video: str) -> float:
        """Seconds at the centre of ``video``'s first window."""
        return self.window / 2 / self.videos[video].fps


def load_features_meta(path: Path) -> FeaturesMeta:
    """Read and check a ``features.json`` file.

    Raises:
        SpecError: the file is missing, not JSON or not the format (file, line, key path).
    """
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except FileNotFoundError:
        raise SpecError("no such file: not a features folder", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read file: {exc}", file=str(path)) from None
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", file=str(path)
        ) from None
    try:
        meta = FeaturesMeta.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = error_path(data, error["loc"])
        message = error_message(error, FeaturesMeta)
        if len(text) <= _LOCATE_LIMIT:
            raise load_yaml_file(path).error(message, key) from None
        raise SpecError(message, path=key, file=str(path)) from None
    if meta.format != FEATURES_FORMAT:
        raise SpecError(
            f"features format {meta.format}, this harness reads {FEATURES_FORMAT}; "
            "extract them again",
            path=("format",),
            file=str(path),
        )
    return meta


def read_feature_array(
    path: Path, *, steps: int | None = None, width: int | None = None
) -> np.ndarray:
    """A ``(T, C)`` float32 array from ``path``, checked against the expected shape.

    Raises:
        SpecError: the file is missing, not a ``.npy`` array, or not of the shape.
    """
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise SpecError(f"missing: {META_NAME} lists this video", file=str(path)) from None
    except (OSError, ValueError, EOFError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise SpecError(
            f"not a .npy array ({reason or type(exc).__name__})", file=str(path)
        ) from None
    if not isinstance(array, np.ndarray) or array.ndim != 2 or array.dtype.kind != "f":
        shape = getattr(array, "shape", "?")
        raise SpecError(
            f"expected a (steps, channels) float array, got {getattr(array, 'dtype', '?')} "
            f"of shape {shape}",
            file=str(path),
        )
    expected = (
        steps if steps is not None else array.shape[0],
        width if width is not None else array.shape[1],
    )
    if array.shape != expected:
        raise SpecError(f"shape {array.shape}, {META_NAME} says {expected}", file=str(path))
    if not np.isfinite(array).all():
        raise SpecError("holds values that are not finite (NaN or infinity)", file=str(path))
    return array.astype(np.float32, copy=False)


@dataclass(frozen=True)
class VideoFeatures:
    """The features and ground truth of one video."""

    video: str  # the video's name
    subset: str  # ActivityNet subset: training, validation
    features: np.ndarray  # (T, C) float32, one row per feature step
    instances: tuple[Instance, ...]  # ground-truth actions, seconds
    rate: float  # feature steps per second
    offset: float  # seconds at the centre of step 0

    def step_times(self) -> np.ndarray:
        """Seconds at the centre of every step."""
        return self.offset + np.arange(len(self.features)) / self.rate


class FeatureFolder:
    """A folder of pre-extracted features, read a video at a time.

    Args:
        folder: a folder holding ``features.json``, ``VIDEO.npy`` files and the annotations.

    Raises:
        SpecError: ``features.json`` or the annotation file is missing or not the format.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.meta = load_features_meta(self.folder / META_NAME)
        annotations = self.folder / ANNOTATIONS_NAME
        self._instances: dict[str, list[Instance]] = {}
        for item in load_activitynet(annotations) if annotations.exists() else []:
            self._instances.setdefault(item.video, []).append(item)

    def names(self, split: str | None = None) -> list[str]:
        """The videos (of ``split``: ``train``, ``val`` or an ActivityNet subset)."""
        subset = None if split is None else get_subset(split)
        return [n for n, v in self.meta.videos.items() if subset is None or v.subset == subset]

    def load(self, video: str) -> VideoFeatures:
        """The features, ground truth and step timing of ``video``."""
        if video not in self.meta.videos:
            raise SpecError(
                f"no video '{video}' in this features folder", file=str(self.folder / META_NAME)
            )
        entry = self.meta.videos[video]
        array = read_feature_array(
            self.folder / f"{video}.npy", steps=entry.steps, width=self.meta.width
        )
        return VideoFeatures(
            video=video,
            subset=entry.subset,
            features=array,
            instances=tuple(self._instances.get(video, ())),
            rate=self.meta.rate(video),
            offset=self.meta.offset(video),
        )

    def __iter__(self) -> Iterator[VideoFeatures]:
        return (self.load(name) for name in self.names())

    def __len__(self) -> int:
        return len(self.meta.videos)


def load_features(folder: str | Path, split: str | None = None) -> list[VideoFeatures]:
    """Every video of a features folder (of ``split``), checked.

    Raises:
        SpecError: a file of the folder is missing, corrupt or misshapen (naming it).
    """
    features = FeatureFolder(folder)
    return [features.load(name) for name in features.names(split)]


def save_features_meta(meta: FeaturesMeta, folder: Path) -> None:
    """Write ``folder/features.json`` (through a temporary file and a rename)."""
    save_text(folder / META_NAME, json.dumps(meta.model_dump(mode="json"), indent=1) + "\n")
