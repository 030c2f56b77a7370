"""Data benchmark: is loading ever the bottleneck?

Prints the training throughput (forward + backward + AdamW step, clips/s) of two small
specs, ``tiny_r2plus1d`` (the synthetic benchmark's, 8x32x32) and ``x3d_xs`` (a small
spec for real video, 4x160x160), next to the loader throughput (default workers) at
their clips: the synthetic data set (``small``) for the first, and real video files
(written here with PyAV: 128 clips of 320x240 MPEG-4, decoded with seeking, scaled and
randomly cropped) for both; the ratios (target: loader >= 2x the model); and the
synthetic generation cost per clip (one process, no loader). Decoding 320x240 video for
a 32-pixel model is the hardest case: the model is cheap, and the video's pixels are
noise, whose decoding costs far more than that of real footage.

Model and loaders are timed in alternating rounds, each with the whole machine (the
model idle while loading is timed and the other way round), so that drift in the
machine's speed falls on both alike; a loader round reads 16 batches (four epochs of the
video files), each new epoch starting with empty queues. After warm-up; medians and
interquartile ranges over the rounds are reported, and the ratio is taken per round.

Beside each loader's rate stands its CPU cost, in core-milliseconds per clip (the worker
processes and the main process together, read from ``/proc`` on Linux). Other users of a
shared machine slow the wall-clock rates, but hardly this cost: ``cores x 1000 / core-ms``
is about the loader's rate on an idle machine. (The model's CPU time is not a cost of
the same kind: its threads spin while they wait for each other, the longer the busier the
machine, so only its rate is printed.)

Usage::

    python benchmarks/bench_data.py [--spec tiny_r2plus1d] [--workers N] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

import harness
from harness.data import (
    SyntheticVideos,
    create_dataset,
    create_loader,
    default_workers,
    load_data_spec,
)
from harness.spec import realise

RATIO_TARGET = 2.0
LOADERS = ("synthetic", "video", "video_real_spec")
VIDEOS = 128  # video files written for the loader (4 batches of 32 per epoch)


class _ModelStep:
    """One training step of the spec on a fixed random batch."""

    def __init__(self, spec: str, batch: int) -> None:
        clip = realise(harness.load_spec(spec)).clip
        self.model = harness.build_model(spec, classes=8)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.x = torch.randn(batch, clip.channels, clip.frames, clip.size, clip.size)
        self.y = torch.randint(0, 8, (batch,))

    def __call__(self) -> None:
        loss = torch.nn.functional.cross_entropy(self.model(self.x), self.y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its live child processes (Linux:
    the loader's workers; elsewhere this process only)."""
    total = time.process_time()
    pid = os.getpid()
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    for child in children:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        total += (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
    return total


def _timed(run: Callable[[], int]) -> tuple[float, float]:
    """(clips/s, core-ms/clip) of ``run``, which returns the clips it handled."""
    wall, cpu = time.perf_counter(), _cpu_seconds()
    clips = run()
    return clips / (time.perf_counter() - wall), 1e3 * (_cpu_seconds() - cpu) / clips


def _model_round(step: _ModelStep, steps: int) -> int:
    for _ in range(steps):
        step()
    return steps * len(step.x)


def _loader_round(loader: Any, round_: int, batches: int) -> int:
    """Clips in ``batches`` batches, read in as many epochs as that takes (each new epoch
    starts with empty queues, as in training)."""
    clips, seen = 0, 0
    for epoch in itertools.count(round_ * 1000):
        loader.sampler.set_epoch(epoch)
        for x, _, _ in loader:
            clips, seen = clips + len(x), seen + 1
            if seen >= batches:
                return clips
    raise AssertionError("unreachable")


def _write_videos(folder: Path, count: int, frames: int) -> None:
    import av

    rng = np.random.default_rng(0)
    for i in range(count):
        path = folder / "train" / f"class{i % 4}" / f"v{i}.avi"
        path.parent.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 255, (240, 320, 3), np.uint8)
        with av.open(str(path), "w") as container:
            stream = container.add_stream("mpeg4", rate=25)
            stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
            stream.codec_context.gop_size = 12
            for t in range(frames):
                image = np.roll(base, 4 * t, axis=1)
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)


def _generation_ms(frames: int, stride: int, size: int, reps: int) -> list[float]:
    spec = load_data_spec("synthetic:small")
    videos = SyntheticVideos(spec, "train")  # type: ignore[arg-type]
    indices = np.minimum(np.arange(frames) * stride, spec.video_frames - 1)  # type: ignore[union-attr]
    times = []
    for i in range(reps):
        start = time.perf_counter()
        videos.render(i, indices, size)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _summary(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"median": statistics.median(values), "q1": q[0], "q3": q[2]}


def _loaders(args: argparse.Namespace, folder: str) -> dict[str, tuple[str, Any]]:
    """Loader name -> (the spec it feeds, a loader at that spec's clip)."""
    plan = {
        "synthetic": (args.spec, "synthetic:small"),
        "video": (args.spec, f"folder:{folder}"),
        "video_real_spec": (args.video_spec, f"folder:{folder}"),
    }
    out = {}
    for name, (spec, data) in plan.items():
        clip = realise(harness.load_spec(spec)).clip
        dataset = create_dataset(data, "train", clip=clip)
        loader = create_loader(dataset, batch_size=32, train=True, num_workers=args.workers)
        out[name] = (spec, loader)
    return out


