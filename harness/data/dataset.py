"""Clip data sets: a split of videos, sampled and transformed into model inputs.

An item is ``(clip, label, video)``: ``clip`` is a ``(C, T, H, W)`` float tensor (a
``{"rgb": ..., "flow": ...}`` mapping for two-stream data), ``video`` the index of the
video it came from. Given :class:`~harness.data.audio.AudioSettings`, ``clip`` is a
mapping with an ``"audio"`` entry too: the ``(1, frames, mels)`` log-mel spectrogram of
the sound from the clip's first frame over the clip's span (``synthetic-av``, or a real
video's audio track; a video without one is silence, or left out when the spec says
``missing_audio: skip``). In evaluation a data set of ``N`` videos with ``views = (K, S)``
has ``N * K * S`` items, one per temporal clip and spatial crop, whose scores the
evaluator averages per video. Items are addressed by ``(index, seed)`` keys (see
:class:`harness.data.loader.ClipSampler`), so that every random choice of an item follows
from its key, whatever the worker that loads it.

A video that fails to decode mid-epoch is replaced by the next one (with a warning), so
a bad file never stops a run; :mod:`harness.data.index` already skipped the files whose
headers could not be read.
"""

from __future__ import annotations

import hashlib
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from harness.data.audio import AudioSettings, clip_log_mel, load_audio, probe_audio
from harness.data.flow import FLOW_MEAN, FLOW_STD, load_flow
from harness.data.index import DataWarning, VideoRecord, get_cache_dir, load_video_index
from harness.data.sampling import sample_clip
from harness.data.spec import SyntheticDataSpec, VideoDataSpec, load_data_spec
from harness.data.synthetic_av import SyntheticAVVideos, create_synthetic_videos
from harness.data.transforms import ClipTransform, create_test_transform, create_train_transform
from harness.data.video import DecodeError, load_folder_frames, load_video_frames
from harness.errors import SpecError
from harness.spec.schema import ClipSpec

__all__ = [
    "AUDIO_INPUT",
    "ClipDataset",
    "SyntheticClipDataset",
    "VideoClipDataset",
    "create_dataset",
    "locate_data_error",
]

Key = int | tuple[int, int]
AUDIO_INPUT = "audio"  # the input an item's spectrogram is, by name (a model's audio input)
MAX_REPLACEMENTS = 16  # videos tried in place of one that fails to decode


