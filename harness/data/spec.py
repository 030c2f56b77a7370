"""Data-set specs: which clips a model trains and is evaluated on.

A data set is named on the command line (``--data``) or by the search as a string, or
written as a small YAML file. :func:`load_data_spec` turns every form into one frozen,
validated :data:`DataSpec`:

    synthetic                  the built-in benchmark, default size (``small``)
    synthetic:tiny             ... at a size: ci | tiny | small | large
    synthetic-av:tiny          the audio-visual benchmark (``sound: true``), same sizes
    kinetics:PATH              a layout named explicitly (see ``list_layouts()``)
    PATH                       a folder, CSV or JSON whose layout is detected
    data.yaml                  a YAML mapping of :class:`SyntheticDataSpec` or
                               :class:`VideoDataSpec` fields (``type: synthetic|video``)

The clip shape (frames, stride, crop size) is not part of the data spec: it comes from the
model spec (``clip``) so that X3D's frame-rate and resolution axes reach the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from harness.errors import SpecError
from harness.registry import suggest
from harness.spec import (
    Document,
    Integer,
    NotBool,
    Number,
    error_message,
    error_path,
    load_yaml_file,
)
from harness.spec._types import LateKeys

__all__ = [
    "AUDIO_VISUAL",
    "KINETICS_MEAN",
    "KINETICS_STD",
    "SYNTHETIC_PRESETS",
    "DataSpec",
    "SyntheticDataSpec",
    "VideoDataSpec",
    "load_data_spec",
]

AUDIO_VISUAL = "synthetic-av"  # the name of the synthetic benchmark with sound
KINETICS_MEAN = (0.45, 0.45, 0.45)  # PySlowFast's RGB mean, on [0, 1] intensities
KINETICS_STD = (0.225, 0.225, 0.225)

Fraction = Annotated[Number, Field(gt=0, le=1)]
Triple = tuple[Number, Number, Number]
_Positive = Annotated[Number, Field(gt=0)]


class _Node(LateKeys):
    """A data-spec node; its ``late_keys`` stay out of dumps at their defaults, and so out
    of a run's identity (which holds the dumped data spec): earlier runs still resume."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class _DataBase(_Node):
    train_sampler: str = "strided"  # clip sampler for training (see list_samplers())
    test_sampler: str = "strided"  # clip sampler for evaluation
    mean: Triple = KINETICS_MEAN  # per-channel mean subtracted, on [0, 1] intensities
    # per-channel standard deviation divided by
    std: tuple[_Positive, _Positive, _Positive] = KINETICS_STD

    @model_validator(mode="after")
    def _known_samplers(self) -> _DataBase:
        from harness.data.sampling import list_samplers

        known = list_samplers()
        for name in (self.train_sampler, self.test_sampler):
            if name not in known:
                raise ValueError(
                    f"unknown sampler '{name}'{suggest(name, known)}; known: {', '.join(known)}"
                )
        return self


# Sizes of the built-in benchmark: ci for tests (seconds per run), tiny for the demo and a
# first `harness train` (a temporal network beats a 2D one by far in a minute on a CPU:
# 3,072 training videos; 512 were too few to tell them apart), small and large for real
# comparisons. Fields left out of a YAML file come from the preset it names.
_CI_PRESET: dict[str, Any] = {
    "classes": 8,  # four time-reversal pairs
    "train_clips": 512,
    "val_clips": 256,
    "video_frames": 16,
    "distractors": 1,
    "noise": 0.03,
    "texture": 0.04,
    "scale": 1.5,
}
SYNTHETIC_PRESETS: dict[str, dict[str, Any]] = {
    "ci": _CI_PRESET,
    "tiny": {**_CI_PRESET, "train_clips": 3072},  # the same settings, six times the videos
    "small": {
        "classes": 12,  # six pairs, one of them fast / slow
        "train_clips": 4096,
        "val_clips": 480,
        "video_frames": 24,
        "distractors": 2,
        "noise": 0.05,
        "texture": 0.06,
        "scale": 1.3,
    },
    "large": {
        "classes": 16,
        "train_clips": 16384,
        "val_clips": 1600,
        "video_frames": 48,
        "distractors": 3,
        "noise": 0.08,
        "texture": 0.1,
        "scale": 1.0,
    },
}


def parse_preset(text: str, kind: str, presets: Mapping[str, Any]) -> str:
    """The preset of ``KIND[:PRESET]`` (``small`` by default); a SpecError naming the known
    ones otherwise."""
    preset = text.partition(":")[2] or "small"
    if preset not in presets:
        known = list(presets)
        raise SpecError(
            f"unknown {kind} size '{preset}'{suggest(preset, known)}; known: {', '.join(known)}",
            path=("data",),
            file="<data>",
        )
    return preset


def fill_from_preset(data: Any, presets: Mapping[str, Mapping[str, Any]]) -> Any:
    """Raw data of a built-in benchmark with its preset's values (``small`` by default)
    under the keys it gives itself."""
    if isinstance(data, Mapping):
        preset = data.get("preset", "small")
        if preset in presets:
            data = {**presets[preset], **data}
    return data


