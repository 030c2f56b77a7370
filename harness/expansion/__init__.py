"""X3D-style expansion: grow a small network one axis at a time up to a target cost.

    base spec --CostModel (pre-check or timing, cached by spec hash)--> solve each
        axis's factor --> candidates --evaluate_candidates (harness.search)--> keep the best --> ...
        --> backward contraction onto the target

Axes are a registry (:func:`register_axis`, :func:`create_axis`, :func:`list_axes`): the six
of X3D, plus any numeric key of the spec. See :mod:`harness.expansion.runner`.
"""

from harness.expansion._search import SearchEvaluator, create_space
from harness.expansion.axes import Axis, KeyAxis, create_axis, list_axes, register_axis
from harness.expansion.costs import COSTS, SOLVER_BUDGETS, LatencyTiming
from harness.expansion.runner import (
    DEFAULT_AXES,
    X3D_ORDER,
    X3D_TARGETS,
    Evaluator,
    Expansion,
    ExpansionConfig,
    Step,
    expand_to_target,
)
from harness.expansion.solve import CostModel, solve_factor

__all__ = [
    "COSTS",
    "DEFAULT_AXES",
    "SOLVER_BUDGETS",
    "X3D_ORDER",
    "X3D_TARGETS",
    "Axis",
    "CostModel",
    "Evaluator",
    "Expansion",
    "ExpansionConfig",
    "KeyAxis",
    "LatencyTiming",
    "SearchEvaluator",
    "Step",
    "create_axis",
    "create_space",
    "expand_to_target",
    "list_axes",
    "register_axis",
    "solve_factor",
]
