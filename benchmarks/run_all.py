"""Run every benchmark in one go and write the table of their ratios to benchmarks/results.md.

    python benchmarks/run_all.py [--quick] [--only NAME ...] [--out benchmarks/results.md]

Each benchmark script runs in its own process (``--json``), one after another on the same
machine, so the ratios in the table were measured side by side in this run: compiled vs
hand-written model speed, fast pre-check vs fvcore trace, loader vs model throughput,
search overhead, search efficiency vs random, the expansion's step ratios, the
dashboard's load time and ``harness zoo``'s listing vs its ``--check``. Each script's own
report (its stdout) is kept beside the table in ``benchmarks/results/NAME.txt``; its
figures in ``benchmarks/results/NAME.json``.

``--quick`` passes the scripts' quick settings where they have them (fewer repetitions,
smaller runs: minutes instead of about an hour); the table says which was run. Where a GPU
is present the device is named in the header; the GPU rows come from the scripts that
measure on it. A benchmark that fails is a row saying so, and the others still run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import machine_info

HERE = Path(__file__).resolve().parent
Row = tuple[str, str, str, str]  # measure, value, target, verdict
Extract = Callable[[dict[str, Any]], list[Row]]


@dataclass(frozen=True)
class Bench:
    name: str
    args: tuple[str, ...]  # script and arguments, under benchmarks/
    quick: tuple[str, ...]  # what --quick adds
    extract: Extract
    in_quick: bool = True  # also run under --quick


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("pass" if ok else "FAIL")


def _compiler(f: dict[str, Any]) -> list[Row]:
    rows = [
        (
            f"forward+backward {s['model']}, compiled / hand-written",
            f"{s['ratio']:.3f} (CPU time {s['cpu']['ratio']:.3f})",
            "<= 1.03",
            _verdict(s["pass"]),
        )
        for s in f["speed"]
    ]
    b, c = f["build"], f["flops"]
    rows.append(
        ("build_model('x3d_m')", f"{b['seconds']['median']:.3f} s", "< 0.3 s", _verdict(b["pass"]))
    )
    rows.append(
        (
            "count_flops(x3d_m, 16x224)",
            f"{c['seconds']['median']:.2f} s",
            "< 3 s",
            _verdict(c["pass"]),
        )
    )
    return rows


def _precheck(f: dict[str, Any]) -> list[Row]:
    p, c = f["precheck"], f["candidates"]
    rows: list[Row] = [
        (
            f"pre-check {p['model']} ({'x'.join(map(str, p['input_shape']))}), median",
            f"{p['precheck']['median_ms']:.1f} ms (CPU {p['precheck']['cpu_median_ms']:.1f})",
            "< 50 ms",
            _verdict(p["pass_time"]),
        ),
        (
            "fvcore (build + trace) / pre-check",
            f"{p['ratio']:.1f}x (CPU time {p['ratio_cpu']:.1f}x; trace alone "
            f"{p['ratio_trace']:.1f}x)",
            ">= 20x",
            _verdict(p["pass_ratio"]),
        ),
        (
            "pre-check vs fvcore, GFLOPs / params",
            f"{p['gflops_rel_diff']:.1e} / {p['params_rel_diff']:.1e}",
            "<= 1%",
            _verdict(p["pass_agreement"]),
        ),
        (
            f"pre-check of {c['candidates']} random {c['space']} candidates, median",
            f"{c['time']['median_ms']:.1f} ms ({c['gflops_median']:.2f} GFLOPs median)",
            "",
            "",
        ),
    ]
    rows += [
        (
            f"train memory {m['model']} {'x'.join(map(str, m['input_shape']))} b{m['batch']}, "
            "simulated / profiled - 1",
            f"{m['error']:+.2%}",
            "",
            "",
        )
        for m in f["memory"]
    ]
    return rows


def _attention(f: dict[str, Any]) -> list[Row]:
    rows: list[Row] = [
        (
            f"attention {a['case']} ({a['pass']}), SDPA / explicit",
            f"{a['ratio']:.3f}",
            "<= 1.0",
            _verdict(a["ok"]),
        )
        for a in f["attention"]
    ]
    c = f["flop_count"]
    rows.append(
        (
            "count_flops(timesformer_base, 8x224)",
            f"{c['seconds']['median']:.2f} s",
            "< 15 s",
            _verdict(c["ok"]),
        )
    )
    return rows


def _dashboard(f: dict[str, Any]) -> list[Row]:
    m = f["median_s"]
    return [
        (
            f"dashboard load + Pareto + figure, {f['trials']:,} trials",
            f"{m['load + draw']:.2f} s",
            "< 2 s",
            _verdict(f["verdict"] == "PASS"),
        )
    ]


def _generic(f: dict[str, Any]) -> list[Row]:
    """Scripts that state their own rows: ``{"rows": [[measure, value, target, ok], ...]}``."""
    return [(str(m), str(v), str(t), _verdict(ok)) for m, v, t, ok in f["rows"]]


BENCHES = (
    Bench("compiler", ("bench_compiler.py", "--json"), ("--quick",), _compiler),
    Bench("precheck", ("bench_precheck.py", "--json"), ("--quick",), _precheck),
    Bench("attention", ("bench_attention.py", "--json"), ("--quick",), _attention),
    Bench("data", ("bench_data.py", "--json"), ("--rounds", "2"), _generic),
    Bench("checkpoint", ("bench_checkpoint.py", "--json"), ("--quick",), _generic),
    Bench("localization", ("bench_localization.py", "--json"), ("--quick",), _generic),
    Bench("audio_visual", ("bench_audio_visual.py", "--json"), ("--quick",), _generic),
    Bench("synthetic", ("bench_synthetic.py", "--json"), ("--epochs", "2"), _generic),
    Bench(
        "search_overhead",
        ("bench_search.py", "overhead", "--threads", "1", "--json"),
        (),
        _generic,
    ),
    Bench(
        "search_efficiency",
        ("bench_search.py", "efficiency", "--threads", "1", "--json"),
        ("--seeds", "1"),
        _generic,
    ),
    Bench(
        "search_resume",
        ("bench_search.py", "resume", "--threads", "1", "--json"),
        ("--seeds", "1"),
        _generic,
    ),
    Bench("expansion", ("bench_expansion.py", "--json"), (), _generic),
    Bench(
        "expansion_real",
        ("bench_expansion.py", "--real", "--threads", "1", "--json"),
        (),
        _generic,
        False,
    ),
    Bench("dashboard", ("bench_dashboard.py", "--json"), ("--repeats", "2"), _dashboard),
    Bench("zoo", ("bench_zoo.py", "--json"), ("--repeats", "2"), _generic),
)


def last_json(text: str) -> dict[str, Any]:
    """The last JSON object a script printed (its report may come first)."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("{"):
            try:
                value = json.loads("\n".join(lines[i:]))
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    raise ValueError("no JSON object in the output")


def run(bench: Bench, *, quick: bool, out_dir: Path) -> tuple[list[Row], float]:
    command = [sys.executable, str(HERE / bench.args[0]), *bench.args[1:]]
    if quick:
        command += bench.quick
    print(f"== {bench.name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=HERE.parent)
    seconds = time.perf_counter() - start
    (out_dir / f"{bench.name}.txt").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return [(f"{bench.name}: exit {done.returncode}", last[:120], "", "FAIL")], seconds
    try:
        figures = last_json(done.stdout)
        (out_dir / f"{bench.name}.json").write_text(json.dumps(figures, indent=2))
        return bench.extract(figures), seconds
    except (ValueError, KeyError, TypeError) as exc:
        return [(f"{bench.name}: unreadable figures", repr(exc)[:120], "", "FAIL")], seconds


def _machine() -> str:
    m = machine_info()
    return (
        f"CPU {m['cpu']}, {m['logical_cores']} logical cores; GPU {m['gpu'] or 'none'}; "
        f"torch {m['torch']}; Python {m['python']}"
    )


def write_table(
    path: Path, results: list[tuple[str, list[Row], float]], quick: bool, load_start: float
) -> None:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results",
        "",
        f"`python benchmarks/run_all.py{' --quick' if quick else ''}`, {now}.",
        "",
        f"Machine: {_machine()}.",
        f"Load average (1 min) at the start {load_start:.1f}, at the end {os.getloadavg()[0]:.1f}"
        " (other work on the machine moves timings; ratios are measured side by side).",
        "",
        "| benchmark | measure | value | target | verdict |",
        "|---|---|---|---|---|",
    ]
    for name, rows, _ in results:
        lines += [f"| {name} | {m} | {v} | {t} | {ok} |" for m, v, t, ok in rows]
    lines += ["", "Wall time per script:", ""]
    lines += [f"- {name}: {seconds / 60:.1f} min" for name, _, seconds in results]
    lines += ["", "Each script's full report: `benchmarks/results/NAME.txt`.", ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="the scripts' quick settings")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES])
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    args = parser.parse_args(argv)
    out_dir = args.out.parent / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    load_start = os.getloadavg()[0]
    for bench in BENCHES:
        if (args.only and bench.name not in args.only) or (args.quick and not bench.in_quick):
            continue
        rows, seconds = run(bench, quick=args.quick, out_dir=out_dir)
        results.append((bench.name, rows, seconds))
        # Written after each script, so that a partial table survives an interrupt.
        write_table(args.out, results, args.quick, load_start)
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
