"""What an expansion can hold to a target, and how hard the solver works on each cost.

The costs themselves come from the cost room (:mod:`harness.costs`): any deployed cost of
its table (``gflops``, ``gflops_all``, ``train_gflops``, ``params``, ``train_memory_mb``,
``latency_ms``), measured under one :class:`~harness.costs.CostRequest` built from the
training step the candidates run (:func:`expansion_request`), so ``train_memory_mb`` is that
step's peak. The pre-check costs are exact and deterministic; a latency is timed once per
candidate and machine and cached, so a re-run of an expansion (a resume) proposes the same
candidates.
:data:`SOLVER_BUDGETS` gives the factor solver few evaluations and a tolerance for timings.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.costs import COSTS, CostRequest, LatencyTiming, measure_costs
from harness.errors import SpecError
from harness.measure import CostCache
from harness.spec import ModelSpec

__all__ = [
    "COSTS",
    "SOLVER_BUDGETS",
    "LatencyTiming",
    "SolverBudget",
    "expansion_request",
    "get_cost",
    "measure",
]


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


def get_cost(name: str, *, option: str = "--cost") -> str:
    """``name`` if it is a deployed cost of :data:`harness.costs.COSTS`; else SpecError."""
    if name not in COSTS:
        raise SpecError(
            f"unknown cost '{name}'; known: {', '.join(COSTS)}",
            path=(option,),
            file="<command line>",
        )
    return name


def expansion_request(
    *, batch: int, classes: int | None = None, timing: LatencyTiming | None = None
) -> CostRequest:
    """The cost request of an expansion whose candidates train at ``batch`` clips a step
    with the default recipe (:class:`harness.train.TrainConfig`)."""
    from harness.train.config import TrainConfig

    config = TrainConfig(batch_size=batch, num_workers=0)
    return CostRequest.for_training(config, classes=classes, timing=timing)


def measure(
    name: str,
    spec: ModelSpec,
    request: CostRequest,
    *,
    cache: CostCache | None = None,
) -> float:
    """The cost ``name`` of ``spec`` under ``request``, in the unit of :data:`COSTS`."""
    row = measure_costs(spec, request, [name], cache=cache)
    value = row.get(name)
    assert value is not None, "measure_costs measures what it is asked for"
    return float(value)
