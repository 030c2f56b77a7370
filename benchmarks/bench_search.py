"""Search benchmarks: harness overhead per trial, and search efficiency against random.

    python benchmarks/bench_search.py overhead [--trials 6]
    python benchmarks/bench_search.py efficiency [--trials 20] [--seeds 3] [--sampler tpe]

overhead: runs search_spaces/demo.yaml (or --space) and prints, over trained trials, the
share of each trial's wall time spent outside training and evaluation (goal: < 2%).
efficiency: the hypervolume of (top-1, GFLOPs) after N trials with the sampler and with
random search, same budget and seeds; prints the ratio of the medians (goal: >= 1.15).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import optuna

from harness.results import hypervolume
from harness.search import SearchResult, load_space, run_search

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"


def _run(space_file: Path, trials: int, sampler: str, seed: int, root: Path) -> SearchResult:
    space = load_space(space_file)
    return run_search(
        space, trials=trials, sampler=sampler, seed=seed, results_dir=root,
        study=f"{space.name}-{sampler}-{seed}",
    )  # fmt: skip


def overhead(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        result = _run(Path(args.space), args.trials, "tpe", 0, Path(root))
        wall = time.perf_counter() - start
    df = result.table
    trained = df[df["train_seconds"] > 0]
    share = trained["overhead_seconds"] / trained["duration_seconds"]
    print(f"trials: {len(df)} ({len(trained)} trained) in {wall:.1f} s wall")
    print(
        f"overhead per trained trial: median {share.median():.2%}, max {share.max():.2%} "
        f"(median {trained['overhead_seconds'].median():.2f} s of "
        f"{trained['duration_seconds'].median():.2f} s)"
    )
    rejected = df[df["train_seconds"] == 0]
    if len(rejected):
        print(
            "untrained (pre-check / duplicate): median "
            f"{rejected['duration_seconds'].median():.2f} s"
        )


def _hv(result: SearchResult, reference: tuple[float, float]) -> float:
    df = result.table
    done = df[(df["state"] == "complete") & df["feasible"].fillna(False)]
    points = done[["top1", "gflops"]].to_numpy(dtype=float)
    return hypervolume(points, reference, ["maximize", "minimize"])


def efficiency(args: argparse.Namespace) -> None:
    space = load_space(args.space)
    reference = (0.0, space.budgets.get("gflops", 1.0))
    ours, rand = [], []
    with tempfile.TemporaryDirectory() as root:
        for seed in range(args.seeds):
            ours.append(
                _hv(_run(Path(args.space), args.trials, args.sampler, seed, Path(root)), reference)
            )
            rand.append(
                _hv(_run(Path(args.space), args.trials, "random", seed, Path(root)), reference)
            )
            print(f"seed {seed}: {args.sampler} {ours[-1]:.5f}  random {rand[-1]:.5f}", flush=True)
    ratio = statistics.median(ours) / max(statistics.median(rand), 1e-12)
    print(f"hypervolume after {args.trials} trials, median of {args.seeds} seeds: "
          f"{args.sampler} {statistics.median(ours):.5f} / random {statistics.median(rand):.5f} "
          f"= {ratio:.3f} (goal >= 1.15)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("--trials", type=int, default=6)
    o.add_argument("--space", default=str(SPACES / "demo.yaml"))
    e = sub.add_parser("efficiency")
    e.add_argument("--trials", type=int, default=20)
    e.add_argument("--seeds", type=int, default=3)
    e.add_argument("--sampler", default="tpe")
    e.add_argument("--space", default=str(SPACES / "tiny.yaml"))
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    {"overhead": overhead, "efficiency": efficiency}[args.what](args)


if __name__ == "__main__":
    main()