class SyntheticDataSpec(_DataBase):
    """The built-in benchmark: procedurally rendered videos of moving shapes.

    Fields left out take the values of ``preset`` (the defaults written here are the
    ``small`` preset's).

    Deterministic from ``seed``; every clip is rendered on the fly at the clip shape the
    model asks for (or read back from ``cache_dir``). See :mod:`harness.data.synthetic`.
    With ``sound: true`` (named ``synthetic-av[:SIZE]``) it is the audio-visual benchmark:
    the same pictures with a sound track, in classes that need both
    (:mod:`harness.data.synthetic_av`).
    """

    late_keys: ClassVar[frozenset[str]] = frozenset({"sound", "fps", "hiss"})

    type: Literal["synthetic"] = "synthetic"
    preset: Literal["ci", "tiny", "small", "large"] = "small"  # size the other fields default to
    # Number of classes: the first N of the class table (harness.data.synthetic).
    classes: Integer = Field(default=12, ge=2, le=16)
    train_clips: Integer = Field(default=4096, ge=1, le=10_000_000)  # videos, training split
    val_clips: Integer = Field(default=480, ge=1, le=10_000_000)  # videos, validation split
    video_frames: Integer = Field(default=24, ge=2, le=10_000)  # source frames of a video
    distractors: Integer = Field(default=2, ge=0, le=16)  # at most this many distractors
    noise: Number = Field(default=0.05, ge=0, le=0.5)  # largest pixel-noise std, [0, 1] units
    texture: Number = Field(default=0.06, ge=0, le=0.5)  # std of the background's blotches
    scale: Number = Field(default=1.3, gt=0, le=4)  # main object's size, x the motion's own
    seed: Integer = Field(default=0, ge=0)  # every pixel follows from (seed, split, index)
    cache_dir: str | None = None  # render once and keep clips here (None: on the fly)
    sound: bool = False  # the audio-visual benchmark: classes of a motion and a sound
    fps: Number = Field(default=25, gt=0, le=1000)  # frames per second: the sound's clock
    hiss: Number = Field(default=0.01, ge=0, le=0.5)  # sound's background noise std (full scale 1)

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        return fill_from_preset(data, SYNTHETIC_PRESETS)

    @model_validator(mode="after")
    def _pairs(self) -> SyntheticDataSpec:
        if self.sound and self.classes % 2:
            raise ValueError(
                f"classes must be even with sound (its classes come in pairs), got {self.classes}"
            )
        return self


class VideoDataSpec(_DataBase):
    """Real videos (or pre-extracted frames) in one of the known layouts."""

    late_keys: ClassVar[frozenset[str]] = frozenset({"missing_audio"})

    type: Literal["video"] = "video"
    layout: str = "auto"  # folder, frames, kinetics, ucf101, hmdb51, ssv2; auto: detect it
    root: str  # the data set folder, or its annotation file (Kinetics CSV, SSv2 JSON)
    videos: str | None = None  # folder holding the videos (default: next to the annotations)
    split: Integer = Field(default=1, ge=1, le=3)  # official split number (UCF101, HMDB51)
    train_split: str = "train"  # name of the training split (CSV column value, folder)
    val_split: str = "val"  # name of the evaluation split
    val_fraction: Fraction = 0.2  # held out per class when a folder has no split folders
    modality: Literal["rgb", "flow", "rgb+flow"] = "rgb"  # flow: OpenCV optical flow
    flow: str = "dis"  # optical-flow algorithm (see list_flow_algorithms())
    flip: bool | None = None  # random horizontal flip; None: on unless direction-sensitive
    # decode height; None: crop * 8 / 7
    short_side: Annotated[int, Field(ge=8, le=4096), NotBool] | None = None
    crop_scale: tuple[Fraction, Fraction] = (0.25, 1.0)  # random-resized-crop area range
    cache_dir: str | None = None  # probe index and flow cache (None: ~/.cache/harness)
    # videos without an audio track, when a model hears: silence, or skip them
    missing_audio: Literal["silence", "skip"] = "silence"

    @model_validator(mode="after")
    def _known_names(self) -> VideoDataSpec:
        from harness.data.flow import list_flow_algorithms
        from harness.data.layouts import list_layouts

        for what, name, known in (
            ("layout", self.layout, list_layouts()),
            ("flow algorithm", self.flow, list_flow_algorithms()),
        ):
            if name not in known and not (what == "layout" and name == "auto"):
                raise ValueError(
                    f"unknown {what} '{name}'{suggest(name, known)}; known: {', '.join(known)}"
                )
        if self.crop_scale[0] > self.crop_scale[1]:
            raise ValueError("crop_scale must be (smallest, largest) area fraction")
        return self

    def allows_flip(self) -> bool:
        """Whether horizontal flips may augment this data (never for SSv2's directions)."""
        from harness.data.layouts import get_layout

        return get_layout(self.layout).flip if self.flip is None else self.flip


