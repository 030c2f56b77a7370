"""The one place the search asks what a candidate costs.

Every candidate first goes through the fast pre-check (:func:`harness.measure.precheck`:
FLOPs, parameters and training-step memory from one simulated step on meta tensors,
cached by spec hash), so an over-budget candidate is rejected without building it for
real. Latency, when an objective or budget needs it, is timed on this machine. Candidates
that will train also get fvcore's per-stage table (:func:`describe_costs`, cached too).

Everything is measured at the spec's own clip (the deployed input), not at the reduced
fidelity a candidate may train at.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from harness.compiler import build_model
from harness.measure import CostCache, measure_latency, precheck
from harness.report import describe_model
from harness.spec import ModelSpec

__all__ = ["Costs", "describe_costs", "measure_costs"]

_CACHE: CostCache | None = None


def _cache() -> CostCache:
    global _CACHE
    if _CACHE is None:
        _CACHE = CostCache()
    return _CACHE


@dataclass(frozen=True)
class Costs:
    """What a candidate costs, with how each figure was obtained."""

    params: int
    gflops: float  # 1 multiply-add = 1 FLOP, batch 1, at the spec's clip
    gflops_all: float | None = None  # with normalisation and pooling (fvcore), once described
    train_memory_mb: float | None = None
    latency_ms: float | None = None
    gflops_method: str = "precheck meta simulation (equal to the fvcore count)"
    memory_method: str = "not measured"
    latency_method: str = "not measured"
    stages: list[dict[str, Any]] = field(default_factory=list)
    unsupported_ops: dict[str, int] = field(default_factory=dict)

    def get(self, name: str) -> float | None:
        value = getattr(self, name)
        return None if value is None else float(value)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _latency_ms(spec: ModelSpec) -> tuple[float | None, str]:
    model = build_model(spec)
    latency = measure_latency(model, model.plan.input_shape, backward=False)
    return latency.median_ms, f"{latency.method}, median, batch 1, {latency.threads} threads"


def measure_costs(spec: ModelSpec, *, need: set[str], batch_size: int = 8) -> Costs:
    """Params, GFLOPs and training memory (pre-check); ``latency_ms`` when in ``need``.

    Raises:
        SpecError: when the compiler rejects the spec (a clip too small for its strides...).
    """
    pre = precheck(spec, batch=batch_size, cache=_cache())
    latency, latency_method = (None, "not measured")
    if "latency_ms" in need:
        latency, latency_method = _latency_ms(spec)
    return Costs(
        params=pre.params,
        gflops=pre.gflops,
        train_memory_mb=pre.train_memory.peak_mb,
        latency_ms=latency,
        memory_method=f"{pre.train_memory.method}, batch {batch_size}, SGD step",
        latency_method=latency_method,
    )


def describe_costs(spec: ModelSpec, costs: Costs) -> Costs:
    """``costs`` with fvcore's totals and per-stage table added (for candidates that train)."""
    report = describe_model(spec, cache=_cache())
    return replace(
        costs,
        gflops_all=report.gflops_all,
        stages=[asdict(row) for row in report.stages],
        unsupported_ops=report.unsupported_ops,
    )
