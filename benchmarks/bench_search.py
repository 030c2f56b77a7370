"""Search benchmarks: harness overhead per trial, and search efficiency against random.

    python benchmarks/bench_search.py overhead [--trials 6] [--threads N]
    python benchmarks/bench_search.py efficiency [--trials 20] [--seeds 3] [--sampler tpe]
                                                 [--sampler-option KEY=VALUE] [--threads N]
    python benchmarks/bench_search.py resume [--trials 20] [--chunk 4] [--seeds 3]

overhead: runs search_spaces/demo.yaml (or --space) and prints, over trained trials, the
share of each trial's wall time spent outside training and evaluation (goal: < 2%).

efficiency: the hypervolume of (top-1, GFLOPs) after N trials with the sampler and with
random search, same budget, trials and seeds; prints the ratio of the medians over seeds
(goal: >= 1.15). The reference point is fixed before anything runs: (top-1 0, GFLOPs = the
space's GFLOPs budget, or --reference-gflops), the same for both samplers, so a point
counts only if it is feasible, and the hypervolume is in top-1 x GFLOPs.

Its default space (``EFFICIENCY_SPACE``, written to a temporary folder) is built for a CPU:
tiny_c2d's block types per stage (2D, 3D or (2+1)D) and the stem and stage widths over wide
ranges, so the cost objective spans 0.007-1.0 GFLOPs and a budget of 0.15 admits roughly
a quarter of random draws. Its data is a two-class synthetic task (move right / move left on a
plain background) that a network with temporal kernels learns in three short epochs
(tiny_r2plus1d: 0.98 top-1) and a 2D network cannot (0.5), so accuracy is measurable at
this fidelity. Every trained trial takes seconds; the whole run about 4 minutes on 2 cores.

resume: the same space and reference point; per seed, one study of N trials in one run and
one grown in chunks (N / chunk resumes of ``run_search``, each a fresh sampler as a new
command would have), and the ratio of the medians of their hypervolumes (goal: >= 0.95),
with the distinct candidates of each. It also times the pre-trial checks
(:func:`harness.search.check_space`: every value realised, the data read, the feasibility
scan), once cold and once with the cost cache warm, and puts them per trial of a chunk.

NOTE: on a CPU shared with other jobs, ``--threads 1`` is much faster than torch's
default of one thread per core (oversubscribed threads spin on each other).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml

from harness.results import hypervolume
from harness.search import SearchResult, SearchSpace, load_space, run_search

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"

# Two classes that only a temporal network separates: the frames of a clip moving left
# have the same distribution as those of one moving right.
EFFICIENCY_DATA = """\
type: synthetic
preset: ci
classes: 2          # move_right, move_left
train_clips: 1024
val_clips: 128
distractors: 0
noise: 0.0
texture: 0.0
scale: 2.0
"""

EFFICIENCY_SPACE = """\
description: search-efficiency benchmark (bench_search.py efficiency)
base: tiny_c2d
data: {data}
objectives: {{top1: maximize, gflops: minimize}}
budgets: {{gflops: 0.15}}
fidelity: {{epochs: 3, frames: 4, size: 16}}
train: {{batch_size: 16, num_workers: 0, lr: 0.003, warmup_epochs: 0.1}}
params:
  stem.width: {{type: int, low: 8, high: 32, step: 8}}
  stages.0.block.type: [basic, r2plus1d]
  stages.0.block.temporal_kernel: {{type: categorical, choices: [1, 3], when: {{stages.0.block.type: basic}}}}
  stages.0.width: {{type: int, low: 8, high: 64, step: 8}}
  stages.1.block.type: [basic, r2plus1d]
  stages.1.block.temporal_kernel: {{type: categorical, choices: [1, 3], when: {{stages.1.block.type: basic}}}}
  stages.1.width: {{type: int, low: 16, high: 128, step: 16}}
  stages.2.block.type: [basic, r2plus1d]
  stages.2.block.temporal_kernel: {{type: categorical, choices: [1, 3], when: {{stages.2.block.type: basic}}}}
  stages.2.width: {{type: int, low: 32, high: 256, step: 32}}
