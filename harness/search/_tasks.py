"""What differs between a recognition trial and a localization trial.

A trial samples, costs, judges and tells the same way for both tasks
(:mod:`harness.search._evaluate`); two things depend on what the candidate is:

- its identity columns (hash, family, the protocol its metrics compare within, its YAML);
- how it trains and what that measures: a recognizer by :func:`harness.train.train`
  (``top1``, ``top5``, ``mean_class_acc``), a localizer by
  :func:`harness.localization.fit.fit_localizer` on the space's features (``average_mAP``,
  ``mAP_50``), both reporting to the same callback (pruning, halving): a recognizer every
  epoch, a localizer after the epochs the search reads (scoring it is slower than an epoch).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from harness.localization.costs import localizer_hash
from harness.search._halving import rungs
from harness.search.space import LOCALIZATION_TRAIN, METRICS, SearchSpace
from harness.spec import ModelSpec, realise, spec_hash
from harness.spec.localization import LocalizationSpec

if TYPE_CHECKING:
    from harness.localization.fit import LocalizationData
    from harness.train.config import TrainConfig

__all__ = [
    "Candidate",
    "Outcome",
    "describe_candidate",
    "features_folder",
    "load_space_data",
    "protocol_key",
    "train_candidate",
]

Candidate = ModelSpec | LocalizationSpec
EpochCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Outcome:
    """What training a candidate gave, for either task."""

    status: str  # complete, or why it stopped (nan: a non-finite loss)
    reason: str
    metrics: dict[str, float]  # the task's metrics (SearchSpace.metrics())
    epochs: int
    train_seconds: float
    eval_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: str | None = None


def protocol_key(space: SearchSpace, spec: Candidate) -> str:
    """Data, input and fidelity: metrics compare only within one protocol."""
    f = space.fidelity
    if isinstance(spec, LocalizationSpec):
        return (
            f"{space.data}|{space.protocol}|features={_features_origin(space)}"
            f"|steps={spec.input.steps}|epochs={f.epochs}|subset={f.subset}"
        )
    real = realise(spec)
    frames = f.frames or real.clip.frames
    size = f.size or real.clip.size
    return f"{space.data}|frames={frames}|size={size}|views=1|epochs={f.epochs}|subset={f.subset}"


def _features_origin(space: SearchSpace) -> str:
    """Where the features come from: a features folder as given, or the backbone that
    extracts them (trained first, a checkpoint, or its initialisation)."""
    from harness.localization.features import META_NAME

    if (Path(space.data) / META_NAME).is_file():
        return "folder"
    if space.backbone_training is not None:
        t = space.backbone_training
        return f"trained:{t.data}:{t.epochs}"
    if space.backbone_weights is not None:
        return f"weights:{Path(space.backbone_weights).name}"
    return "init"


def _block_types(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            blocks = [value] if key == "block" else (value or []) if key == "blocks" else []
            out.update(b["type"] for b in blocks if isinstance(b, dict) and "type" in b)
            _block_types(value, out)
    elif isinstance(node, list):
        for item in node:
            _block_types(item, out)
    return out


def _family(spec: Candidate) -> str:
    """Base name and its kinds: block types over every pathway (``tiny_c2d:basic+r2plus1d``),
    or a localizer's neck mixer and head (``pyramid_conv:attention+anchor_free``)."""
    if isinstance(spec, LocalizationSpec):
        kinds = ([spec.neck.mixer] if spec.neck else []) + [spec.head.type]
        return f"{spec.name}:{'+'.join(kinds)}"
    types = sorted(_block_types(spec.architecture(), set()))
    return f"{spec.name}:{'+'.join(types)}"


def describe_candidate(space: SearchSpace, spec: Candidate) -> dict[str, Any]:
    """The results columns that name a candidate and the protocol it is measured under."""
    if isinstance(spec, LocalizationSpec):
        dumped = spec.model_dump(mode="json", exclude={"name", "description"})
        return {
            "spec_hash": localizer_hash(spec),
            "name": spec.name,
            "family": _family(spec),
            "protocol": protocol_key(space, spec),
            "spec_yaml": yaml.safe_dump(dumped, sort_keys=False),
            "activation_checkpoint": "",
        }
    real = realise(spec)
    return {
        "spec_hash": spec_hash(spec),
        "name": spec.name,
        "family": _family(spec),
        "mixes_time": real.mixes_time(),
        "protocol": protocol_key(space, spec),
        "fidelity_frames": space.fidelity.frames or real.clip.frames,
        "fidelity_size": space.fidelity.size or real.clip.size,
        "spec_yaml": yaml.safe_dump(
            real.model_dump(mode="json", exclude={"published"}), sort_keys=False
        ),
        "activation_checkpoint": ",".join(str(i) for i in sorted(spec.checkpointed_stages())),
    }


