"""One localization network fitted and scored on a features folder: what a search trial runs.

    features folder --load_localization_data--> training windows, validation videos
    spec --train_localizer (epochs, callback per epoch)--> network
         --detect on every validation video--> detections (seconds)
         --evaluate_detections at the protocol's tIoU thresholds--> average mAP, mAP at 0.5

The metrics are named as the search names them (:data:`LOCALIZATION_METRICS`). A head
that finds actions without their classes (BMN's proposals) is scored against the ground
truth with every label made one, ``action``: the class-agnostic detection mAP.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from torch import nn

from harness.errors import SpecError
from harness.localization.evaluate import (
    LOCALIZATION_METRICS,
    PROTOCOLS,
    Detection,
    DetectionResult,
    Instance,
    evaluate_detections,
)
from harness.localization.features import META_NAME, VideoFeatures, load_features
from harness.localization.objectives import create_objective
from harness.localization.train import (
    FeatureVideo,
    detect,
    detections_in_seconds,
    feature_video,
    train_localizer,
)
from harness.spec.localization import LocalizationSpec

__all__ = [
    "LocalizationData",
    "LocalizationResult",
    "fit_localizer",
    "load_localization_data",
    "prepare_features",
    "score_localizer",
    "train_backbone",
]

AGNOSTIC = "action"  # the one label of class-agnostic scoring


@dataclass(frozen=True)
class LocalizationData:
    """A features folder split for fitting: training windows' videos, validation videos."""

    folder: Path
    labels: tuple[str, ...]  # the classes, sorted: a head's class index is its position
    train: tuple[FeatureVideo, ...]  # training videos, instances in feature steps
    val: tuple[VideoFeatures, ...]  # validation videos, instances in seconds
    width: int  # channels of a feature step

    @property
    def truth(self) -> list[Instance]:
        return [i for v in self.val for i in v.instances]


def train_backbone(
    backbone: str, data: str, *, epochs: int, cache_dir: Path, log: Callable[[str], None] | None
) -> Path:
    """Train the recognition spec ``backbone`` on ``data`` for ``epochs`` (seed 0) into
    ``cache_dir/backbones/`` and return its checkpoint; a second call returns the same file,
    and a run stopped part-way goes on from its last epoch.

    Raises:
        SpecError: a spec or data that cannot train; HarnessError: a run that did not finish.
    """
    from harness.errors import HarnessError
    from harness.train import Fidelity, TrainConfig, train

    digest = hashlib.sha1(json.dumps([backbone, data, epochs]).encode()).hexdigest()[:16]
    out = cache_dir / "backbones" / digest
    done = _finished(out, backbone)
    if done is not None:
        return done
    if log is not None:
        log(f"training the backbone {backbone} on {data} for {epochs} epochs (once)")
    result = train(backbone, data, config=TrainConfig(seed=0), fidelity=Fidelity(epochs=epochs),
                   out_dir=out, progress=False)  # fmt: skip
    if result.status != "complete" or result.checkpoint is None:
        raise HarnessError(f"the backbone {backbone} did not train: {result.reason}")
    if log is not None:
        log(f"backbone top-1 {result.top1:.3f} on {data}")
    return Path(result.checkpoint)


def _finished(out: Path, backbone: str) -> Path | None:
    """The checkpoint of a finished training of ``backbone`` in ``out`` (its result file
    names it, for the spec as it is now), else None: then it trains (or resumes)."""
    from pydantic import ValidationError

    from harness.spec import load_spec, spec_hash
    from harness.train import TrainResult

    try:
        result = TrainResult.model_validate_json((out / "result.json").read_text())
    except (OSError, ValueError, ValidationError):
        return None
    checkpoint = Path(result.checkpoint) if result.checkpoint else None
    fresh = result.status == "complete" and result.spec_hash == spec_hash(load_spec(backbone))
    return checkpoint if fresh and checkpoint is not None and checkpoint.is_file() else None