"""  # noqa: E501


def _run(space: SearchSpace, trials: int, sampler: str, seed: int, root: Path) -> SearchResult:
    return run_search(
        space, trials=trials, sampler=sampler, seed=seed, results_dir=root,
        study=f"{space.name}-{sampler}-{seed}",
    )  # fmt: skip


Row = list[object]  # measure, value, target, ok (the rows benchmarks/run_all.py tabulates)


def overhead(args: argparse.Namespace) -> list[Row]:
    space = load_space(args.space)
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        result = _run(space, args.trials, "tpe", 0, Path(root))
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
    median = float(share.median())
    return [
        [
            f"search overhead per trained trial ({Path(args.space).name}), median",
            f"{median:.2%} (first trial {float(share.iloc[0]):.1%})",
            "< 2%",
            median < 0.02,
        ]
    ]


def _hv(result: SearchResult, reference: tuple[float, float]) -> tuple[float, int]:
    """(hypervolume of the feasible complete trials, how many distinct ones there are)."""
    df = result.table
    done = df[(df["state"] == "complete") & df["feasible"].fillna(False).astype(bool)]
    points = done[["top1", "gflops"]].to_numpy(dtype=float)
    hv = hypervolume(points, reference, ["maximize", "minimize"]) if len(points) else 0.0
    return hv, int(done["spec_hash"].nunique())


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE")
    return key, yaml.safe_load(value)


def _efficiency_space(args: argparse.Namespace, root: Path) -> SearchSpace:
    if args.space is not None:
        path = Path(args.space)
    else:
        data = root / "direction.yaml"
        data.write_text(EFFICIENCY_DATA)
        path = root / "efficiency.yaml"
        path.write_text(EFFICIENCY_SPACE.format(data=data))
    space = load_space(path)
    if args.sampler_option:
        space = space.model_copy(
            update={"sampler_options": {**space.sampler_options, **dict(args.sampler_option)}}
        )
    return space


def efficiency(args: argparse.Namespace) -> list[Row]:
    ours, rand = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        space = _efficiency_space(args, root)
        limit = args.reference_gflops or space.budgets.get("gflops")
        if limit is None:
            raise SystemExit("the space has no GFLOPs budget: give --reference-gflops")
        reference = (0.0, float(limit))
        print(
            f"space {space.name}, {args.trials} trials x {args.seeds} seeds, reference point "
            f"(top1 0, gflops {limit:g}); sampler options {space.sampler_options}",
            flush=True,
        )
        # the options are the sampler's keyword arguments: random search takes none of them
        baseline = space.model_copy(update={"sampler_options": {}})
        for seed in range(args.seeds):
            line = f"seed {seed}:"
            for sampler, out, sp in ((args.sampler, ours, space), ("random", rand, baseline)):
                start = time.perf_counter()
                hv, distinct = _hv(_run(sp, args.trials, sampler, seed, root), reference)
                out.append(hv)
                seconds = time.perf_counter() - start
                line += f"  {sampler} {hv:.5f} ({distinct} feasible, {seconds:.0f} s)"
            print(line, flush=True)
    ratio = statistics.median(ours) / max(statistics.median(rand), 1e-12)
    print(f"hypervolume after {args.trials} trials, median of {args.seeds} seeds: "
          f"{args.sampler} {statistics.median(ours):.5f} / random {statistics.median(rand):.5f} "
          f"= {ratio:.3f} (goal >= 1.15)")  # fmt: skip
    return [
        [
            f"search hypervolume {args.sampler} / random, {args.trials} trials, "
            f"median of {args.seeds} seeds",
            f"{ratio:.2f} ({statistics.median(ours):.4f} / {statistics.median(rand):.4f})",
            ">= 1.15",
            ratio >= 1.15,
        ]
    ]


def resume(args: argparse.Namespace) -> list[Row]:
    from harness.search import check_space

    whole, grown, checks = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        space = _efficiency_space(args, root)
        reference = (0.0, float(space.budgets["gflops"]))
        for attempt in ("cold", "warm"):
            start = time.perf_counter()
            check_space(space)
            checks.append(time.perf_counter() - start)
            print(f"pre-trial checks ({attempt} cost cache): {checks[-1]:.2f} s", flush=True)
        durations: list[float] = []
        for seed in range(args.seeds):
            one = _run(space, args.trials, "tpe", seed, root)
            chunks = space.model_copy(update={"name": f"{space.name}-chunks"})
            for trials in range(args.chunk, args.trials + 1, args.chunk):
                part = run_search(
                    chunks, trials=trials, seed=seed, results_dir=root, check=False,
                    study=f"{chunks.name}-{seed}",
                )  # fmt: skip
            (hv_one, n_one), (hv_grown, n_grown) = _hv(one, reference), _hv(part, reference)
            whole.append(hv_one)
            grown.append(hv_grown)
            trained = one.table[one.table["train_seconds"] > 0]
            durations += trained["duration_seconds"].astype(float).tolist()
            print(
                f"seed {seed}: one run {hv_one:.5f} ({one.table['spec_hash'].nunique()} distinct,"
                f" {n_one} feasible)  grown {args.trials // args.chunk}x{args.chunk} "
                f"{hv_grown:.5f} ({part.table['spec_hash'].nunique()} distinct, "
                f"{n_grown} feasible)",
                flush=True,
            )
    ratio = statistics.median(grown) / max(statistics.median(whole), 1e-12)
    per_trial = checks[1] / args.chunk
    trial = statistics.median(durations) if durations else float("nan")
    print(f"hypervolume grown / one run, median of {args.seeds} seeds: "
          f"{statistics.median(grown):.5f} / {statistics.median(whole):.5f} = {ratio:.3f} "
          "(goal >= 0.95)")  # fmt: skip
    print(f"pre-trial checks per trial of a {args.chunk}-trial chunk: {per_trial:.2f} s "
          f"(warm cache), {per_trial / trial:.1%} of a median trained trial "
          f"({trial:.1f} s)")  # fmt: skip
    return [
        [
            f"search hypervolume, {args.trials} trials grown as {args.trials // args.chunk}x"
            f"{args.chunk} resumes / one run, median of {args.seeds} seeds",
            f"{ratio:.3f} ({statistics.median(grown):.4f} / {statistics.median(whole):.4f})",
            ">= 0.95",
            ratio >= 0.95,
        ],
        [
            f"pre-trial checks (space check + feasibility scan), per trial of a "
            f"{args.chunk}-trial chunk",
            f"{per_trial:.2f} s warm, {checks[0] / args.chunk:.2f} s cold "
            f"({per_trial / trial:.1%} of a trained trial)",
            "",
            None,
        ],
    ]


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
    e.add_argument(
        "--sampler-option", type=_option, action="append", metavar="KEY=VALUE",
        help="a sampler keyword argument, e.g. n_startup_trials=5 (repeatable)",
    )  # fmt: skip
    e.add_argument("--space", default=None, help="a space file (default: EFFICIENCY_SPACE)")
    e.add_argument("--reference-gflops", type=float, default=None,
                   help="GFLOPs of the reference point (default: the space's budget)")  # fmt: skip
    r = sub.add_parser("resume")
    r.add_argument("--trials", type=int, default=20)
    r.add_argument("--chunk", type=int, default=4)
    r.add_argument("--seeds", type=int, default=3)
    r.set_defaults(space=None, sampler_option=None)
    for p in (o, e, r):
        p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
        p.add_argument("--json", action="store_true", help="end with the figures as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    rows = {"overhead": overhead, "efficiency": efficiency, "resume": resume}[args.what](args)
    if args.json:
        print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