DataSpec = Annotated[SyntheticDataSpec | VideoDataSpec, Field(discriminator="type")]
_ADAPTER: TypeAdapter[SyntheticDataSpec | VideoDataSpec] = TypeAdapter(DataSpec)


def _error(message: str, path: tuple[str | int, ...], where: Document | str) -> SpecError:
    """A SpecError at key ``path`` of a data spec, shown as ``data.PATH``; at its line when
    ``where`` is the YAML document it came from."""
    if isinstance(where, str):
        return SpecError(message, path=("data", *path), file=where)
    return SpecError(message, path=("data", *path), location=where.locate(path), file=where.file)


def _validate(data: Any, where: Document | str) -> SyntheticDataSpec | VideoDataSpec:
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        path = error_path(data, error["loc"])
        if error["type"] == "union_tag_invalid":  # NOTE: the data set itself is the union
            path = ("type",)
        raise _error(error_message(error, DataSpec), path, where) from None


def _load_yaml(path: Path) -> SyntheticDataSpec | VideoDataSpec:
    """A data spec from a YAML file; its relative paths are relative to the file's folder.

    ``root``, ``videos`` and ``cache_dir`` may start with ``~`` (the home folder); any other
    relative path is joined to the folder holding the YAML file, not the working folder.
    """
    doc = load_yaml_file(path)
    if not isinstance(doc.data, dict):
        raise doc.error("a data spec must be a mapping of keys", ())
    data = dict(doc.data)
    for key in ("root", "videos", "cache_dir"):
        value = data.get(key)
        if isinstance(value, str) and value:
            data[key] = str(path.parent / Path(value).expanduser())
    spec = _validate(data, doc)
    return _resolve_layout(spec, doc)


def _resolve_layout(
    spec: SyntheticDataSpec | VideoDataSpec, where: Document | str
) -> SyntheticDataSpec | VideoDataSpec:
    if isinstance(spec, SyntheticDataSpec):
        return spec
    root = Path(spec.root).expanduser()
    if not root.exists():
        raise _error(f"no such file or folder: {root}", ("root",), where)
    if spec.layout != "auto":
        return spec
    from harness.data.layouts import detect_layout

    layout = detect_layout(root)
    if layout is None:
        raise _error(
            f"cannot tell the layout of {root}; name it, e.g. 'kinetics:{root}' "
            "(layouts: folder, frames, kinetics, ucf101, hmdb51, ssv2)",
            ("layout",),
            where,
        )
    return spec.model_copy(update={"layout": layout})


def _from_string(text: str) -> SyntheticDataSpec | VideoDataSpec:
    from harness.data.layouts import list_layouts

    file = "<data>"
    if text.partition(":")[0] == "synthetic-untrimmed":  # harness.localization.untrimmed
        raise SpecError(
            f"'{text}' is the untrimmed (temporal localization) benchmark, not clips to "
            "classify: use it with `harness features` or `harness data export`",
            path=("data",),
            file=file,
        )
    kind = text.partition(":")[0]
    if kind in ("synthetic", AUDIO_VISUAL):
        preset = parse_preset(text, kind, SYNTHETIC_PRESETS)
        sound = {"sound": True} if kind == AUDIO_VISUAL else {}
        return _validate({"type": "synthetic", "preset": preset, **sound}, file)
    prefix, sep, rest = text.partition(":")
    if sep and prefix in list_layouts():
        spec = _validate({"type": "video", "layout": prefix, "root": rest}, file)
        return _resolve_layout(spec, file)
    if text.endswith((".yaml", ".yml")) and Path(text).is_file():
        return _load_yaml(Path(text))
    spec = _validate({"type": "video", "layout": "auto", "root": text}, file)
    return _resolve_layout(spec, file)


def load_data_spec(
    data: str | Path | Mapping[str, Any] | SyntheticDataSpec | VideoDataSpec,
) -> SyntheticDataSpec | VideoDataSpec:
    """Resolve a data-set name, path, YAML file or mapping into a validated spec.

    Args:
        data: ``"synthetic"``, ``"synthetic:ci|tiny|small|large"``, ``"synthetic-av"``,
            ``"synthetic-av:ci|tiny|small|large"``, ``"LAYOUT:PATH"``, a path
            (folder, CSV or JSON; the layout is detected), a ``.yaml`` data spec, a mapping
            of spec fields, or a spec (returned as is).

    Raises:
        SpecError: naming the key (``data.root``, ``data.layout``...) and what is wrong.
    """
    if isinstance(data, SyntheticDataSpec | VideoDataSpec):
        return data
    if isinstance(data, Mapping):
        return _resolve_layout(_validate(dict(data), "<data>"), "<data>")
    text = str(data).strip()
    if not text:
        raise SpecError("empty data set name", path=("data",), file="<data>")
    return _from_string(text)
