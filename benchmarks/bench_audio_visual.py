"""Audio-visual benchmark: a video-only, an audio-only and a fused network at equal epochs.

Target (issue 19): on the built-in audio-visual benchmark (``synthetic-av``), where half the
class pairs differ only in their sound and half only in their motion, the video-only and
the audio-only reference models each stay near their ceiling (0.75: they tell the pairs
apart and guess within half of them) while the fused model clearly beats both.

The three zoo specs share their parts: ``tiny_video`` (an R(2+1)D pathway on 8x16x16
clips), ``tiny_audio`` (a 2D ResNet on a 64-frame, 32-mel log-mel spectrogram) and
``tiny_av`` (both, audio -> video laterals after stages 0 and 1, concatenated for the
head); a fourth row is ``tiny_av`` without its laterals (only the head fuses). Each
trains with the same recipe for ``--epochs`` on ``--data`` and is evaluated on its
validation split (one view).

Usage::

    python benchmarks/bench_audio_visual.py [--quick] [--json] [--epochs 4]

``--quick``: the ``ci`` preset and one epoch (a minute). Exits 0 whatever the verdicts;
progress on stderr, the table (and ``--json`` figures) on stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from _common import log, machine_info, verdict

from harness.data import load_data_spec
from harness.data.synthetic_av import audio_visual_pairs
from harness.measure import precheck
from harness.spec import load_spec
from harness.train import Fidelity, TrainConfig, train

# (spec, overrides, role); the last: tiny_av without its laterals (the head's fusion only)
MODELS = (
    ("tiny_video", {}, "video only"),
    ("tiny_audio", {}, "audio only"),
    ("tiny_av", {}, "fused"),
    ("tiny_av", {"laterals": []}, "late only"),
)
CEILING = 0.75  # one stream alone: every pair told apart, half of each pair's videos right


def _run(name: str, changes: dict, data: str, epochs: int, seed: int) -> dict[str, Any]:
    config = TrainConfig(num_workers=0, device="cpu", batch_size=16, lr=0.005,
                         warmup_epochs=0.3, seed=seed)  # fmt: skip
    spec = load_spec(name, **changes)
    start = time.perf_counter()
    result = train(spec, data, config=config, fidelity=Fidelity(epochs=epochs), progress=False)
    costs = precheck(spec)
    return {
        "spec": name + ("" if not changes else " -laterals"),
        "top1": result.top1,
        "per_epoch_top1": [round(float(row["top1"]), 4) for row in result.history],
        "params": costs.params,
        "gflops": costs.gflops,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="synthetic-av:tiny")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.data, args.epochs = "synthetic-av:ci", 1
    spec = load_data_spec(args.data)
    pairs = len(audio_visual_pairs(spec.classes))
    info = machine_info()
    rows = []
    for name, changes, role in MODELS:
        log(f"training {name} ({role}) on {args.data} for {args.epochs} epochs ...")
        row = {**_run(name, changes, args.data, args.epochs, args.seed), "role": role}
        log(f"  top-1 {row['top1']:.3f} in {row['seconds']:.0f} s")
        rows.append(row)
    video, audio, fused, late = (r["top1"] for r in rows)
    print(f"{args.data}: {spec.classes} classes in {pairs} pairs (half differ only in sound, "
          f"half only in motion); {args.epochs} epochs each; chance {1 / spec.classes:.3f}, "
          f"one stream's ceiling {CEILING}")  # fmt: skip
    print(f"{'model':<20} {'inputs':<11} {'params':>8} {'GFLOPs':>8} {'top-1':>6} {'s':>6}")
    for r in rows:
        print(f"{r['spec']:<20} {r['role']:<11} {r['params']:>8,} {r['gflops']:>8.4f} "
              f"{r['top1']:>6.3f} {r['seconds']:>6.0f}")  # fmt: skip
    margin = 0.1
    checks = {
        "video only at most its ceiling": video <= CEILING + 0.02,
        "audio only at most its ceiling": audio <= CEILING + 0.02,
        f"fused beats both by {margin}": fused >= max(video, audio) + margin,
        f"late fusion alone beats both by {margin}": late >= max(video, audio) + margin,
    }
    for name, ok in checks.items():
        print(f"{verdict(ok)}  {name}")
    if args.json:
        ok = list(checks.values())
        table = [
            ["video-only top-1 (tiny_video)", f"{video:.3f}", f"<= {CEILING + 0.02}", ok[0]],
            ["audio-only top-1 (tiny_audio)", f"{audio:.3f}", f"<= {CEILING + 0.02}", ok[1]],
            ["fused top-1 (tiny_av)", f"{fused:.3f}", f">= best single + {margin}", ok[2]],
            ["late-fusion top-1 (no laterals)", f"{late:.3f}", f">= best single + {margin}",
             ok[3]],
        ]  # fmt: skip
        figures = {"data": args.data, "epochs": args.epochs, "ceiling": CEILING,
                   "models": rows, "checks": checks, "rows": table, "machine": info}  # fmt: skip
        print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