def _span(indices: np.ndarray) -> tuple[int, int]:
    """(first frame, frames from the first to the last) of a clip's frame numbers."""
    first, last = int(indices.min()), int(indices.max())
    return first, last - first + 1


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    """``(T, H, W, C)`` uint8 -> ``(T, C, H, W)`` float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255)


class ClipDataset(Dataset[tuple[Any, int, int]], ABC):
    """Sampling and views shared by every data set; subclasses read frames.

    Args:
        clip: frames, stride and crop size of a clip (from the model spec).
        train: random clips and augmentation (else deterministic views).
        views: (temporal clips, spatial crops) per video in evaluation.
        sampler: the clip sampler's name.
        audio: add the clip's log-mel spectrogram to items (None: pictures only).
    """

    classes: list[str]

    def __init__(
        self,
        *,
        clip: ClipSpec,
        train: bool,
        views: tuple[int, int],
        sampler: str,
        audio: AudioSettings | None = None,
    ) -> None:
        self.clip = clip
        self.train = train
        self.views = (1, 1) if train else views
        self.sampler = sampler
        self.audio = audio
        self._warned: set[int] = set()

    @property
    @abstractmethod
    def labels(self) -> np.ndarray:
        """Class of every video."""

    @abstractmethod
    def num_frames(self, video: int) -> int:
        """Source frames of video ``video``."""

    @abstractmethod
    def load(
        self, video: int, indices: np.ndarray, rng: np.random.Generator | None, crop: int
    ) -> Any:
        """The transformed clip of frames ``indices`` of ``video`` (spatial view ``crop``)."""

    @property
    def num_videos(self) -> int:
        return len(self.labels)

    def __len__(self) -> int:
        return self.num_videos * self.views[0] * self.views[1]

    def __getitem__(self, key: Key) -> tuple[Any, int, int]:
        index, seed = key if isinstance(key, tuple) else (key, key)
        rng = np.random.default_rng(seed) if self.train else None
        video, view = divmod(index, self.views[0] * self.views[1])
        failed: dict[int, DecodeError] = {}
        for attempt in range(MAX_REPLACEMENTS):
            candidate = (video + attempt) % self.num_videos
            try:
                item = self._item(candidate, view, rng)
            except DecodeError as exc:
                failed.setdefault(candidate, exc)
                continue
            # NOTE: warned only once a replacement worked: a run that stops says it alone
            for bad, error in failed.items():
                if bad not in self._warned:
                    self._warned.add(bad)
                    warnings.warn(
                        f"skipping a video that fails to decode: {error}", DataWarning, stacklevel=2
                    )
            return item, int(self.labels[candidate]), video
        first = next(iter(failed.values()))
        raise DecodeError(
            f"{MAX_REPLACEMENTS} videos in a row failed to decode ({len(failed)} different; "
            f"the first: {first}); check the data set"
        )

    def _item(self, video: int, view: int, rng: np.random.Generator | None) -> Any:
        temporal, crop = divmod(view, self.views[1])
        indices = sample_clip(
            self.sampler,
            self.num_frames(video),
            frames=self.clip.frames,
            stride=self.clip.stride,
            rng=rng,
            view=temporal,
            views=self.views[0],
        )
        return self.load(video, indices, rng, crop)


class SyntheticClipDataset(ClipDataset):
    """A split of the built-in benchmark, rendered at the clip's size (with its sound,
    for ``synthetic-av`` and audio settings)."""

    def __init__(
        self,
        spec: SyntheticDataSpec,
        split: str,
        *,
        clip: ClipSpec,
        train: bool,
        views: tuple[int, int],
        audio: AudioSettings | None = None,
    ) -> None:
        sampler = spec.train_sampler if train else spec.test_sampler
        super().__init__(clip=clip, train=train, views=views, sampler=sampler, audio=audio)
        self.videos = create_synthetic_videos(spec, split)
        if audio is not None and not isinstance(self.videos, SyntheticAVVideos):
            raise SpecError(
                "the synthetic benchmark has no sound; the audio-visual one is "
                f"'synthetic-av:{spec.preset}' (or 'sound: true')",
                path=("data", "sound"),
            )
        self.classes = self.videos.classes
        self._labels = np.arange(len(self.videos)) % spec.classes
        self.transform = create_train_transform(
            size=clip.size, mean=spec.mean, std=spec.std, crop=False, flip=False
        )

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def num_frames(self, video: int) -> int:
        return self.videos.spec.video_frames

    def load(
        self, video: int, indices: np.ndarray, rng: np.random.Generator | None, crop: int
    ) -> Any:
        frames = _to_tensor(self.videos.render(video, indices, self.clip.size))
        rgb = self.transform(frames, rng).permute(1, 0, 2, 3)
        if self.audio is None:
            return rgb
        assert isinstance(self.videos, SyntheticAVVideos)  # checked in __init__
        first, frames_spanned = _span(indices)
        waveform = self.videos.audio(
            video,
            start=self.videos.frame_time(first),
            duration=self.videos.frame_time(frames_spanned),
            sample_rate=self.audio.sample_rate,
        )
        return {"rgb": rgb, AUDIO_INPUT: clip_log_mel(waveform, self.audio)}


class VideoClipDataset(ClipDataset):
    """A split of a real data set: decoded video files or frame folders (and their sound,
    given audio settings)."""

    def __init__(
        self,
        spec: VideoDataSpec,
        split: str,
        *,
        clip: ClipSpec,
        train: bool,
        views: tuple[int, int],
        audio: AudioSettings | None = None,
    ) -> None:
        sampler = spec.train_sampler if train else spec.test_sampler
        super().__init__(clip=clip, train=train, views=views, sampler=sampler, audio=audio)
        self.spec = spec
        index = load_video_index(spec, split)
        self.classes = list(index.classes)
        self.records: tuple[VideoRecord, ...] = index.records
        self.skipped = dict(index.skipped)
        self.cache_dir = get_cache_dir(spec.cache_dir)
        if audio is not None and spec.missing_audio == "skip":
            self._drop_silent(split)
        self._labels = np.array([r.label for r in self.records], dtype=np.int64)
        self.short_side = spec.short_side or round(clip.size * 8 / 7)
        self.transforms = {
            "rgb": self._transforms(spec.mean, spec.std, ()),
            "flow": self._transforms(FLOW_MEAN, FLOW_STD, (0,)),
        }

    def _transforms(
        self, mean: tuple[float, ...], std: tuple[float, ...], negate: tuple[int, ...]
    ) -> list[ClipTransform]:
        size, views = self.clip.size, self.views[1]
        if self.train:
            flip = self.spec.allows_flip()
            return [
                create_train_transform(
                    size=size,
                    mean=mean,
                    std=std,
                    scale=self.spec.crop_scale,
                    flip=flip,
                    negate_channels=negate,
                )
            ]
        return [
            create_test_transform(size=size, mean=mean, std=std, view=v, views=views)
            for v in range(views)
        ]

    def _drop_silent(self, split: str) -> None:
        """Leave out the videos without an audio track (``missing_audio: skip``)."""
        videos = [r for r in self.records if not r.folder]
        digest = hashlib.sha1(str(Path(self.spec.root).expanduser().resolve()).encode())
        cache_file = self.cache_dir / "audio" / f"probe-{digest.hexdigest()[:16]}.json"
        answers = probe_audio([r.path for r in videos], cache_file=cache_file)
        # NOTE: a file that cannot be read (None) stays: decoding it fails and the data set
        # replaces it (with its own warning), rather than calling it silent here
        silent = [r for r in self.records if r.folder]  # frame folders have no sound
        silent += [r for r, has in zip(videos, answers, strict=True) if has is False]
        sound = {r.path for r in self.records} - {r.path for r in silent}
        if not silent:
            return
        names = [Path(r.path).name for r in silent]
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        if len(silent) == len(self.records):
            raise SpecError(
                f"no video of the '{split}' split of {self.spec.root} has an audio track "
                f"({shown}); 'missing_audio: silence' gives them silent sound",
                path=("data", "missing_audio"),
            )
        warnings.warn(
            f"{self.spec.root}: skipped {len(silent)} of {len(self.records)} videos of the "
            f"'{split}' split: no audio track ({shown})",
            DataWarning,
            stacklevel=4,
        )
        self.skipped["no audio track"] = len(silent)
        self.records = tuple(r for r in self.records if r.path in sound)

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def num_frames(self, video: int) -> int:
        return self.records[video].frames

    def _frames(self, record: VideoRecord, indices: np.ndarray) -> np.ndarray:
        absolute = indices + record.first
        reader = load_folder_frames if record.folder else load_video_frames
        return reader(record.path, absolute, short_side=self.short_side)

    def _flow(self, record: VideoRecord, indices: np.ndarray) -> np.ndarray:
        total = record.first + record.frames
        return load_flow(
            record.path,
            indices + record.first,
            num_frames=total,
            read_frames=lambda idx: self._frames(record, idx - record.first),
            algorithm=self.spec.flow,
            short_side=self.short_side,
            cache_dir=self.cache_dir,
        )

    def load(
        self, video: int, indices: np.ndarray, rng: np.random.Generator | None, crop: int
    ) -> Any:
        record = self.records[video]
        streams = {"rgb": self._frames, "flow": self._flow}
        wanted = self.spec.modality.split("+")
        state = rng.bit_generator.state if rng is not None else {}
        out = {}
        for name in wanted:
            if rng is not None:  # NOTE: the same crop and flip for both streams
                rng.bit_generator.state = state
            frames = _to_tensor(streams[name](record, indices))
            transform = self.transforms[name][0 if self.train else crop]
            out[name] = transform(frames, rng).permute(1, 0, 2, 3)
        if self.audio is not None:
            out[AUDIO_INPUT] = self._audio(record, indices, self.audio)
        return out if len(out) > 1 else out[wanted[0]]

    def _audio(
        self, record: VideoRecord, indices: np.ndarray, settings: AudioSettings
    ) -> torch.Tensor:
        """The log-mel spectrogram of the clip's sound (silence without a track)."""
        first, frames = _span(indices + record.first)
        waveform = None
        if not record.folder and record.fps > 0:
            waveform = load_audio(
                record.path,
                sample_rate=settings.sample_rate,
                start=first / record.fps,
                duration=frames / record.fps,
                cache_dir=self.cache_dir,
            )
        if waveform is None:  # NOTE: no track: silence (missing_audio: skip left these out)
            waveform = np.zeros(0, np.float32)
        return clip_log_mel(waveform, settings)