def prepare_features(
    data: str,
    spec: LocalizationSpec,
    *,
    cache_dir: Path,
    weights: str | Path | None = None,
    train: tuple[str, int] | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """The features folder of ``data`` for ``spec``: ``data`` itself when it is one (it has
    ``features.json``), else the features of untrimmed videos (``synthetic-untrimmed:tiny``,
    an exported folder) extracted by ``spec.input.backbone`` over ``input.window`` frames
    every ``input.stride``, at the backbone's clip size, into ``cache_dir/features/`` (kept:
    a second call, or a run after an interruption, extracts only what is missing).

    Args:
        weights: a ``harness train`` checkpoint of the backbone (None: its initialisation).
        train: (recognition data, epochs): train the backbone first (:func:`train_backbone`)
            and extract with its weights.

    Raises:
        SpecError: untrimmed videos but no ``input.backbone`` to extract with, or what
            :func:`~harness.localization.extract.extract_features` raises.
    """
    if (Path(data) / META_NAME).is_file():
        return Path(data)
    if spec.input.backbone is None:
        raise SpecError(
            f"'{data}' is not a features folder, and the spec names no input.backbone to "
            "extract features with (or write a folder with `harness features`)",
            path=("input", "backbone"),
        )
    from harness.localization.extract import extract_features
    from harness.spec import load_spec, realise

    size = realise(load_spec(spec.input.backbone)).clip.size
    if train is not None:
        weights = train_backbone(spec.input.backbone, train[0], epochs=train[1],
                                 cache_dir=cache_dir, log=log)  # fmt: skip
    weights = None if weights is None else Path(weights)
    if weights is not None and not weights.is_file():
        raise SpecError("no such checkpoint file", path=("backbone_weights",), file=str(weights))
    stamp = None if weights is None else (str(weights.resolve()), weights.stat().st_mtime_ns)
    setting = [data, spec.input.backbone, spec.input.window, spec.input.stride, size, stamp]
    digest = hashlib.sha1(json.dumps(setting, default=str).encode()).hexdigest()[:16]
    out = cache_dir / "features" / digest
    if out.is_dir() and not (out / META_NAME).exists():  # stopped before its first video
        shutil.rmtree(out)
    # NOTE: overwrite: the folder is ours; it holds another key only when the backbone's
    # YAML changed under the same name, and then its features are stale.
    summary = extract_features(spec.input.backbone, data, out, window=spec.input.window,
                               stride=spec.input.stride, size=size, weights=weights,
                               overwrite=True)  # fmt: skip
    if log is not None and summary.written:
        log(f"{len(summary.written)} videos of {data} extracted by {spec.input.backbone} "
            f"into {out} ({len(summary.skipped)} already there)")  # fmt: skip
    return out


def load_localization_data(folder: str | Path) -> LocalizationData:
    """The training and validation videos of a features folder (``harness features``).

    Raises:
        SpecError: the folder is not a features folder, a file of it is damaged, or a split
            has no video (or the validation split no action instance).
    """
    folder = Path(folder)
    if not (folder / META_NAME).is_file():
        raise SpecError(
            f"not a features folder (no {META_NAME}): write one with `harness features`",
            file=str(folder),
        )
    train, val = load_features(folder, "train"), load_features(folder, "val")
    labels = tuple(sorted({i.label for v in train for i in v.instances}))
    for split, videos in (("training", train), ("validation", val)):
        if not videos or not any(v.instances for v in videos):
            raise SpecError(f"the {split} videos have no action instance to learn or score",
                            file=str(folder / META_NAME))  # fmt: skip
    return LocalizationData(
        folder=folder,
        labels=labels,
        train=tuple(feature_video(v, labels) for v in train),
        val=tuple(val),
        width=train[0].features.shape[1],
    )


@dataclass(frozen=True)
class LocalizationResult:
    """What fitting a localizer gave."""

    status: Literal["complete"]
    average_mAP: float
    mAP_50: float
    mAP: tuple[float, ...]  # at each of the protocol's thresholds
    tiou_thresholds: tuple[float, ...]
    epochs: int  # epochs trained
    train_seconds: float
    eval_seconds: float
    history: tuple[dict[str, Any], ...] = field(default=())  # one row per epoch
    reason: str = ""

    def metrics(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in LOCALIZATION_METRICS}


def score_localizer(
    net: nn.Module, spec: LocalizationSpec, data: LocalizationData, protocol: str
) -> DetectionResult:
    """``net``'s detections on the validation videos, scored at ``protocol``'s thresholds
    (and at 0.5 where the protocol lacks it): class-agnostically for a proposal head."""
    was_training = net.training
    net.eval()
    agnostic = create_objective(spec, net).class_agnostic
    found: list[Detection] = []
    for video in data.val:
        rows = detect(net, spec, feature_video(video, data.labels))
        detections = detections_in_seconds(rows, video, data.labels)
        if agnostic:
            detections = [Detection(d.video, AGNOSTIC, d.start, d.end, d.score)
                          for d in detections]  # fmt: skip
        found.extend(detections)
    truth = data.truth
    if agnostic:
        truth = [Instance(i.video, AGNOSTIC, i.start, i.end) for i in truth]
    thresholds = tuple(sorted({*PROTOCOLS[protocol], 0.5}))
    net.train(was_training)
    return evaluate_detections(truth, found, thresholds)


def _metrics(result: DetectionResult, protocol: str) -> dict[str, Any]:
    wanted = PROTOCOLS[protocol]
    at = dict(zip(result.tiou_thresholds, result.mAP, strict=True))
    maps = tuple(at[t] for t in wanted)
    return {"average_mAP": sum(maps) / len(maps), "mAP_50": at[0.5], "mAP": maps}


def fit_localizer(
    spec: LocalizationSpec,
    data: LocalizationData,
    *,
    epochs: int,
    protocol: str = "activitynet",
    subset: float = 1.0,
    seed: int = 0,
    callback: Callable[[dict[str, Any]], None] | None = None,
    score_epochs: Collection[int] | None = None,
    **train: Any,
) -> LocalizationResult:
    """Train ``spec`` on ``data``'s training videos for ``epochs`` and score it after each.

    Args:
        protocol: ``activitynet`` or ``thumos14``: the thresholds of ``average_mAP``.
        subset: the fraction of the training videos used (the first ones, in name order).
        callback: called after each scored epoch with its row (``epoch``, the metrics,
            ``seconds`` and ``eval_seconds``); it may raise to stop the fit (a pruned trial).
        score_epochs: the epochs after which to score (None: every one); the last always.
        **train: :func:`~harness.localization.train.train_localizer`'s settings.
    """
    if protocol not in PROTOCOLS:
        raise SpecError(f"unknown protocol '{protocol}'; known: {', '.join(PROTOCOLS)}")
    spec = spec.model_copy(update={"classes": len(data.labels)})  # the data's classes
    videos = data.train[: max(1, math.ceil(subset * len(data.train)))]
    history: list[dict[str, Any]] = []
    clock = {"start": time.perf_counter(), "eval": 0.0}
    last: dict[str, Any] = {}

    def after_epoch(epoch: int, net: nn.Module) -> None:
        if score_epochs is not None and epoch not in score_epochs and epoch != epochs:
            return  # NOTE: scoring every video is slower than an epoch of training
        trained = time.perf_counter()
        scores = _metrics(score_localizer(net, spec, data, protocol), protocol)
        last.update(scores)
        clock["eval"] += time.perf_counter() - trained
        row = {
            "epoch": epoch,
            **{name: scores[name] for name in LOCALIZATION_METRICS},
            "seconds": trained - clock["start"],
            "eval_seconds": time.perf_counter() - trained,
        }
        history.append(row)
        clock["start"] = time.perf_counter()
        if callback is not None:
            callback(dict(row))

    train_localizer(spec, videos, epochs=epochs, seed=seed, callback=after_epoch, **train)
    return LocalizationResult(  # the network as trained: the last epoch's scores
        status="complete",
        average_mAP=last["average_mAP"],
        mAP_50=last["mAP_50"],
        mAP=last["mAP"],
        tiou_thresholds=PROTOCOLS[protocol],
        epochs=epochs,
        train_seconds=sum(r["seconds"] for r in history),
        eval_seconds=clock["eval"],
        history=tuple(history),
    )
