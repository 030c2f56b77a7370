"""What can be measured about a network: one table, and the names that reach it.

Each cost is measured at one input. A bare name (``gflops``) is the cost of the *deployed*
network, at the spec's own clip: what budgets apply to by default, as the X3D and NAS
papers budget the final network. ``trained.<name>`` is the same cost of the network *as a
search trains it*, at the fidelity's clip (shorter, smaller clips train faster). Every
name of :func:`list_costs` can be an objective and a budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "COSTS",
    "TRAINED",
    "Cost",
    "CostName",
    "get_cost",
    "is_cost",
    "list_costs",
    "parse_cost",
]

TRAINED = "trained."  # prefix of a cost measured at the clip the search trains at
Method = Literal["precheck", "fvcore", "timed"]


@dataclass(frozen=True)
class Cost:
    """One measurable cost of a network (lower is better for every one of them)."""

    name: str  # the column and option name: gflops, params, ...
    unit: str  # as tables print it
    label: str  # an axis title
    method: Method  # precheck: one simulated step on meta tensors (exact, milliseconds);
    # fvcore: fvcore's trace of the built model; timed: wall clock on this machine
    description: str  # what exactly is counted
    direction: Literal["minimize"] = "minimize"


COSTS: dict[str, Cost] = {
    cost.name: cost
    for cost in (
        Cost(
            "gflops",
            "GFLOPs",
            "GFLOPs",
            "precheck",
            "multiply-adds of one clip (a localizer's: one window of feature steps, features "
            "given) / 1e9 (1 multiply-add = 1 FLOP): convolutions, linear layers, matrix "
            "products, einsum and attention",
        ),
        Cost(
            "gflops_all",
            "GFLOPs",
            "GFLOPs (incl. norm/pool)",
            "fvcore",
            "gflops plus normalisation and pooling (fvcore's total)",
        ),
        Cost(
            "train_gflops",
            "GFLOPs",
            "training GFLOPs",
            "precheck",
            "multiply-adds of one clip's training step / 1e9: the forward pass, a backward "
            "pass of twice it (input and weight gradients), and the forward passes that "
            "activation checkpointing recomputes",
        ),
        Cost("params", "parameters", "parameters", "precheck", "every parameter"),
        Cost(
            "train_memory_mb",
            "MiB",
            "train memory (MiB)",
            "precheck",
            "peak memory of one training step as it runs: its batch, gradient accumulation, "
            "optimizer, precision and device",
        ),
        Cost(
            "latency_ms",
            "ms",
            "latency (ms)",
            "timed",
            "median inference time at batch 1 with a fixed thread count, cached per machine",
        ),
    )
}


@dataclass(frozen=True)
class CostName:
    """A cost name taken apart: which cost, and at which input."""

    cost: Cost
    trained: bool  # at the fidelity's clip (``trained.`` prefix), else at the spec's

    @property
    def name(self) -> str:
        return f"{TRAINED}{self.cost.name}" if self.trained else self.cost.name


def list_costs() -> list[str]:
    """Every name an objective or a budget may use: deployed costs, then trained-at ones."""
    return [*COSTS, *(f"{TRAINED}{name}" for name in COSTS)]


def is_cost(name: str) -> bool:
    return name in COSTS or (name.startswith(TRAINED) and name.removeprefix(TRAINED) in COSTS)


def parse_cost(name: str) -> CostName:
    """``"trained.gflops"`` -> (gflops, trained); ValueError listing the names otherwise."""
    base = name.removeprefix(TRAINED)
    if base not in COSTS:
        raise ValueError(f"unknown cost '{name}'; known: {', '.join(list_costs())}")
    return CostName(COSTS[base], trained=name.startswith(TRAINED))


def get_cost(name: str) -> Cost:
    """The table entry of ``name`` (either input); ValueError listing the names otherwise."""
    return parse_cost(name).cost