def create_dataset(
    data: str | Path | Mapping[str, Any] | SyntheticDataSpec | VideoDataSpec,
    split: str,
    *,
    clip: ClipSpec,
    train: bool | None = None,
    views: tuple[int, int] = (1, 1),
    audio: AudioSettings | None = None,
) -> ClipDataset:
    """The clips of ``split`` (``"train"`` or ``"val"``) of a data set.

    Args:
        data: a data-set spec, name, path or mapping of spec fields (see
            :func:`harness.data.load_data_spec`).
        split: which split.
        clip: frames, stride and crop size (the model spec's ``clip``).
        train: augment and sample at random (default: ``split == "train"``).
        views: (temporal clips, spatial crops) per video when not training.
        audio: items are ``{"rgb": ..., "audio": (1, frames, mels)}`` mappings (with
            ``"flow"`` too for ``rgb+flow`` data): the log-mel spectrogram of the clip's
            sound. The synthetic benchmark needs ``synthetic-av`` for this.

    Raises:
        SpecError: audio asked of the (silent) ``synthetic`` benchmark, or no video of a
            split left with ``missing_audio: skip``.
    """
    spec = load_data_spec(data)
    is_train = split == "train" if train is None else train
    if isinstance(spec, SyntheticDataSpec):
        return SyntheticClipDataset(
            spec, split, clip=clip, train=is_train, views=views, audio=audio
        )
    return VideoClipDataset(spec, split, clip=clip, train=is_train, views=views, audio=audio)


def locate_data_error(
    error: SpecError, data: str | Path | Mapping[str, Any] | SyntheticDataSpec | VideoDataSpec
) -> SpecError:
    """``error`` (about a ``data.*`` key, raised once the data spec was loaded) placed at
    that key in the data-spec YAML file ``data`` names; unchanged when it has a place.

    The data spec does not keep the file it came from, so a mistake found only when the
    videos are listed (``root`` is a file where a folder is needed) is placed here.
    """
    if error.location is not None or error.file not in (None, "<data>"):
        return error
    if error.path[:1] != ("data",) or not isinstance(data, str | Path):
        return error
    path = Path(data)
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return SpecError(error.message, path=error.path, file="<data>")
    from harness.spec import load_yaml_file

    try:
        location = load_yaml_file(path).locate(error.path[1:])
    except SpecError:  # NOTE: it loaded a moment ago; a file changed since keeps no place
        location = None
    return SpecError(error.message, path=error.path, location=location, file=str(path))
