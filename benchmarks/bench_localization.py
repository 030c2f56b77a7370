"""Localization benchmark: detectors trained on the built-in untrimmed benchmark's features.

Targets (issue 18): a trained head's average mAP well above a baseline that predicts one
segment per video of the mean duration, and a temporal-pyramid head above a single-scale
one at equal cost.

The run, end to end on this machine:

1. a recognition backbone (``--backbone``, default ``tiny_r2plus1d``) trained on the
   recognition benchmark (``synthetic:tiny``, the same classes) for ``--backbone-epochs``;
2. its pooled features extracted over the untrimmed videos (``--data``, default
   ``synthetic-untrimmed:small``): windows of 8 frames every 4, one step each;
3. on the training videos' features: an anchor-free detector on a 4-level convolutional
   pyramid, a single-level one widened to about the same GFLOPs per window, an
   ActionFormer-style local-attention pyramid, and a BMN proposal network;
4. on the validation videos: mAP at ActivityNet's thresholds (0.50:0.05:0.95) and at
   THUMOS14's (0.3:0.1:0.7), and AR@AN for BMN's class-agnostic proposals. The baseline
   predicts, in every video, one segment of the training set's mean duration centred in
   the video for each class, scored by the class's share of the training instances.

Usage::

    python benchmarks/bench_localization.py [--quick] [--json] [--epochs 30]

``--quick`` uses the tiny presets (a minute). Exits 0 whatever the verdicts; progress on
stderr, the table (and ``--json`` figures) on stdout.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from _common import log, machine_info, verdict

from harness.localization import (
    PROTOCOLS,
    Detection,
    Instance,
    average_recall,
    evaluate_detections,
)
from harness.localization.costs import count_localizer
from harness.localization.extract import extract_features
from harness.localization.features import VideoFeatures, load_features
from harness.localization.train import (
    detect,
    detections_in_seconds,
    feature_video,
    train_localizer,
)
from harness.spec.localization import LocalizationSpec
from harness.train import Fidelity, TrainConfig, train


def _spec(name: str, width_in: int, classes: int, steps: int, **parts: Any) -> LocalizationSpec:
    return LocalizationSpec.model_validate(
        {"name": name, "input": {"width": width_in, "steps": steps}, "classes": classes, **parts}
    )


def _pyramid(width_in: int, classes: int, steps: int, width: int, levels: int,
             mixer: str = "conv") -> LocalizationSpec:  # fmt: skip
    neck = {"type": "pyramid", "width": width, "levels": levels, "depth": 2, "mixer": mixer,
            "window": 9, "heads": 4}  # fmt: skip
    head = {"type": "anchor_free", "width": width, "depth": 2}
    return _spec(f"{mixer}_{levels}_{width}", width_in, classes, steps, neck=neck, head=head)


def _equal_cost_single(width_in: int, classes: int, steps: int, target: int) -> LocalizationSpec:
    """The single-level conv detector whose GFLOPs per window are closest to ``target``."""
    candidates = [_pyramid(width_in, classes, steps, w, 1) for w in range(16, 513, 8)]
    return min(candidates, key=lambda s: abs(count_localizer(s).flops - target))


def _baseline(train_videos: list[VideoFeatures], val: list[VideoFeatures]) -> list[Detection]:
    instances = [i for v in train_videos for i in v.instances]
    mean = sum(i.end - i.start for i in instances) / len(instances)
    share = Counter(i.label for i in instances)
    out = []
    for video in val:
        middle = video.offset + (len(video.features) - 1) / video.rate / 2
        for label, count in share.items():
            out.append(Detection(video.video, label, middle - mean / 2, middle + mean / 2,
                                 count / len(instances)))  # fmt: skip
    return out


def _evaluate(truth: list[Instance], found: list[Detection]) -> dict[str, float]:
    anet = evaluate_detections(truth, found, PROTOCOLS["activitynet"])
    thumos = evaluate_detections(truth, found, PROTOCOLS["thumos14"])
    return {"mAP@0.5": anet.mAP[0], "average_mAP": anet.average_mAP,
            "thumos14_average_mAP": thumos.average_mAP}  # fmt: skip


def _features(args: argparse.Namespace, work: Path) -> Path:
    log(f"training the backbone {args.backbone} on {args.recognition} ...")
    config = TrainConfig(num_workers=0, device="cpu", seed=0)
    result = train(args.backbone, args.recognition, config=config,
                   fidelity=Fidelity(epochs=args.backbone_epochs), out_dir=work / "backbone",
                   progress=False)  # fmt: skip
    log(f"backbone top-1 {result.top1:.3f}; extracting features of {args.data} ...")
    assert result.checkpoint is not None
    out = work / "features"
    extract_features(args.backbone, args.data, out, window=8, stride=4, size=32,
                     weights=Path(result.checkpoint))  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic-untrimmed:small")
    parser.add_argument("--recognition", default="synthetic:tiny")
    parser.add_argument("--backbone", default="tiny_r2plus1d")
    parser.add_argument("--backbone-epochs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=64, help="feature steps per window")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--work", type=Path, help="keep the backbone and features here (a rerun reuses them)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.data, args.backbone_epochs, args.epochs = "synthetic-untrimmed:tiny", 1, 10
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="bench_localization.") as tmp:
        folder = _features(args, args.work or Path(tmp))
        train_set, val_set = load_features(folder, "train"), load_features(folder, "val")
    labels = sorted({i.label for v in train_set for i in v.instances})
    width_in = train_set[0].features.shape[1]
    truth = [i for v in val_set for i in v.instances]
    train_videos = [feature_video(v, labels) for v in train_set]
    classes, steps = len(labels), args.steps
    pyramid = _pyramid(width_in, classes, steps, 128, 4)
    specs = [
        pyramid,
        _equal_cost_single(width_in, classes, steps, count_localizer(pyramid).flops),
        _pyramid(width_in, classes, steps, 128, 4, "attention"),
    ]
    rows: list[dict[str, Any]] = [
        {
            "model": "baseline: one mean-length segment per class",
            "gflops": 0.0,
            "params": 0,
            **_evaluate(truth, _baseline(train_set, val_set)),
            "train_s": 0.0,
        }
    ]
    for spec in specs:
        log(f"training {spec.name} ...")
        start = time.perf_counter()
        net = train_localizer(spec, train_videos, epochs=args.epochs)
        seconds = time.perf_counter() - start
        found = [d for v in val_set
                 for d in detections_in_seconds(detect(net, spec, feature_video(v, labels)), v,
                                                labels)]  # fmt: skip
        costs = count_localizer(spec)
        rows.append({"model": spec.name, "gflops": costs.gflops, "params": costs.params,
                     **_evaluate(truth, found), "train_s": seconds})  # fmt: skip
    longest = max(i.end - i.start for v in train_set for i in v.instances)
    durations = min(steps, int(longest * train_set[0].rate) + 4)
    bmn_head = {"type": "bmn", "width": 64, "width_3d": 64, "width_2d": 32, "samples": 8,
                "max_duration": durations}  # fmt: skip
    bmn = _spec("bmn", width_in, 1, steps, head=bmn_head)
    log("training bmn ...")
    net = train_localizer(bmn, train_videos, epochs=args.epochs)
    proposals = [d for v in val_set
                 for d in detections_in_seconds(detect(net, bmn, feature_video(v, labels)), v,
                                                ["proposal"])]  # fmt: skip
    recall = average_recall(truth, proposals, proposals_per_video=(1, 5, 10, 50, 100))
    print(f"{args.data}: {len(train_set)} training / {len(val_set)} validation videos, "
          f"{len(labels)} classes, {width_in}-d features, windows of {steps} steps")  # fmt: skip
    print(f"{'model':<46}{'GFLOPs':>9}{'params':>10}{'mAP@0.5':>9}{'avg mAP':>9}"
          f"{'THUMOS':>9}{'train s':>9}")  # fmt: skip
    for r in rows:
        print(
            f"{r['model']:<46}{r['gflops']:>9.4f}{r['params']:>10,}{r['mAP@0.5']:>9.3f}"
            f"{r['average_mAP']:>9.3f}{r['thumos14_average_mAP']:>9.3f}{r['train_s']:>9.1f}"
        )
    print("bmn proposals: " + ", ".join(f"AR@{k} {v:.3f}" for k, v in recall.items()))
    base, pyr, single = rows[0], rows[1], rows[2]
    above = pyr["average_mAP"] > 2 * base["average_mAP"] + 0.1
    scale = pyr["average_mAP"] > single["average_mAP"]
    print(f"pyramid average mAP well above the baseline (> 2x + 0.1): {verdict(above)}")
    print(f"pyramid above single-scale at equal cost ({pyr['gflops']:.4f} vs "
          f"{single['gflops']:.4f} GFLOPs): {verdict(scale)}")  # fmt: skip
    if args.json:
        table = [
            ["average mAP, pyramid / baseline", f"{pyr['average_mAP']:.3f} / "
             f"{base['average_mAP']:.3f}", "> 2x + 0.1", above],
            ["average mAP, pyramid / single-scale at equal cost", f"{pyr['average_mAP']:.3f} / "
             f"{single['average_mAP']:.3f}", ">", scale],
        ]  # fmt: skip
        print(json.dumps({"rows": table, "models": rows, "bmn_ar": recall,
                          "machine": machine_info()}))  # fmt: skip


if __name__ == "__main__":
    main()
