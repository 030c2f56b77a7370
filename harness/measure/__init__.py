"""Measurement: pure functions of a model (or a spec) and an input.

FLOPs and parameters (fvcore), activation counts, training and inference memory (measured
on a device, or simulated on meta tensors), latency, a fast budget pre-check of a spec, and
a cache of results keyed by spec hash.
"""

from harness.measure._runtime import (
    OPTIMIZERS,
    PRECISIONS,
    check_batch,
    create_optimizer,
    get_device,
    get_precision,
)
from harness.measure.cache import CostCache, CostKey
from harness.measure.fits import (
    MEMORY_ENV,
    DoesNotFit,
    check_fits,
    fits,
    format_bytes,
    memory_limit,
)
from harness.measure.flops import FlopCount, count_flops, count_params, example_input
from harness.measure.latency import Latency, Spread, measure_latency
from harness.measure.memory import (
    MIB,
    InferenceMemory,
    TrainMemory,
    count_activations,
    estimate_inference_memory,
    estimate_train_memory,
    measure_inference_memory,
    measure_train_memory,
)
from harness.measure.ops import COMPUTE_OPS, IGNORED_OPS, OTHER_OPS, register_compute_op
from harness.measure.precheck import MetaForward, Precheck, forward_on_meta, precheck

__all__ = [
    "COMPUTE_OPS",
    "IGNORED_OPS",
    "MEMORY_ENV",
    "MIB",
    "OPTIMIZERS",
    "OTHER_OPS",
    "PRECISIONS",
    "CostCache",
    "CostKey",
    "DoesNotFit",
    "FlopCount",
    "InferenceMemory",
    "Latency",
    "MetaForward",
    "Precheck",
    "Spread",
    "TrainMemory",
    "check_batch",
    "check_fits",
    "count_activations",
    "count_flops",
    "count_params",
    "create_optimizer",
    "estimate_inference_memory",
    "estimate_train_memory",
    "example_input",
    "fits",
    "format_bytes",
    "forward_on_meta",
    "get_device",
    "get_precision",
    "measure_inference_memory",
    "measure_latency",
    "measure_train_memory",
    "memory_limit",
    "precheck",
    "register_compute_op",
]
