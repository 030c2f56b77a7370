"""Time ``harness zoo`` (read from the YAML) beside ``harness zoo --check`` (measured).

The listing reads each zoo file's ``published:`` block; the check builds and traces every
model at its published input. Both run as a user runs them.

    python benchmarks/bench_zoo.py [--repeats 5] [--json]

Each command runs in its own process, so the times include Python's start and the imports:
the listing should take about a second (it imports no torch), the check minutes. Prints the
two wall times side by side, their ratio, and how many models the check found matching
their published figures. ``--json`` ends the output with the figures as one JSON object
whose ``rows`` are ``[measure, value, target, ok]`` (what ``benchmarks/run_all.py``
tabulates).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import log, machine_info

HARNESS = [sys.executable, "-m", "harness"]
ROOT = Path(__file__).resolve().parents[1]
LISTING_TARGET_S = 2.0  # "about a second", with room for a loaded machine


def timed(*args: str) -> tuple[float, str]:
    """Wall seconds of ``harness ARGS`` in a fresh process, and its stdout."""
    start = time.perf_counter()
    done = subprocess.run([*HARNESS, *args], capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):  # --check exits 1 when a figure does not match
        raise SystemExit(f"harness {' '.join(args)}: exit {done.returncode}: {done.stderr}")
    return seconds, done.stdout


def measure(repeats: int) -> dict[str, Any]:
    """The listing ``repeats`` times (table and JSON), the check once."""
    listing = []
    for i in range(repeats):
        log(f"harness zoo, run {i + 1}/{repeats}")
        listing.append(timed("zoo")[0])
    listing_json = [timed("zoo", "--json")[0] for _ in range(repeats)]
    log("harness zoo --check --json (builds and traces every model: minutes)")
    check_s, out = timed("zoo", "--check", "--json")
    rows = json.loads(out)
    matched = sum(bool(row.get("matches_published")) for row in rows)
    return {
        "models": len(rows),
        "listing_s": {"median": statistics.median(listing), "runs": listing},
        "listing_json_s": {"median": statistics.median(listing_json), "runs": listing_json},
        "check_s": check_s,
        "ratio": check_s / statistics.median(listing),
        "matched": matched,
    }


def report(f: dict[str, Any]) -> list[list[object]]:
    """Print the two commands side by side; return the rows of run_all's table."""
    listing, check = f["listing_s"]["median"], f["check_s"]
    runs = len(f["listing_s"]["runs"])
    print(f"{'command':<28} {'wall time':>12}  what it does")
    print(f"{'harness zoo':<28} {listing:>10.2f} s  median of {runs}: reads the YAML")
    print(f"{'harness zoo --json':<28} {f['listing_json_s']['median']:>10.2f} s  the same rows")
    print(f"{'harness zoo --check --json':<28} {check:>10.1f} s  builds, traces, compares")
    print(f"check / listing: {f['ratio']:.0f}x; {f['matched']}/{f['models']} models match")
    n = f["models"]
    return [
        [
            f"harness zoo ({n} models, published figures), median of {runs}",
            f"{listing:.2f} s",
            f"< {LISTING_TARGET_S:g} s",
            listing < LISTING_TARGET_S,
        ],
        ["harness zoo --check (build + trace each at its published input)", f"{check:.0f} s",
         "", None],
        ["harness zoo --check / harness zoo", f"{f['ratio']:.0f}x", "", None],
        ["harness zoo --check, models matching their published figures",
         f"{f['matched']}/{n}", f"{n}/{n}", f["matched"] == n],
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of the listing")
    parser.add_argument("--json", action="store_true", help="end with the figures as JSON")
    args = parser.parse_args()
    figures = measure(args.repeats)
    rows = report(figures)
    if args.json:
        print(json.dumps({**figures, "machine": machine_info(), "rows": rows}))


if __name__ == "__main__":
    main()
