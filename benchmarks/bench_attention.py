"""Attention benchmark: compiled blocks (scaled_dot_product_attention) vs explicit softmax.

Targets (from the issue):

    compiled / explicit softmax(q k^T) v, forward and forward+backward   <= 1.0   (CPU)
    harness.measure.count_flops, TimeSformer-Base 8x224                  <  15 s

Usage::

    python benchmarks/bench_attention.py [--quick] [--json] [--threads N]

Both sides are the same ``harness.compiler.blocks.attention.Attention`` module (same qkv
and projection weights); the reference replaces ``F.scaled_dot_product_attention`` with the
explicit ``softmax(q k^T / sqrt(d)) v``. Outputs are checked to agree first. Repetitions
alternate which side goes first; reported: median and interquartile range (IQR) of the
seconds per call and the ratio of the medians. The shapes are TimeSformer-Base's: joint
attention over 1 + 8 x 196 tokens, divided attention's spatial (8 frames x 197 tokens)
and temporal (196 locations x 8 frames) calls, and MViT-B's first block (q 8 x 56 x 56,
kv 8 x 7 x 7). Exits 0 whatever the verdicts; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

import harness
from harness.compiler.blocks.attention import Attention, attend, split_heads
from harness.measure import count_flops

RATIO_TARGET = 1.0  # compiled / explicit
FLOPS_TARGET_S = 15.0  # count_flops(TimeSformer-Base 8x224)

# name -> (batch of sequences, query tokens, key tokens, width, heads)
CASES: dict[str, tuple[int, int, int, int, int]] = {
    "joint 1569 tokens (TimeSformer joint)": (1, 1569, 1569, 768, 12),
    "space 8 x 197 (TimeSformer divided)": (8, 197, 197, 768, 12),
    "time 196 x 8 (TimeSformer divided)": (196, 8, 8, 768, 12),
    "pooled q 25089 / kv 393 (MViT-B block 0)": (1, 25089, 393, 96, 1),
}


@dataclass(frozen=True)
class Spread:
    median: float
    q1: float
    q3: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        return cls(statistics.median(values), q1, q3)


class ExplicitAttention(nn.Module):
    """The same module with attention written out: softmax(q k^T / sqrt(d)) v."""

    def __init__(self, compiled: Attention) -> None:
        super().__init__()
        self.compiled = compiled

    def forward(self, x: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        c = self.compiled
        q = split_heads(c.qkv(x), c.heads)[0]
        _, k, v = split_heads(c.qkv(kv), c.heads).unbind(0)
        weights = torch.softmax((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5, dim=-1)
        return c.proj((weights @ v).transpose(1, 2).flatten(2))


class CompiledAttention(nn.Module):
    """Queries from ``x``, keys and values from ``kv`` (``kv`` is ``x`` for self-attention)."""

    def __init__(self, compiled: Attention) -> None:
        super().__init__()
        self.compiled = compiled

    def forward(self, x: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        c = self.compiled
        if kv is x:
            return c(x)  # the compiled block's own forward
        q = split_heads(c.qkv(x), c.heads)[0]
        _, k, v = split_heads(c.qkv(kv), c.heads).unbind(0)
        out = attend(q, k, v)
        return c.proj(out.transpose(1, 2).flatten(2))


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _seconds(model: nn.Module, x: torch.Tensor, kv: torch.Tensor, backward: bool) -> float:
    start = time.perf_counter()
    if backward:
        model(x, kv).sum().backward()
    else:
        with torch.no_grad():
            model(x, kv)
    return time.perf_counter() - start


def bench_case(name: str, *, backward: bool, warmup: int, reps: int) -> dict[str, Any]:
    b, n, m, d, h = CASES[name]
    attn = Attention(d, h)
    compiled, explicit = CompiledAttention(attn), ExplicitAttention(attn)
    x = torch.randn(b, n, d, requires_grad=backward)
    kv = x if n == m else torch.randn(b, m, d, requires_grad=backward)
    with torch.no_grad():
        same = torch.allclose(compiled(x, kv), explicit(x, kv), atol=1e-4)
    for _ in range(warmup):
        _seconds(compiled, x, kv, backward)
        _seconds(explicit, x, kv, backward)
    ours, theirs = [], []
    for rep in range(reps):
        pair = [(compiled, ours), (explicit, theirs)]
        for model, out in pair if rep % 2 == 0 else pair[::-1]:
            out.append(_seconds(model, x, kv, backward))
    a, r = Spread.of(ours), Spread.of(theirs)
    return {
        "case": name,
        "pass": "forward+backward" if backward else "forward",
        "outputs_agree": same,
        "compiled_s": asdict(a),
        "explicit_s": asdict(r),
        "ratio": a.median / r.median,
        "ok": a.median / r.median <= RATIO_TARGET,
    }


def bench_flop_count(*, reps: int) -> dict[str, Any]:
    model = harness.build_model("timesformer_base")
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        flops = count_flops(model, torch.randn(1, 3, 8, 224, 224))
        times.append(time.perf_counter() - start)
    spread = Spread.of(times) if reps > 1 else Spread(times[0], times[0], times[0])
    return {
        "gflops": flops.gflops,
        "seconds": asdict(spread),
        "ok": spread.median < FLOPS_TARGET_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warmup, reps = (1, 5) if args.quick else (3, 15)
    rows = []
    for name in CASES:
        for backward in (False, True):
            _log(f"{name}, {'forward+backward' if backward else 'forward'} ...")
            rows.append(bench_case(name, backward=backward, warmup=warmup, reps=reps))
    _log("count_flops(TimeSformer-Base 8x224) ...")
    flop_count = bench_flop_count(reps=1 if args.quick else 3)
    result = {"threads": torch.get_num_threads(), "attention": rows, "flop_count": flop_count}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(f"{'case':44s} {'pass':17s} {'SDPA ms':>9s} {'explicit ms':>12s} {'ratio':>6s}  ok")
    for row in rows:
        a, r = row["compiled_s"], row["explicit_s"]
        print(
            f"{row['case']:44s} {row['pass']:17s} {1e3 * a['median']:9.2f} "
            f"{1e3 * r['median']:12.2f} {row['ratio']:6.3f}  {'yes' if row['ok'] else 'NO'}"
            f"  (IQR {1e3 * a['q1']:.1f}-{1e3 * a['q3']:.1f} / {1e3 * r['q1']:.1f}-"
            f"{1e3 * r['q3']:.1f} ms{'' if row['outputs_agree'] else ', OUTPUTS DIFFER'})"
        )
    fc = flop_count
    print(
        f"count_flops TimeSformer-Base 8x224: {fc['seconds']['median']:.2f} s "
        f"({fc['gflops']:.2f} GFLOPs; target < {FLOPS_TARGET_S:.0f} s: "
        f"{'yes' if fc['ok'] else 'NO'})"
    )


if __name__ == "__main__":
    main()