_FOLDERS: dict[str, Path] = {}  # features folders prepared in this process, by setting


def features_folder(space: SearchSpace, log: Callable[[str], None] | None = None) -> Path:
    """The features folder of a localization space's data (extracted once, then cached;
    checked once per process: a trial after the first does not build the backbone)."""
    from harness.localization.costs import load_localization_spec
    from harness.localization.features import META_NAME
    from harness.localization.fit import prepare_features
    from harness.measure.cache import default_cache_dir

    training = space.backbone_training
    setting = [space.data, space.base, space.backbone_weights, str(default_cache_dir())]
    key = json.dumps([*setting, training.model_dump() if training else None])
    known = _FOLDERS.get(key)
    if known is not None and (known / META_NAME).is_file():
        return known
    base = load_localization_spec(space.base)
    _FOLDERS[key] = folder = prepare_features(
        space.data, base, cache_dir=default_cache_dir(), weights=space.backbone_weights,
        train=None if training is None else (training.data, training.epochs), log=log,
    )  # fmt: skip
    return folder


@functools.cache
def _localization_data(folder: Path, stamp: int) -> LocalizationData:
    """The features of ``folder`` (``stamp``: its features.json's mtime), read once per
    process and trial after trial."""
    from harness.localization.fit import load_localization_data

    return load_localization_data(folder)


def load_space_data(
    space: SearchSpace, log: Callable[[str], None] | None = None
) -> LocalizationData:
    """A localization space's training and validation videos, as features."""
    from harness.localization.features import META_NAME

    folder = features_folder(space, log)
    return _localization_data(folder, (folder / META_NAME).stat().st_mtime_ns)


def train_candidate(
    space: SearchSpace,
    spec: Candidate,
    config: TrainConfig,
    out_dir: Path,
    callback: EpochCallback,
) -> Outcome:
    """Train ``spec`` at the space's fidelity, reporting every epoch's row to ``callback``."""
    if isinstance(spec, LocalizationSpec):
        return _fit_localizer(space, spec, config, callback)
    from harness.train import Fidelity, train

    f = space.fidelity
    fidelity = Fidelity(epochs=f.epochs, subset=f.subset, frames=f.frames, size=f.size)
    # NOTE: the run folder belongs to the study: a checkpoint of another run there (the
    # train settings of the space changed) is set aside, and this one starts afresh.
    result = train(spec, space.data, config=config, fidelity=fidelity, out_dir=out_dir,
                   resume="replace", progress=False, callback=callback)  # fmt: skip
    return Outcome(
        status=result.status,
        reason=result.reason,
        metrics={name: float(getattr(result, name)) for name in space.metrics()},
        epochs=result.epochs,
        train_seconds=float(result.train_seconds),
        eval_seconds=float(result.eval_seconds),
        history=list(result.history),
        checkpoint=str(result.checkpoint) if result.checkpoint else None,
    )


def _scored_epochs(space: SearchSpace) -> set[int] | None:
    """The epochs whose scores the search reads: successive halving's rungs; every epoch
    for Optuna's pruner (a single metric objective); else the last only (None: every)."""
    epochs = space.fidelity.epochs
    if space.halving is not None:
        return {*rungs(space.halving.min_epochs, space.halving.eta, epochs), epochs}
    metric_only = len(space.objectives) == 1 and next(iter(space.objectives)) in METRICS
    return None if metric_only and space.pruner != "none" else {epochs}


def _fit_localizer(
    space: SearchSpace, spec: LocalizationSpec, config: TrainConfig, callback: EpochCallback
) -> Outcome:
    """Fit on the features; a localizer trains in seconds, so an interrupted one is trained
    again from the start (with the same seed: the same result), not resumed."""
    from harness.localization.fit import fit_localizer

    data = load_space_data(space)
    result = fit_localizer(
        spec, data, epochs=space.fidelity.epochs, protocol=space.protocol,
        subset=space.fidelity.subset, seed=config.seed, callback=callback,
        score_epochs=_scored_epochs(space), **config.model_dump(include=set(LOCALIZATION_TRAIN)),
    )  # fmt: skip
    return Outcome(
        status=result.status,
        reason=result.reason,
        metrics=result.metrics(),
        epochs=result.epochs,
        train_seconds=result.train_seconds,
        eval_seconds=result.eval_seconds,
        history=list(result.history),
    )
