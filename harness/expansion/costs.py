"""What an expansion can hold to a target, and how each cost of a candidate is obtained.

    gflops           pre-check (meta device): multiply-adds of one clip, 1 MAC = 1 FLOP
    params           pre-check: every parameter
    train_memory_mb  pre-check: peak MiB of one simulated SGD step at the expansion's batch
    latency_ms       timed: median of inference at batch 1 (:func:`harness.measure.
                     measure_latency`), on the CPU with a fixed thread count by default

The three pre-check costs are exact and deterministic, cached in the process by spec hash.
Latency is measured, so it is noisy and slow: every timing is stored in the cost cache
(:class:`harness.measure.CostCache`, keyed by spec hash, clip shape, batch, device,
precision, machine and the timing settings), so that a candidate is timed once, and a
re-run of an expansion (a resume) sees the same figures and proposes the same candidates.
:data:`SOLVER_BUDGETS` gives the factor solver few evaluations and a tolerance for it.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass

from harness.compiler import build_model
from harness.errors import SpecError
from harness.measure import CostCache, CostKey, Latency, Precheck, measure_latency, precheck
from harness.spec import ModelSpec

__all__ = ["COSTS", "SOLVER_BUDGETS", "LatencyTiming", "SolverBudget", "get_cost", "measure"]

# name -> unit, as the tables and messages print it
COSTS: dict[str, str] = {
    "gflops": "GFLOPs (multiply-adds, conv/linear/matmul)",
    "params": "parameters",
    "train_memory_mb": "MiB peak training-step memory",
    "latency_ms": "ms median inference latency at batch 1",
}


@dataclass(frozen=True)
class SolverBudget:
    """How hard the factor solver works on one cost."""

    refine: int  # secant/bisection steps once the wanted cost is bracketed
    rtol: float  # a factor whose cost lands within this fraction of the wanted cost is taken


# NOTE: timings of one network repeat to about +-10% on a shared CPU, so refining a latency
# factor below that only chases noise: bracket the wanted latency (2-4 timings, the factor
# growing by an extrapolated 1.5x-4x), then at most three secant/bisection steps, stopping
# at the first timing within 10%. Pre-check costs are exact: refine until the factor is.
SOLVER_BUDGETS: dict[str, SolverBudget] = {
    "latency_ms": SolverBudget(refine=3, rtol=0.1),
}
EXACT = SolverBudget(refine=30, rtol=0.0)


@dataclass(frozen=True)
class LatencyTiming:
    """How ``latency_ms`` is timed (see :func:`harness.measure.measure_latency`)."""

    device: str = "cpu"  # cpu | cuda
    threads: int = 1  # CPU threads while timing, fixed so that candidates compare
    warmup: int = 3  # untimed calls first
    repeats: int = 15  # timed calls; the cost is their median


def get_cost(name: str, *, option: str = "--cost") -> str:
    """``name`` if it is a cost in :data:`COSTS`; else SpecError listing them."""
    if name not in COSTS:
        raise SpecError(
            f"unknown cost '{name}'; known: {', '.join(COSTS)}",
            path=(option,),
            file="<command line>",
        )
    return name


_FROM_PRECHECK: dict[str, Callable[[Precheck], float]] = {
    "gflops": lambda p: p.gflops,
    "params": lambda p: float(p.params),
    # NOTE: a simulated step never runs out of memory; None comes from a measured OOM.
    "train_memory_mb": lambda p: (
        float("inf") if p.train_memory.peak_mb is None else p.train_memory.peak_mb
    ),
}

# Pre-checks by (spec hash, classes, batch), shared by every expansion of the process.
_PRECHECKS: dict[tuple[str, int | None, int], Precheck] = {}
_PRECHECK_CACHE_SIZE = 4096


def _precheck(spec: ModelSpec, digest: str, classes: int | None, batch: int) -> Precheck:
    key = (digest, classes, batch)
    found = _PRECHECKS.get(key)
    if found is None:
        found = _PRECHECKS[key] = precheck(spec, classes=classes, batch=batch)
        while len(_PRECHECKS) > _PRECHECK_CACHE_SIZE:
            _PRECHECKS.pop(next(iter(_PRECHECKS)))
    return found


def _machine(device: str) -> str:
    """What a timing depends on besides the network: the GPU model, or the host."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus"


def _latency(
    spec: ModelSpec, digest: str, classes: int | None, timing: LatencyTiming, cache: CostCache
) -> float:
    model = build_model(spec, classes=classes)
    shape = tuple(model.plan.input_shape)
    options = asdict(timing)
    device = options.pop("device")
    key = CostKey.of(
        digest, shape, batch=1, device=device, precision="fp32", kind="latency",
        machine=_machine(device), backward=False, classes=classes or spec.classes, **options,
    )  # fmt: skip
    result = cache.get_or_compute(
        key,
        lambda: measure_latency(model, shape, device=device, backward=False, **options),
        Latency.from_json,
    )
    if result.median_ms is None:  # out of memory on the GPU: over any latency budget
        return float("inf")
    return result.median_ms


def measure(
    name: str,
    spec: ModelSpec,
    digest: str,
    *,
    classes: int | None = None,
    batch: int = 1,
    timing: LatencyTiming | None = None,
    cache: CostCache | None = None,
) -> float:
    """The cost ``name`` of ``spec`` (whose hash is ``digest``), in the unit of COSTS.

    Args:
        classes: classes the head is built for (default: the spec's).
        batch: clips per training step, for ``train_memory_mb``.
        timing: how ``latency_ms`` is timed (default: :class:`LatencyTiming`).
        cache: where timings are stored (default: ``CostCache()``, see harness.measure).
    """
    if name == "latency_ms":
        return _latency(spec, digest, classes, timing or LatencyTiming(), cache or CostCache())
    return _FROM_PRECHECK[name](_precheck(spec, digest, classes, batch))
