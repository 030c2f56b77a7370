"""The one place the search asks what a candidate costs (the fast pre-check).

Everything is measured at the spec's own clip (the deployed input), not at the reduced
fidelity a candidate may train at. Train memory and latency are measured only when an
objective or a budget needs them.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from harness.compiler import build_model
from harness.report import describe_model
from harness.spec import ModelSpec

__all__ = ["Costs", "measure_costs"]


@dataclass(frozen=True)
class Costs:
    """What a candidate costs, with how each figure was obtained."""

    params: int
    gflops: float  # 1 multiply-add = 1 FLOP, batch 1, at the spec's clip
    gflops_all: float
    train_memory_mb: float | None = None
    latency_ms: float | None = None
    gflops_method: str = "fvcore trace (harness.report.describe_model)"
    memory_method: str = "not measured"
    latency_method: str = "not measured"
    stages: list[dict[str, Any]] = field(default_factory=list)
    unsupported_ops: dict[str, int] = field(default_factory=dict)

    def get(self, name: str) -> float | None:
        value = getattr(self, name)
        return None if value is None else float(value)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _train_memory_mb(spec: ModelSpec, batch_size: int) -> float:
    """Weights + gradients + Adam state + the activations autograd saves, one train step."""
    model = build_model(spec)
    model.train()
    saved = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += tensor.numel() * tensor.element_size()
        return tensor

    shape = model.plan.input_shape
    clip = torch.zeros(batch_size, *shape)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(clip)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return (4 * weights + saved) / 2**20


def _latency_ms(spec: ModelSpec, runs: int = 5) -> float:
    """Median forward time at batch 1 on this machine's CPU, after two warm-up runs."""
    model = build_model(spec).eval()
    clip = torch.zeros(1, *model.plan.input_shape)
    times = []
    with torch.inference_mode():
        for i in range(runs + 2):
            start = time.perf_counter()
            model(clip)
            if i >= 2:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def measure_costs(spec: ModelSpec, *, need: set[str], batch_size: int = 8) -> Costs:
    """Params and GFLOPs always; ``train_memory_mb`` and ``latency_ms`` when in ``need``.

    Raises:
        SpecError: when the compiler rejects the spec (a clip too small for its strides...).
    """
    report = describe_model(spec)
    memory: float | None = None
    latency: float | None = None
    method_m, method_l = "not measured", "not measured"
    if "train_memory_mb" in need:
        memory = _train_memory_mb(spec, batch_size)
        method_m = f"4x weights (w, grad, Adam) + autograd saved tensors, batch {batch_size}"
    if "latency_ms" in need:
        latency = _latency_ms(spec)
        method_l = f"median of 5 CPU forwards, batch 1, {torch.get_num_threads()} threads"
    return Costs(
        params=report.params,
        gflops=report.gflops,
        gflops_all=report.gflops_all,
        train_memory_mb=memory,
        latency_ms=latency,
        memory_method=method_m,
        latency_method=method_l,
        stages=[asdict(row) for row in report.stages],
        unsupported_ops=report.unsupported_ops,
    )
