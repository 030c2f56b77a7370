"""Pre-check benchmark: the budget pre-check against fvcore, and simulated against real memory.

Targets (from the issue):

    harness.measure.precheck("x3d_m"), 16x224       < 50 ms   (median wall-clock)
    fvcore (build + count_flops) / pre-check        >= 20x
    GFLOPs and params, pre-check vs fvcore          equal (within 1%)

Part 1 times the pre-check of X3D-M at its 16x224x224 clip (compile on the meta device,
simulate one training step: FLOPs, parameters, peak memory at ``--batch``) against what
``harness compile`` runs to count a spec with fvcore (build the model, then ``count_flops``
on it), and compares their figures. Both are timed after one untimed call, in interleaved
rounds; reported are the median and the interquartile range of wall-clock milliseconds,
and process CPU time beside them (on a machine shared with other work it is less disturbed
by descheduling). The ratio of the trace alone is printed beside the target's.

Part 1b is what a search sees: the pre-check of ``--candidates`` distinct candidates drawn
at random from ``search_spaces/x3d_expansion.yaml`` (X3D factors over X2D, from a fraction
of X3D-M's cost to several times it), each timed once, with their median GFLOPs.

Part 2 compares the simulated training-step peak (``estimate_train_memory``) with the peak
measured by replaying the allocations of a real CPU step under ``torch.profiler``
(``measure_train_memory``), for a few zoo models at small clips. The simulation leaves out
what CPU kernels allocate inside themselves (im2col buffers, contiguous copies), so it is
expected at or below the measurement.

Usage::

    python benchmarks/bench_precheck.py [--quick] [--json] [--reps N] [--batch B]

The script exits 0 whatever the verdicts; progress goes to stderr, the table (and
``--json`` figures) to stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from _common import log, machine_info, verdict

import harness
from harness.measure import (
    MIB,
    count_flops,
    count_params,
    estimate_train_memory,
    example_input,
    measure_train_memory,
    precheck,
)
from harness.measure._fold import Folding, create_meta_block
from harness.measure._policy import MetaBuild
from harness.search import load_space
from harness.spec import ModelSpec, load_spec

SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "x3d_expansion.yaml"

PRECHECK_TARGET_MS = 50.0
RATIO_TARGET = 20.0
AGREEMENT_TARGET = 0.01  # relative difference of GFLOPs and params

# (zoo name, frames, size, batch) for the memory comparison: small clips, quick CPU steps.
MEMORY_CASES = [
    ("tiny_r2plus1d", 8, 32, 8),
    ("r2plus1d_18", 8, 64, 2),
    ("mvit_b_16x4", 8, 64, 2),
]


def _timed(call: Callable[[], Any], reps: int) -> tuple[Any, dict[str, float]]:
    """One untimed call, then ``reps`` timed ones: wall and CPU milliseconds."""
    result = call()
    wall, cpu = [], []
    for _ in range(reps):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = call()
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return result, _summary(wall, cpu)


def _summary(wall: list[float], cpu: list[float]) -> dict[str, float]:
    q1, _, q3 = statistics.quantiles(wall, n=4, method="inclusive") if len(wall) > 1 else [0] * 3
    return {
        "median_ms": statistics.median(wall),
        "iqr_ms": q3 - q1,
        "min_ms": min(wall),
        "cpu_median_ms": statistics.median(cpu),
        "n": len(wall),
    }


def _relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else float(a != b)


def bench_precheck(name: str, *, batch: int, reps: int, fvcore_reps: int) -> dict[str, Any]:
    """Pre-check vs fvcore on ``name`` at its own clip, timed in interleaved rounds.

    The fvcore side is what ``harness compile`` runs for a spec: build the model, then
    trace it (``count_flops``). Each round times one of those and a share of the pre-checks,
    so that both see the same machine when its speed drifts.
    """
    log(f"  pre-check of {name} (batch {batch}) and fvcore, {fvcore_reps} rounds")
    spec = load_spec(name)
    check = precheck(spec, batch=batch)
    model = harness.build_model(spec)
    x = example_input(model.plan.input_shape)
    flops = count_flops(model, x)  # untimed: fvcore's first trace warms up the tracer
    times: dict[str, tuple[list[float], list[float]]] = {
        part: ([], []) for part in ("precheck", "build", "trace")
    }
    per_round = -(-reps // fvcore_reps)
    for _ in range(fvcore_reps):
        model = _clocked(lambda: harness.build_model(spec), times["build"])
        flops = _clocked(lambda m=model: count_flops(m, x), times["trace"])
        for _ in range(per_round):
            _clocked(lambda: precheck(spec, batch=batch), times["precheck"])
    pre, build, trace = (_summary(*times[part]) for part in ("precheck", "build", "trace"))
    spec_to_count = [b + t for b, t in zip(times["build"][0], times["trace"][0], strict=True)]
    spec_to_count_cpu = [b + t for b, t in zip(times["build"][1], times["trace"][1], strict=True)]
    fvcore = _summary(spec_to_count, spec_to_count_cpu)
    _, meta_build = _timed(lambda: _meta_build(spec), reps)
    params = count_params(model)
    memory = check.train_memory
    ratio = fvcore["median_ms"] / pre["median_ms"]
    return {
        "model": name,
        "input_shape": list(check.input_shape),
        "batch": batch,
        "precheck": pre,
        "fvcore": fvcore,  # build + trace, per round
        "build": build,
        "trace": trace,
        "meta_build": meta_build,
        "ratio": ratio,
        "ratio_cpu": fvcore["cpu_median_ms"] / pre["cpu_median_ms"],
        "ratio_trace": trace["median_ms"] / pre["median_ms"],
        "gflops": {"precheck": check.gflops, "fvcore": flops.gflops},
        "gflops_rel_diff": _relative(check.flops, flops.flops),
        "params": {"precheck": check.params, "fvcore": params},
        "params_rel_diff": _relative(check.params, params),
        "train_memory_mb": memory.peak_mb,
        "pass_time": pre["median_ms"] < PRECHECK_TARGET_MS,
        "pass_ratio": ratio >= RATIO_TARGET,
        "pass_agreement": max(_relative(check.flops, flops.flops), _relative(check.params, params))
        <= AGREEMENT_TARGET,
    }


def _clocked(call: Callable[[], Any], into: tuple[list[float], list[float]]) -> Any:
    """``call()``, its wall and CPU milliseconds appended to ``into``."""
    start, start_cpu = time.perf_counter(), time.process_time()
    result = call()
    into[0].append((time.perf_counter() - start) * 1e3)
    into[1].append((time.process_time() - start_cpu) * 1e3)
    return result


def bench_candidates(count: int, *, batch: int, seed: int = 0) -> dict[str, Any]:
    """Pre-checks of ``count`` random candidates of the X3D space, each timed once."""
    log(f"  pre-check of {count} random candidates of {SPACE.name}")
    space = load_space(SPACE)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    specs = [space.create_spec(space.sample(study.ask())) for _ in range(count)]
    wall, cpu, gflops = [], [], []
    for spec in specs:
        start, start_cpu = time.perf_counter(), time.process_time()
        gflops.append(precheck(spec, batch=batch).gflops)
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return {
        "space": SPACE.name,
        "candidates": count,
        "time": _summary(wall, cpu),
        "gflops_median": statistics.median(gflops),
    }


def _meta_build(spec: ModelSpec) -> None:
    with MetaBuild():
        harness.build_model(spec, edit_plan=Folding(), block_factory=create_meta_block)


def bench_memory(name: str, frames: int, size: int, batch: int) -> dict[str, Any]:
    """Simulated vs profiled peak of one CPU training step (fp32, SGD)."""
    log(f"  memory of {name} at {frames}x{size}, batch {batch}")
    model = harness.build_model(name, frames=frames, size=size)
    shape = model.plan.input_shape
    start = time.perf_counter()
    simulated = estimate_train_memory(model, shape, batch=batch)
    simulate_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    measured = measure_train_memory(model, shape, batch=batch)
    measure_ms = (time.perf_counter() - start) * 1e3
    assert simulated.peak_bytes is not None and measured.peak_bytes is not None
    return {
        "model": name,
        "input_shape": list(shape),
        "batch": batch,
        "simulated_mb": simulated.peak_bytes / MIB,
        "measured_mb": measured.peak_bytes / MIB,
        "error": simulated.peak_bytes / measured.peak_bytes - 1,
        "saved_equal": simulated.saved_bytes == measured.saved_bytes,
        "simulate_ms": simulate_ms,
        "measure_ms": measure_ms,
        "methods": [simulated.method, measured.method],
    }


def format_report(figures: dict[str, Any]) -> str:
    m = figures["machine"]
    p = figures["precheck"]
    pre, fv = p["precheck"], p["fvcore"]
    c = figures["candidates"]
    ct = c["time"]
    shape = "x".join(map(str, p["input_shape"]))
    lines = [
        f"machine: {m['cpu']}, {m['logical_cores']} logical cores, torch {m['torch']} "
        f"({m['torch_threads']} threads), load average {m['load_avg_start']:.1f} at start",
        "",
        f"pre-check vs fvcore: {p['model']} at {shape}, memory at batch {p['batch']}",
        f"{'':28s}{'pre-check':>16s}{'fvcore':>16s}{'rel. diff':>12s}",
        f"{'GFLOPs (multiply-adds)':28s}{p['gflops']['precheck']:>16.4f}"
        f"{p['gflops']['fvcore']:>16.4f}{p['gflops_rel_diff']:>12.2e}",
        f"{'params':28s}{p['params']['precheck']:>16,}{p['params']['fvcore']:>16,}"
        f"{p['params_rel_diff']:>12.2e}",
        f"{'time, median ms (IQR)':28s}{pre['median_ms']:>9.1f} ({pre['iqr_ms']:>4.1f})"
        f"{fv['median_ms']:>9.0f} ({fv['iqr_ms']:>4.0f})",
        f"{'CPU time, median ms':28s}{pre['cpu_median_ms']:>16.1f}{fv['cpu_median_ms']:>16.0f}",
        f"{'timed calls':28s}{pre['n']:>16d}{fv['n']:>16d}",
        f"(fvcore: build the model {p['build']['median_ms']:.0f} ms, then trace it "
        f"{p['trace']['median_ms']:.0f} ms, as `harness compile` does; rounds interleaved "
        "with the pre-checks)",
        f"(of the pre-check, compiling on the meta device takes "
        f"{p['meta_build']['median_ms']:.1f} ms, CPU {p['meta_build']['cpu_median_ms']:.1f}; "
        "repeated blocks are built once, blocks built before are copied)",
        f"training-step peak at batch {p['batch']} (simulated): {p['train_memory_mb']:,.1f} MiB",
        "",
        f"pre-check median {pre['median_ms']:.1f} ms (CPU {pre['cpu_median_ms']:.1f} ms), "
        f"target < {PRECHECK_TARGET_MS:.0f} ms: {verdict(p['pass_time'])}",
        f"fvcore (build + trace) / pre-check {p['ratio']:.1f}x (CPU time "
        f"{p['ratio_cpu']:.1f}x; the trace alone {p['ratio_trace']:.1f}x), "
        f"target >= {RATIO_TARGET:.0f}x: {verdict(p['pass_ratio'])}",
        f"GFLOPs and params agree within {AGREEMENT_TARGET:.0%}: {verdict(p['pass_agreement'])}",
        "",
        f"{c['candidates']} random candidates of {c['space']} (median "
        f"{c['gflops_median']:.2f} GFLOPs): pre-check median {ct['median_ms']:.1f} ms "
        f"(IQR {ct['iqr_ms']:.1f}, CPU {ct['cpu_median_ms']:.1f} ms)",
        "",
        "training-step peak, simulated vs profiled (CPU, fp32, SGD)",
        f"{'model':16s}{'input':>14s}{'batch':>7s}{'simulated MiB':>15s}{'profiled MiB':>14s}"
        f"{'error':>9s}{'saved =':>9s}{'sim ms':>8s}{'real ms':>9s}",
    ]
    for row in figures["memory"]:
        lines.append(
            f"{row['model']:16s}{'x'.join(map(str, row['input_shape'])):>14s}"
            f"{row['batch']:>7d}{row['simulated_mb']:>15.2f}{row['measured_mb']:>14.2f}"
            f"{row['error']:>+9.2%}{'yes' if row['saved_equal'] else 'NO':>9s}"
            f"{row['simulate_ms']:>8.0f}{row['measure_ms']:>9.0f}"
        )
    lines.append(
        "(error: simulated / profiled - 1; the profile includes kernel-internal buffers. "
        "saved =: activations saved for backward, byte for byte)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, one model")
    parser.add_argument("--reps", type=int, default=20, help="timed pre-check calls")
    parser.add_argument("--fvcore-reps", type=int, default=3, help="timed fvcore traces")
    parser.add_argument("--batch", type=int, default=8, help="batch of the memory figure")
    parser.add_argument("--model", default="x3d_m", help="zoo model of part 1")
    parser.add_argument("--candidates", type=int, default=60, help="candidates of part 1b")
    args = parser.parse_args(argv)
    reps, fvcore_reps = (5, 1) if args.quick else (args.reps, args.fvcore_reps)
    log("part 1: pre-check vs fvcore")
    figures: dict[str, Any] = {"machine": machine_info()}
    figures["precheck"] = bench_precheck(
        args.model, batch=args.batch, reps=reps, fvcore_reps=fvcore_reps
    )
    count = 10 if args.quick else args.candidates
    figures["candidates"] = bench_candidates(count, batch=args.batch)
    log("part 2: simulated vs profiled training-step memory")
    cases = MEMORY_CASES[:1] if args.quick else MEMORY_CASES
    zoo = set(harness.list_zoo())
    figures["memory"] = [bench_memory(*case) for case in cases if case[0] in zoo]
    print(format_report(figures))
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
