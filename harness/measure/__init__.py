"""Measurement: pure functions of a model and an input."""

from harness.measure.flops import FlopCount, count_flops, count_params, example_input
from harness.measure.ops import COMPUTE_OPS, IGNORED_OPS, OTHER_OPS, register_compute_op

__all__ = [
    "COMPUTE_OPS",
    "IGNORED_OPS",
    "OTHER_OPS",
    "FlopCount",
    "count_flops",
    "count_params",
    "example_input",
    "register_compute_op",
]
