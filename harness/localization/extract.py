"""Feature extraction: a recognition backbone slid over untrimmed videos.

    spec --head: features--> backbone (window frames, size x size) [+ checkpoint weights]
    video --windows [t * stride, t * stride + window)--> (B, 3, window, size, size)
          --backbone, no_grad, eval--> (B, C) --> DIR/VIDEO.npy (T, C) float32

The cache key covers everything that decides a value: the realised spec's hash, the
weights' digest, window, stride, frame size, normalisation and the data's identity. A
second run with the same key skips the videos already written (and resumes an
interrupted one); a folder holding another key's features is refused, or replaced with
``overwrite``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.data._io import save_array
from harness.data.spec import KINETICS_MEAN, KINETICS_STD
from harness.errors import SpecError
from harness.localization._source import UntrimmedSource, UntrimmedVideo
from harness.localization.features import (
    FEATURES_FORMAT,
    META_NAME,
    FeaturesMeta,
    VideoEntry,
    load_features_meta,
    save_features_meta,
)
from harness.localization.videos import ANNOTATIONS_NAME, load_untrimmed, save_activitynet

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["ExtractSummary", "create_feature_model", "extract_features", "list_windows"]

CLI = "<command line>"


@dataclass(frozen=True)
class ExtractSummary:
    """What :func:`extract_features` did."""

    folder: Path  # the features folder
    written: list[str]  # videos extracted by this run
    skipped: list[str]  # videos already in the folder under the same key
    meta: FeaturesMeta  # the folder's features.json after the run


def list_windows(frames: int, *, window: int, stride: int) -> np.ndarray:
    """First frames of the windows of a ``frames``-long video: every full window, one
    start per ``stride`` frames; a video shorter than ``window`` gets one (padded with its
    last frame)."""
    return np.arange(0, max(frames - window, 0) + 1, stride)


def _check(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise SpecError(f"must be at least 1, got {value}", path=(f"--{name}",), file=CLI)


def _load_weights(model: nn.Module, path: Path, expected_hash: str) -> None:
    """Load the backbone of a ``harness train`` checkpoint (the classifier head left out)."""
    from harness.train.checkpoint import load_checkpoint

    payload = load_checkpoint(path)
    if payload is None:
        raise SpecError("no such file", path=("--weights",), file=str(path))
    state, trained = payload.get("model"), payload.get("spec_hash")
    if not isinstance(state, dict):
        raise SpecError(
            "the checkpoint holds no model weights", path=("--weights",), file=str(path)
        )
    if trained != expected_hash:
        raise SpecError(
            f"trained for spec hash {str(trained)[:12]}, not this spec's ({expected_hash[:12]})",
            path=("--weights",),
            file=str(path),
        )
    body = {k: v for k, v in state.items() if not k.startswith("head.")}
    try:
        result = model.load_state_dict(body, strict=False)
    except RuntimeError as exc:
        reason = " ".join(str(exc).split())[:200]
        raise SpecError(
            f"does not fit the network: {reason}", path=("--weights",), file=str(path)
        ) from None
    missing = [k for k in result.missing_keys if not k.startswith("head.")]
    unexpected = list(result.unexpected_keys)
    if missing or unexpected:
        what = f"lacks {missing[0]}" if missing else f"has {unexpected[0]}, not in the network"
        raise SpecError(f"does not fit the network: it {what}", path=("--weights",), file=str(path))


def create_feature_model(
    spec: str | Path, *, window: int, size: int, weights: Path | None = None
) -> tuple[nn.Module, str, str]:
    """The backbone of ``spec`` with a global-average-pool head, in eval mode.

    Returns:
        The network, the hash of ``spec`` (its classifier's, as checkpoints record it) and
        the digest of its weights.

    Raises:
        SpecError: a spec that does not read RGB clips or cannot build at this window and
            size, or weights that do not fit it.
    """
    import torch

    from harness.compiler import build_model
    from harness.spec import load_spec, spec_hash
    from harness.spec.schema import FeaturesHeadSpec
    from harness.train.checkpoint import weights_digest

    loaded = load_spec(spec)
    if loaded.input_channels() != {"rgb": 3}:
        inputs = ", ".join(f"{k} ({c} channels)" for k, c in loaded.input_channels().items())
        raise SpecError(
            f"features are extracted from RGB frames; this spec reads {inputs}",
            path=("inputs",),
            file=str(spec),
        )
    torch.manual_seed(0)  # NOTE: without weights, the features of a seeded initialisation
    model = build_model(
        loaded.model_copy(update={"head": FeaturesHeadSpec()}), frames=window, size=size
    )
    if weights is not None:
        _load_weights(model, weights, spec_hash(loaded))
    return model.eval(), spec_hash(loaded), weights_digest(model)


@dataclass(frozen=True)
class _Reader:
    """Reads a video's windows and runs them through a backbone, ``batch`` at a time."""

    source: UntrimmedSource
    window: int  # frames per window
    stride: int  # frames between windows
    size: int  # frame side, pixels
    batch: int  # windows per forward pass
    device: torch.device

    def __call__(self, model: nn.Module, video: UntrimmedVideo) -> np.ndarray:
        """``(T, C)`` float32 features of ``video``."""
        import torch

        mean = torch.tensor(KINETICS_MEAN).view(1, 3, 1, 1, 1)
        std = torch.tensor(KINETICS_STD).view(1, 3, 1, 1, 1)
        starts = list_windows(video.frames, window=self.window, stride=self.stride)
        rows = []
        for first in range(0, len(starts), self.batch):
            group = starts[first : first + self.batch]
            # NOTE: one read per batch: overlapping windows share their frames
            indices = np.arange(group[0], group[-1] + self.window)
            frames = self.source.load_frames(video, indices, size=self.size)
            offsets = group - group[0]
            clips = np.stack([frames[o : o + self.window] for o in offsets])
            x = torch.from_numpy(clips).permute(0, 4, 1, 2, 3).float().div_(255)
            x = ((x - mean) / std).to(self.device)
            with torch.no_grad():
                out = model(x)
            rows.append(out.reshape(len(group), -1).float().cpu().numpy())
        return np.concatenate(rows).astype(np.float32)


# Settings shown when two keys differ: (what decides the key, what names it to a user).
_SHOWN = (
    ("spec_hash", "spec"),
    ("weights_digest", "weights"),
    ("window", "window"),
    ("stride", "stride"),
    ("size", "size"),
    ("data_key", "data"),
)


def _differences(old: FeaturesMeta, new: FeaturesMeta) -> str:
    """``window 8 -> 4, data A -> B``: the settings of ``new`` that ``old`` was not made with."""
    changes = [
        f"{shown} {getattr(old, shown) or 'none'} -> {getattr(new, shown) or 'none'}"
        for decides, shown in _SHOWN
        if getattr(old, decides) != getattr(new, decides)
    ]
    return ", ".join(changes) or f"format {old.format} -> {new.format}"


def _existing(out: Path, meta: FeaturesMeta, overwrite: bool) -> FeaturesMeta:
    """The folder's metadata to go on from: its own under the same key, else a fresh one."""
    if out.exists() and not out.is_dir():
        raise SpecError(f"{out} is not a folder", path=("--out",), file=CLI)
    if not (out / META_NAME).exists():
        if out.is_dir() and any(out.iterdir()):
            raise SpecError(
                f"{out} is not empty and holds no {META_NAME}; give a new or empty folder",
                path=("--out",),
                file=CLI,
            )
        return meta
    old = load_features_meta(out / META_NAME)
    if old.key == meta.key:
        return old.model_copy(update={"data": meta.data, "spec": meta.spec})
    if not overwrite:
        raise SpecError(
            f"{out} holds features of other settings (key {old.key}; this run's is {meta.key}: "
            f"{_differences(old, meta)}); give another --out, or --overwrite to replace them",
            path=("--out",),
            file=CLI,
        )
    for name in old.videos:
        (out / f"{name}.npy").unlink(missing_ok=True)
    return meta


def _is_cached(path: Path, entry: VideoEntry | None, width: int) -> bool:
    if entry is None:
        return False
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return False
    return array.shape == (entry.steps, width)


def _safe_name(name: str, source: UntrimmedSource) -> str:
    if Path(name).name != name or name in ("", ".", "..") or "\\" in name:
        raise SpecError(f"video name '{name}' cannot be a file name", file=source.origin)
    return name


def _with_rates(meta: FeaturesMeta, videos: dict[str, VideoEntry]) -> FeaturesMeta:
    rates = {entry.fps for entry in videos.values()}
    fps = rates.pop() if len(rates) == 1 else None
    rate = None if fps is None else fps / meta.stride
    return meta.model_copy(update={"videos": videos, "fps": fps, "steps_per_second": rate})


def _get_device(name: str) -> torch.device:
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise SpecError(f"not a torch device: '{name}'", path=("--device",), file=CLI) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SpecError("no CUDA device here", path=("--device",), file=CLI)
    return device


def _create_meta(
    *,
    spec: str,
    weights: Path | None,
    source: UntrimmedSource,
    spec_hash: str,
    weights_digest: str,
    window: int,
    stride: int,
    size: int,
    width: int,
) -> FeaturesMeta:
    """A new folder's metadata, its key the hash of every setting that decides a value."""
    settings = {
        "format": FEATURES_FORMAT,
        "spec_hash": spec_hash,
        "weights_digest": weights_digest,
        "window": window,
        "stride": stride,
        "size": size,
        "data_key": source.key,
        "mean": KINETICS_MEAN,
        "std": KINETICS_STD,
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return FeaturesMeta(
        key=key,
        spec=spec,
        spec_hash=spec_hash,
        weights=None if weights is None else str(weights),
        weights_digest=weights_digest,
        data=source.origin,
        data_key=source.key,
        window=window,
        stride=stride,
        size=size,
        width=width,
    )


def extract_features(
    spec: str | Path,
    data: str | Path | UntrimmedSource,
    out: Path,
    *,
    window: int = 8,
    stride: int = 4,
    size: int = 32,
    batch: int = 16,
    weights: Path | None = None,
    split: str | None = None,
    overwrite: bool = False,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
) -> ExtractSummary:
    """Extract one ``(T, C)`` feature array per video of ``data`` into ``out``.

    Args:
        spec: a zoo name or YAML spec: its stages are the backbone, its head is replaced by
            global average pooling.
        data: untrimmed videos (see :func:`harness.localization.videos.load_untrimmed`).
        out: the features folder (new, empty, or one of an earlier run).
        window: frames per window (the clip the backbone reads).
        stride: frames between windows.
        size: frame side in pixels.
        batch: windows per forward pass.
        weights: a ``harness train`` checkpoint (its classifier head is left out).
        split: only this split's videos (``train``, ``val``); None: all.
        overwrite: replace the features of another setting in ``out``.
        device: torch device to run on.
        log: called with a line per video extracted.

    Raises:
        SpecError: a bad option, spec, checkpoint or data, or an ``out`` of another key.
    """
    import torch

    _check(window=window, stride=stride, size=size, batch=batch)
    run_on = _get_device(device)
    source = load_untrimmed(data)
    videos = source.list_videos(split)
    if not videos:
        raise SpecError(
            f"no videos{f' of split {split!r}' if split else ''}", path=("--data",), file=CLI
        )
    model, hash_, digest = create_feature_model(spec, window=window, size=size, weights=weights)
    model = model.to(run_on)
    with torch.no_grad():
        probe = torch.zeros(1, 3, window, size, size, device=run_on)
        width = int(model(probe).reshape(1, -1).shape[1])
    fresh = _create_meta(
        spec=str(spec),
        weights=weights,
        source=source,
        spec_hash=hash_,
        weights_digest=digest,
        window=window,
        stride=stride,
        size=size,
        width=width,
    )
    meta = _existing(out, fresh, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    read = _Reader(source, window=window, stride=stride, size=size, batch=batch, device=run_on)
    written, skipped = [], []
    for video in videos:
        target = out / f"{_safe_name(video.name, source)}.npy"
        if _is_cached(target, meta.videos.get(video.name), width):
            skipped.append(video.name)
            continue
        features = read(model, video)
        save_array(features, target)
        entry = VideoEntry(
            subset=video.subset, frames=video.frames, fps=video.fps, steps=len(features)
        )
        meta = _with_rates(meta, {**meta.videos, video.name: entry})
        save_features_meta(meta, out)  # NOTE: after every video: an interrupted run resumes
        written.append(video.name)
        if log is not None:
            log(f"{video.name}: {features.shape[0]} steps x {features.shape[1]}")
    meta = _with_rates(meta, dict(meta.videos))
    save_features_meta(meta, out)
    listed = [v for v in source.list_videos() if v.name in meta.videos]
    save_activitynet(listed, out / ANNOTATIONS_NAME)
    return ExtractSummary(folder=out, written=written, skipped=skipped, meta=meta)
