"""Data benchmark: is loading ever the bottleneck?

Prints the training throughput (forward + backward + AdamW step, clips/s) of two small
specs, ``tiny_r2plus1d`` (the synthetic benchmark's, 8x32x32) and ``x3d_xs`` (a small
spec for real video, 4x160x160), next to the loader throughput (default workers) at
their clips: the synthetic data set (``small``) for the first, and real video files
(written here with PyAV: 128 clips of 320x240 MPEG-4, decoded with seeking, scaled and
randomly cropped) for both; the ratios (target: loader >= 2x the model); and the
synthetic generation cost per clip (one process, no loader). Decoding 320x240 video for
a 32-pixel model is printed as the worst case: on two cores such a model trains about as
fast as PyAV decodes.

Model and loaders are timed in alternating rounds, each with the whole machine (the
model idle while loading is timed and the other way round), so that drift in the
machine's speed falls on both alike; a loader round reads 16 batches (four epochs of the
video files), each new epoch starting with empty queues. After warm-up; medians and
interquartile ranges over the rounds are reported, and the ratio is taken per round.

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


def _model_round(step: _ModelStep, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * len(step.x) / (time.perf_counter() - start)


def _loader_round(loader: Any, round_: int, batches: int) -> float:
    """Clips per second over ``batches`` batches, in as many epochs as that takes (each
    new epoch starts with empty queues, as in training)."""
    clips, seen, start = 0, 0, time.perf_counter()
    for epoch in itertools.count(round_ * 1000):
        loader.sampler.set_epoch(epoch)
        for x, _, _ in loader:
            clips, seen = clips + len(x), seen + 1
            if seen >= batches:
                return clips / (time.perf_counter() - start)
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


def _rounds(args: argparse.Namespace, folder: str) -> dict[str, list[float]]:
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
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}/{args.rounds}", file=sys.stderr)
        for spec, (step, count) in steps.items():
            rates[spec].append(_model_round(step, count))
        for name, (_, loader) in loaders.items():
            rates[name].append(_loader_round(loader, round_ + 1, args.batches))
    for name, (spec, _) in loaders.items():
        rates[f"ratio_{name}"] = [a / b for a, b in zip(rates[name], rates[spec], strict=True)]
    return rates


def _measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        _write_videos(Path(tmp), count=VIDEOS, frames=64)
        rates = _rounds(args, tmp)
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
        "generation_ms_per_clip": generation,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0],
    }


def _print(r: dict[str, Any], args: argparse.Namespace) -> None:
    def row(name: str, s: dict[str, float], unit: str) -> str:
        return f"{name:<44}{s['median']:>9.1f}  [{s['q1']:.1f} .. {s['q3']:.1f}] {unit}"

    rates = r["clips_per_s"]
    print(f"workers {r['workers']}  cores {r['cores']}  load {r['load_average']:.1f}  "
          f"clips (frames, stride, size): {r['specs']}")  # fmt: skip
    print(row(f"model training, {args.spec}", rates[args.spec], "clips/s"))
    print(row(f"model training, {args.video_spec}", rates[args.video_spec], "clips/s"))
    print(row(f"loader, synthetic small, {args.spec} clip", rates["synthetic"], "clips/s"))
    print(row(f"loader, video (PyAV), {args.spec} clip", rates["video"], "clips/s"))
    print(row(f"loader, video (PyAV), {args.video_spec} clip", rates["video_real_spec"], "clips/s"))
    for name, label in (
        ("synthetic", f"synthetic / {args.spec}"),
        ("video_real_spec", f"video / {args.video_spec}"),
        ("video", f"video / {args.spec} (worst case)"),
    ):
        ratio = rates[f"ratio_{name}"]
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
        print(json.dumps(result))
    else:
        _print(result, args)


if __name__ == "__main__":
    main()