def _rounds(
    args: argparse.Namespace, folder: str
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Alternate rounds of model steps and of loading, so both see the same machine."""
    steps = {
        args.spec: (_ModelStep(args.spec, args.batch), args.steps),
        args.video_spec: (_ModelStep(args.video_spec, 4), 1),  # seconds per step on a CPU
    }
    for step, _ in steps.values():
        for _ in range(2):
            step()  # warm-up
    loaders = _loaders(args, folder)
    for _, loader in loaders.values():
        _loader_round(loader, 0, 2)  # workers start
    rates: dict[str, list[float]] = {name: [] for name in [*steps, *loaders]}
    cpu: dict[str, list[float]] = {name: [] for name in [*steps, *loaders]}
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}/{args.rounds}", file=sys.stderr)
        runs = {spec: partial(_model_round, step, count) for spec, (step, count) in steps.items()}
        for name, (_, loader) in loaders.items():
            runs[name] = partial(_loader_round, loader, round_ + 1, args.batches)
        for name, run in runs.items():
            rate, cost = _timed(run)
            rates[name].append(rate)
            cpu[name].append(cost)
    for name, (spec, _) in loaders.items():
        rates[f"ratio_{name}"] = [a / b for a, b in zip(rates[name], rates[spec], strict=True)]
    return rates, cpu


def _measure(args: argparse.Namespace) -> dict[str, Any]:
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        _write_videos(Path(tmp), count=VIDEOS, frames=64)
        rates, cpu = _rounds(args, tmp)
    clips = {s: realise(harness.load_spec(s)).clip for s in (args.spec, args.video_spec)}
    print("synthetic generation ...", file=sys.stderr)
    clip = clips[args.spec]
    generation = {
        f"{clip.frames}x{clip.size}": _summary(
            _generation_ms(clip.frames, clip.stride, clip.size, 200)
        ),
        "16x112": _summary(_generation_ms(16, 2, 112, 50)),
    }
    return {
        "specs": {s: [c.frames, c.stride, c.size] for s, c in clips.items()},
        "workers": args.workers,
        "clips_per_s": {name: _summary(values) for name, values in rates.items()},
        "cpu_ms_per_clip": {name: _summary(cpu[name]) for name in LOADERS},
        "generation_ms_per_clip": generation,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_start": load_start,  # 1-minute load: others share the CPU
        "load_average": os.getloadavg()[0],
    }


def _rate_rows(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(label, key in clips_per_s) of every rate, models first."""
    return [
        (f"model training, {args.spec}", args.spec),
        (f"model training, {args.video_spec}", args.video_spec),
        (f"loader, synthetic small, {args.spec} clip", "synthetic"),
        (f"loader, video (PyAV), {args.spec} clip", "video"),
        (f"loader, video (PyAV), {args.video_spec} clip", "video_real_spec"),
    ]


def _ratio_rows(args: argparse.Namespace) -> list[tuple[str, str]]:
    return [
        (f"synthetic / {args.spec}", "synthetic"),
        (f"video / {args.video_spec}", "video_real_spec"),
        (f"video / {args.spec} (hardest case)", "video"),
    ]


def _table_rows(r: dict[str, Any], args: argparse.Namespace) -> list[list[Any]]:
    """``[measure, value, target, ok]`` rows for ``run_all.py``."""
    rates, cpu = r["clips_per_s"], r["cpu_ms_per_clip"]
    rows: list[list[Any]] = []
    for label, k in _rate_rows(args):
        cost = f" ({cpu[k]['median']:.2f} core-ms/clip)" if k in LOADERS else ""
        rows.append([label, f"{rates[k]['median']:.1f} clips/s{cost}", "", None])
    for label, k in _ratio_rows(args):
        ratio = rates[f"ratio_{k}"]["median"]
        rows.append([f"loader / model, {label}", f"{ratio:.1f}x", f">= {RATIO_TARGET:.0f}x",
                     ratio >= RATIO_TARGET])  # fmt: skip
    for shape, g in r["generation_ms_per_clip"].items():
        rows.append([f"synthetic generation, {shape}", f"{g['median']:.2f} ms/clip", "", None])
    return rows


def _print(r: dict[str, Any], args: argparse.Namespace) -> None:
    def row(name: str, s: dict[str, float], unit: str) -> str:
        return f"{name:<44}{s['median']:>9.1f}  [{s['q1']:.1f} .. {s['q3']:.1f}] {unit}"

    rates, cpu = r["clips_per_s"], r["cpu_ms_per_clip"]
    print(f"workers {r['workers']}  cores {r['cores']}  "
          f"load {r['load_average_start']:.1f} -> {r['load_average']:.1f}  "
          f"clips (frames, stride, size): {r['specs']}")  # fmt: skip
    for label, key in _rate_rows(args):
        cost = f"{cpu[key]['median']:>7.2f} core-ms/clip" if key in LOADERS else ""
        print(f"{row(label, rates[key], 'clips/s'):<78}{cost}")
    for label, key in _ratio_rows(args):
        ratio = rates[f"ratio_{key}"]
        verdict = "PASS" if ratio["median"] >= RATIO_TARGET else "below target"
        print(f"{row(label, ratio, 'x')} (target >= {RATIO_TARGET:.0f}x) {verdict}")
    for shape, s in r["generation_ms_per_clip"].items():
        print(row(f"synthetic generation, {shape}", s, "ms/clip (one process)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", default="tiny_r2plus1d", help="the synthetic benchmark's")
    parser.add_argument("--video-spec", default="x3d_xs", help="a small spec for real video")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--rounds", type=int, default=5, help="alternating timed rounds")
    parser.add_argument("--steps", type=int, default=4, help="model steps per round")
    parser.add_argument("--batches", type=int, default=16, help="loader batches per round")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = _measure(args)
    if args.json:
        print(json.dumps({**result, "rows": _table_rows(result, args)}))
    else:
        _print(result, args)


if __name__ == "__main__":
    main()
