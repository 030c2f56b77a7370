"""Data benchmark: is loading ever the bottleneck?

Prints, for a small spec (default ``tiny_r2plus1d`` at its clip):

* the model's training throughput (forward + backward + optimiser step, clips/s);
* the loader's throughput with the default number of workers (clips/s), on the synthetic
  data set and on real video files (written here with PyAV: 320x240 MPEG-4, decoded
  with seeking, scaled, randomly cropped);
* their ratio (target: loader >= 2x the model), and the synthetic generation cost per
  clip (one process, no loader) at the spec's clip and at a larger one.

Model and loader are timed one after the other, each with the whole machine, as in
nanoGPT's ``bench.py``: warm-up, then timed repetitions; medians and spread reported.

Usage::

    python benchmarks/bench_data.py [--spec tiny_r2plus1d] [--workers N] [--json]
"""

from __future__ import annotations

import argparse
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


def _model_clips_per_second(spec: str, batch: int, reps: int) -> list[float]:
    clip = realise(harness.load_spec(spec)).clip
    model = harness.build_model(spec, classes=8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, clip.channels, clip.frames, clip.size, clip.size)
    y = torch.randint(0, 8, (batch,))
    rates = []
    for rep in range(reps + 2):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if rep >= 2:  # two warm-up steps
            rates.append(batch / (time.perf_counter() - start))
    return rates


def _loader_clips_per_second(dataset: Any, batch: int, workers: int, batches: int) -> list[float]:
    """Clips per second of each batch, epoch after epoch, after two warm-up batches."""
    loader = create_loader(dataset, batch_size=batch, train=True, num_workers=workers)
    rates: list[float] = []
    seen, epoch = 0, 0
    start = time.perf_counter()
    while len(rates) < batches:
        loader.sampler.set_epoch(epoch)
        for clips, _, _ in loader:
            now = time.perf_counter()
            if seen >= 2:  # warm-up: workers start and fill their queues
                rates.append(len(clips) / (now - start))
            seen, start = seen + 1, now
            if len(rates) >= batches:
                break
        epoch += 1
    return rates


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


def _measure(args: argparse.Namespace) -> dict[str, Any]:
    clip = realise(harness.load_spec(args.spec)).clip
    log = lambda text: print(text, file=sys.stderr)  # noqa: E731
    log(f"model {args.spec} at {clip.frames}x{clip.size}x{clip.size}, batch {args.batch} ...")
    model = _summary(_model_clips_per_second(args.spec, args.batch, args.reps))
    log(f"synthetic loader, {args.workers} workers ...")
    synthetic = create_dataset("synthetic:small", "train", clip=clip)
    loader = _summary(_loader_clips_per_second(synthetic, args.batch, args.workers, args.batches))
    log("video loader (PyAV) ...")
    with tempfile.TemporaryDirectory() as tmp:
        _write_videos(Path(tmp), count=48, frames=64)
        videos = create_dataset(f"folder:{tmp}", "train", clip=clip)
        video = _summary(_loader_clips_per_second(videos, args.batch, args.workers, args.batches))
    log("synthetic generation ...")
    gen = {
        f"{clip.frames}x{clip.size}": _summary(
            _generation_ms(clip.frames, clip.stride, clip.size, 200)
        ),
        "16x112": _summary(_generation_ms(16, 2, 112, 50)),
    }
    return {
        "spec": args.spec,
        "clip": [clip.frames, clip.size],
        "batch": args.batch,
        "workers": args.workers,
        "model_train_clips_per_s": model,
        "synthetic_loader_clips_per_s": loader,
        "video_loader_clips_per_s": video,
        "ratio_synthetic": loader["median"] / model["median"],
        "ratio_video": video["median"] / model["median"],
        "generation_ms_per_clip": gen,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0],
    }


def _print(r: dict[str, Any]) -> None:
    def row(name: str, s: dict[str, float], unit: str) -> str:
        return f"{name:<34}{s['median']:>10.1f}  [{s['q1']:.1f} .. {s['q3']:.1f}] {unit}"

    print(f"spec {r['spec']}  clip {r['clip'][0]}x{r['clip'][1]}  batch {r['batch']}  "
          f"workers {r['workers']}  cores {r['cores']}  load {r['load_average']:.1f}")  # fmt: skip
    print(row("model training", r["model_train_clips_per_s"], "clips/s"))
    print(row("loader, synthetic (small)", r["synthetic_loader_clips_per_s"], "clips/s"))
    print(row("loader, video files (PyAV)", r["video_loader_clips_per_s"], "clips/s"))
    for name in ("synthetic", "video"):
        ratio = r[f"ratio_{name}"]
        verdict = "PASS" if ratio >= RATIO_TARGET else "FAIL"
        label = f"loader / model, {name}"
        print(f"{label:<34}{ratio:>10.1f}x (target >= {RATIO_TARGET:.0f}x) {verdict}")
    for shape, s in r["generation_ms_per_clip"].items():
        print(row(f"synthetic generation, {shape}", s, "ms/clip (one process)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", default="tiny_r2plus1d")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--reps", type=int, default=10, help="timed model steps")
    parser.add_argument("--batches", type=int, default=30, help="timed loader batches")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = _measure(args)
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)


if __name__ == "__main__":
    main()
