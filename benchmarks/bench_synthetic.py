"""Synthetic benchmark: a 2D network blind to time against a (2+1)D one, same budget.

Trains the zoo's ``tiny_c2d`` (temporal kernels of 1: its output does not depend on the
order of the frames) and ``tiny_r2plus1d`` (same widths and depths, (2+1)D convolutions)
on the built-in synthetic data set for the same number of epochs with the same settings,
and prints both accuracies: overall, and on the classes that come in time-reversal pairs
(move left / right, approach / recede, appear / disappear, clockwise / counter-clockwise,
...). Within a pair the frames of a clip have the same distribution, so the C2D network
cannot beat chance there: 50% on those classes if it tells the pairs apart perfectly. The
verdict asks the temporal network to beat it on the pair classes by ``--margin``.

The data: the ``tiny`` preset (eight classes, all in four time-reversal pairs; 16-frame
videos; 3,072 training and 256 validation videos), what ``harness train SPEC --data
synthetic:tiny`` reads with its default of 4 epochs. (The ``ci`` preset's 512 training
videos, sized for tests, are too few at four epochs for a clear margin.) The header of the
report prints the data spec that was used.

Usage::

    python benchmarks/bench_synthetic.py [--data synthetic:tiny] [--clips N] [--epochs 4]
                                         [--json]

``--clips`` sets the number of training videos (0: the preset's own).

Progress goes to stderr; the table (or ``--json``) to stdout. Exits 0 whatever the verdict.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from typing import Any

import numpy as np
import torch

from harness.data import load_data_spec, reversal_pairs
from harness.data.spec import SyntheticDataSpec
from harness.train import Fidelity, TrainConfig, TrainResult, train

SPECS = ("tiny_c2d", "tiny_r2plus1d")


def _pair_accuracy(result: TrainResult, classes: int) -> tuple[float, float]:
    """(top-1 on classes in time-reversal pairs, top-1 on the other classes)."""
    in_pairs = {c for pair in reversal_pairs(classes) for c in pair}
    accs = np.array(result.per_class_acc)
    paired = [accs[c] for c in range(classes) if c in in_pairs]
    others = [accs[c] for c in range(classes) if c not in in_pairs]
    return float(np.nanmean(paired)), float(np.nanmean(others)) if others else float("nan")


def _data(args: argparse.Namespace) -> SyntheticDataSpec:
    data = load_data_spec(args.data)
    if not isinstance(data, SyntheticDataSpec):
        raise SystemExit("bench_synthetic needs a synthetic data set")
    if args.clips:
        data = data.model_copy(update={"train_clips": args.clips})
    return data


def _run(spec: str, args: argparse.Namespace) -> dict[str, Any]:
    config = TrainConfig(
        batch_size=args.batch,
        lr=args.lr,
        seed=args.seed,
        num_workers=args.workers,
        device="cuda" if torch.cuda.is_available() and not args.cpu else "cpu",
    )
    data = _data(args)
    print(f"training {spec} for {args.epochs} epochs on {data} ...", file=sys.stderr)
    start = time.perf_counter()
    result = train(spec, data, config=config, fidelity=Fidelity(epochs=args.epochs), progress=True)
    paired, others = _pair_accuracy(result, data.classes)
    return {
        "spec": spec,
        "params": result.params,
        "top1": result.top1,
        "top5": result.top5,
        "pair_top1": paired,
        "other_top1": others,
        "chance": 1.0 / data.classes,
        "per_class_acc": dict(zip(result.classes, result.per_class_acc, strict=True)),
        "train_seconds": result.train_seconds,
        "wall_seconds": time.perf_counter() - start,
        "train_clips_per_second": result.train_clips_per_second,
        "history": [{k: row[k] for k in ("epoch", "train_loss", "top1")} for row in result.history],
    }


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def _table(rows: list[dict[str, Any]], verdict: dict[str, Any]) -> str:
    lines = [
        f"{'spec':<15}{'params':>9}{'top-1':>8}{'top-5':>8}{'pair top-1':>12}"
        f"{'other top-1':>13}{'train s':>9}{'clips/s':>9}"
    ]
    for r in rows:
        lines.append(
            f"{r['spec']:<15}{r['params']:>9,}{r['top1']:>8.3f}{r['top5']:>8.3f}"
            f"{r['pair_top1']:>12.3f}{_fmt(r['other_top1']):>13}{r['train_seconds']:>9.1f}"
            f"{r['train_clips_per_second']:>9.1f}"
        )
    lines.append("")
    lines.append("per-class top-1:")
    names = list(rows[0]["per_class_acc"])
    lines.append(f"{'class':<22}" + "".join(f"{r['spec']:>15}" for r in rows))
    for name in names:
        lines.append(f"{name:<22}" + "".join(f"{r['per_class_acc'][name]:>15.3f}" for r in rows))
    lines.append("")
    lines.append(
        f"pair-class top-1: {verdict['temporal']:.3f} ({verdict['temporal_spec']}) vs "
        f"{verdict['blind']:.3f} ({verdict['blind_spec']}); margin {verdict['gap']:+.3f} "
        f"(target >= {verdict['target']:.2f}): {'PASS' if verdict['pass'] else 'FAIL'}"
    )
    return "\n".join(lines)


def _table_rows(rows: list[dict[str, Any]], verdict: dict[str, Any]) -> list[list[Any]]:
    """``[measure, value, target, ok]`` rows for ``run_all.py``."""
    table: list[list[Any]] = [
        [
            f"pair-class top-1, {r['spec']}",
            f"{r['pair_top1']:.3f} (top-1 {r['top1']:.3f})",
            "",
            None,
        ]
        for r in rows
    ]
    table.append(
        [
            f"pair-class margin, {verdict['temporal_spec']} - {verdict['blind_spec']}",
            f"{verdict['gap']:+.3f}",
            f">= {verdict['target']:.2f}",
            verdict["pass"],
        ]
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="synthetic:tiny")
    parser.add_argument("--clips", type=int, default=0, help="training videos (0: the preset's)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=TrainConfig().batch_size)
    parser.add_argument("--lr", type=float, default=TrainConfig().lr)
    parser.add_argument("--workers", type=int, default=None, help="loader processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--margin", type=float, default=0.2, help="required pair-class gap")
    parser.add_argument("--cpu", action="store_true", help="stay on the CPU even with a GPU")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [_run(spec, args) for spec in SPECS]
    blind, temporal = rows
    gap = temporal["pair_top1"] - blind["pair_top1"]
    verdict = {
        "blind_spec": blind["spec"],
        "temporal_spec": temporal["spec"],
        "blind": blind["pair_top1"],
        "temporal": temporal["pair_top1"],
        "gap": gap,
        "target": args.margin,
        "pass": gap >= args.margin,
    }
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0],
    }
    if args.json:
        table = _table_rows(rows, verdict)
        print(json.dumps({"runs": rows, "verdict": verdict, "machine": machine, "rows": table}))
    else:
        print(f"data {args.data} with train_clips={_data(args).train_clips}: {_data(args)!r}")
        print(f"{args.epochs} epochs, batch {args.batch}, lr {args.lr}, seed {args.seed}")
        print(f"machine: {machine}")
        print(_table(rows, verdict))


if __name__ == "__main__":
    main()
