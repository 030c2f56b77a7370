"""Activation checkpointing benchmark: training memory and FLOPs with and without it.

Target (issue 17): R(2+1)D-18 at 16x112x112, batch 8, every stage checkpointed: the
simulated and the profiled training-step memory, with and without checkpointing, and their
ratio; checkpointed memory well below plain.

For each setting the step is simulated on meta tensors (the pre-check, what a search's
budget sees) and run for real on the CPU under ``torch.profiler`` (``measure_train_memory``:
its allocations replayed; the peak includes what CPU kernels allocate inside themselves,
which the simulation leaves out). Printed side by side: the peak, the activations saved
for backward, training GFLOPs per clip (forward, a backward of twice it, and what
checkpointing recomputes), and the wall time of the profiled step.

Usage::

    python benchmarks/bench_checkpoint.py [--spec r2plus1d_18] [--frames 16] [--size 112]
        [--batch 8] [--quick] [--json]

``--quick`` measures at 8x56 (seconds instead of minutes). The script exits 0 whatever the
verdict; progress goes to stderr, the table (and ``--json`` figures) to stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from _common import log, machine_info, verdict

from harness.compiler import build_model
from harness.measure import MIB, measure_train_memory, precheck
from harness.spec import load_spec


def _one(name: str, frames: int, size: int, batch: int, checkpoint: bool) -> dict[str, Any]:
    spec = load_spec(name, activation_checkpoint=checkpoint)
    simulated = precheck(spec, frames=frames, size=size, batch=batch)
    model = build_model(spec, frames=frames, size=size)
    shape = model.plan.input_shape
    log(f"{name} {'checkpointed' if checkpoint else 'plain'}: profiling a real step ...")
    start = time.perf_counter()
    measured = measure_train_memory(model, shape, batch=batch)
    seconds = time.perf_counter() - start
    assert simulated.train_memory.peak_bytes is not None and measured.peak_bytes is not None
    return {
        "checkpoint": checkpoint,
        "simulated_peak_mib": simulated.train_memory.peak_bytes / MIB,
        "profiled_peak_mib": measured.peak_bytes / MIB,
        "simulated_saved_mib": simulated.train_memory.saved_bytes / MIB,
        "profiled_saved_mib": measured.saved_bytes / MIB,
        "train_gflops": simulated.train_flops / 1e9,
        "profiled_seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="r2plus1d_18")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="8x56 clips")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    frames, size = (8, 56) if args.quick else (args.frames, args.size)
    rows = [_one(args.spec, frames, size, args.batch, ck) for ck in (False, True)]
    plain, checked = rows
    ratios = {
        key: checked[key] / plain[key]
        for key in ("simulated_peak_mib", "profiled_peak_mib", "simulated_saved_mib",
                    "train_gflops", "profiled_seconds")
    }  # fmt: skip
    ok = ratios["profiled_peak_mib"] < 0.75 and ratios["simulated_peak_mib"] < 0.75
    print(f"{args.spec} {frames}x{size}x{size}, batch {args.batch}, sgd, fp32, cpu")
    header = ("", "peak sim MiB", "peak prof MiB", "saved sim", "saved prof", "train GFLOPs",
              "step s")  # fmt: skip
    print("".join(f"{h:>14}" for h in header))
    for row in rows:
        cells = [
            "checkpointed" if row["checkpoint"] else "plain",
            *(f"{row[k]:,.1f}" for k in ("simulated_peak_mib", "profiled_peak_mib",
                                           "simulated_saved_mib", "profiled_saved_mib")),
            f"{row['train_gflops']:.2f}",
            f"{row['profiled_seconds']:.1f}",
        ]  # fmt: skip
        print("".join(f"{c:>14}" for c in cells))
    print(
        "checkpointed / plain: peak simulated {simulated_peak_mib:.2f}x, profiled "
        "{profiled_peak_mib:.2f}x; saved activations {simulated_saved_mib:.2f}x; training "
        "GFLOPs {train_gflops:.2f}x; profiled step time {profiled_seconds:.2f}x".format(**ratios)
    )
    for row in rows:
        name = "checkpointed" if row["checkpoint"] else "plain"
        share = row["simulated_peak_mib"] / row["profiled_peak_mib"]
        print(f"{name}: simulated / profiled peak {share:.3f}")
    print(f"checkpointed peak well below plain (< 0.75x, both methods): {verdict(ok)}")
    if args.json:
        where = f"{args.spec} {frames}x{size} b{args.batch}"
        table = [
            [f"{where}, peak checkpointed / plain, simulated",
             f"{ratios['simulated_peak_mib']:.2f}x", "< 0.75",
             ratios["simulated_peak_mib"] < 0.75],
            [f"{where}, peak checkpointed / plain, profiled",
             f"{ratios['profiled_peak_mib']:.2f}x", "< 0.75",
             ratios["profiled_peak_mib"] < 0.75],
            [f"{where}, saved activations checkpointed / plain",
             f"{ratios['simulated_saved_mib']:.2f}x", "", None],
            [f"{where}, training GFLOPs checkpointed / plain",
             f"{ratios['train_gflops']:.2f}x", "", None],
        ]  # fmt: skip
        figures = {"rows": table, "steps": rows, "ratios": ratios, "machine": machine_info()}
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
