"""Measuring the costs of :mod:`harness.costs._table` for one spec under one request.

    params, gflops, train_gflops,    the pre-check (:func:`harness.measure.precheck`): one
    train_memory_mb                  simulated training step on meta tensors, milliseconds
    gflops_all                       fvcore's trace of the built model (harness.report)
    latency_ms                       timed at batch 1 with fixed threads, cached per machine

A localization spec (``task: localization``) is costed per window of its feature steps by
:func:`harness.localization.costs.precheck_localizer`: the same figures for the network a
localization search varies, reading features (the localization papers' convention: a
backbone named in ``input.backbone`` is fixed, and ``harness compile`` reports its clips).

Every result is cached (:class:`harness.measure.CostCache`): by spec hash, clip, classes and
the step's settings for the pre-check; for timings also by machine and timing settings, so
that a candidate is timed once and a resumed search or expansion sees the same figures.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING

from harness.costs._request import CostRequest, CostRow
from harness.costs._table import COSTS, parse_cost
from harness.measure import (
    CostCache,
    CostKey,
    Latency,
    Precheck,
    fits,
    forward_on_meta,
    measure_latency,
    precheck,
)
from harness.measure.cache import default_cache_dir
from harness.spec import ModelSpec, load_spec, spec_hash
from harness.spec.localization import LocalizationSpec

if TYPE_CHECKING:
    from harness.compiler import VideoNet

__all__ = ["default_cache", "measure_costs"]

_PRECHECK_METHOD = "precheck meta simulation (equal to the fvcore count)"
_CACHE: CostCache | None = None


def default_cache() -> CostCache:
    """The process's cost cache (``$HARNESS_CACHE_DIR``, see harness.measure.CostCache)."""
    global _CACHE
    if _CACHE is None or _CACHE.directory != default_cache_dir():
        _CACHE = CostCache()
    return _CACHE


def measure_costs(
    spec: ModelSpec | LocalizationSpec | str,
    request: CostRequest,
    names: Iterable[str] = (),
    *,
    cache: CostCache | None = None,
) -> CostRow:
    """The costs of ``spec`` under ``request``: the pre-check's always, and ``names``.

    ``names`` may carry the ``trained.`` prefix: a row is measured at the request's clip,
    whichever input that is.

    Raises:
        SpecError: the compiler rejects the spec at the request's clip, or a setting of the
            request is unknown.
        ValueError: a name that is not a cost.
    """
    wanted = {parse_cost(name).cost.name for name in names}
    cache = cache if cache is not None else default_cache()  # NOTE: an empty one is falsy
    if isinstance(spec, LocalizationSpec):
        return _measure_localizer(spec, request, wanted, cache)
    loaded = load_spec(spec)
    pre = precheck(
        loaded, frames=request.frames, size=request.size, classes=request.classes,
        batch=request.batch, grad_accum=request.grad_accum, device=request.device,
        precision=request.precision, optimizer=request.optimizer, cache=cache,
    )  # fmt: skip
    values, methods = _precheck_values(pre, request)
    if "gflops_all" in wanted:
        values["gflops_all"] = _gflops_all(loaded, request, cache)
    if "latency_ms" in wanted:
        values["latency_ms"], methods["latency_ms"] = _latency(loaded, request, cache)
    assert wanted <= values.keys() <= COSTS.keys(), "every cost of the table is measured here"
    return CostRow(values, methods, tuple(pre.input_shape), request)


def _precheck_values(
    pre: Precheck, request: CostRequest
) -> tuple[dict[str, float], dict[str, str]]:
    """The costs the pre-check gives, and how each was measured."""
    peak = pre.train_memory.peak_mb
    values: dict[str, float] = {
        "params": pre.params,
        "gflops": pre.gflops,
        "train_gflops": pre.train_flops / 1e9,
        # NOTE: a simulated step never runs out of memory; None only comes from a real OOM.
        "train_memory_mb": float("inf") if peak is None else peak,
    }
    methods = {
        "gflops": _PRECHECK_METHOD,
        "train_memory_mb": f"{pre.train_memory.method}: {request.describe_step()}",
    }
    return values, methods


def _measure_localizer(
    spec: LocalizationSpec, request: CostRequest, wanted: set[str], cache: CostCache
) -> CostRow:
    """A localization spec's costs per window (the clip settings of ``request`` do not
    apply: a window is the spec's ``input.steps`` feature steps)."""
    from harness.localization.costs import precheck_localizer

    pre = precheck_localizer(
        spec, classes=request.classes, batch=request.batch, grad_accum=request.grad_accum,
        device=request.device, precision=request.precision, optimizer=request.optimizer,
        cache=cache,
    )  # fmt: skip
    values, methods = _precheck_values(pre, request)
    methods["gflops"] += f": one window of {spec.input.steps} feature steps, features given"
    if "gflops_all" in wanted:
        values["gflops_all"], methods["gflops_all"] = _localizer_gflops_all(spec, request, pre)
    if "latency_ms" in wanted:
        values["latency_ms"], methods["latency_ms"] = _localizer_latency(spec, request, cache)
    assert wanted <= values.keys() <= COSTS.keys(), "every cost of the table is measured here"
    return CostRow(values, methods, tuple(pre.input_shape), request)


def _localizer_gflops_all(
    spec: LocalizationSpec, request: CostRequest, pre: Precheck
) -> tuple[float, str]:
    """fvcore's total of one window (features given)."""
    import torch

    from harness.localization.models import build_localizer
    from harness.measure import count_flops

    model = build_localizer(spec, classes=request.classes)
    total = count_flops(model, torch.zeros(1, *pre.input_shape)).flops_all
    return total / 1e9, "fvcore trace of one window, features given"


def _localizer_latency(
    spec: LocalizationSpec, request: CostRequest, cache: CostCache
) -> tuple[float, str]:
    from harness.localization.costs import localizer_hash
    from harness.localization.models import build_localizer

    options = asdict(request.timing)
    device = options.pop("device")
    shape = (spec.input.width, spec.input.steps)
    key = CostKey.of(
        localizer_hash(spec), shape, batch=1, device=device, precision="fp32",
        kind="latency-localizer", machine=_machine(device), backward=False,
        classes=request.classes or spec.classes, **options,
    )  # fmt: skip

    def timed() -> Latency:
        model = build_localizer(spec, classes=request.classes)
        return measure_latency(model, shape, device=device, backward=False, **options)

    result = cache.get_or_compute(key, timed, Latency.from_json)
    method = f"{result.method}, median of {request.timing.repeats}, one window, batch 1"
    method += ", features given"
    if result.median_ms is None:
        return float("inf"), method
    return result.median_ms, method


def _gflops_all(spec: ModelSpec, request: CostRequest, cache: CostCache) -> float:
    from harness.report import describe_model  # NOTE: here: report imports the compiler

    report = describe_model(
        spec, frames=request.frames, size=request.size, classes=request.classes, cache=cache
    )
    # NOTE: None: fvcore's trace would not fit in memory, so neither would training it; such
    # a candidate is over any gflops_all budget, as one out of memory is over any latency.
    return float("inf") if report.gflops_all is None else report.gflops_all


def _machine(device: str) -> str:
    """What a timing depends on besides the network: the GPU model, or the host."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus"


def _latency(spec: ModelSpec, request: CostRequest, cache: CostCache) -> tuple[float, str]:
    from harness.compiler import build_model, planned_input_shape

    options = asdict(request.timing)
    device = options.pop("device")

    def build() -> VideoNet:
        return build_model(spec, frames=request.frames, size=request.size, classes=request.classes)

    shape = planned_input_shape(spec, frames=request.frames, size=request.size)
    if shape is None:  # a spec that cannot be planned: the build names the bad key
        shape = tuple(build().plan.input_shape)
    key = CostKey.of(
        spec_hash(spec), shape, batch=1, device=device, precision="fp32", kind="latency",
        machine=_machine(device), backward=False, classes=request.classes or spec.classes,
        **options,
    )  # fmt: skip

    def timed() -> Latency:
        return measure_latency(build(), shape, device=device, backward=False, **options)

    if cache.get(key) is None:
        ahead = forward_on_meta(
            spec, frames=request.frames, size=request.size, classes=request.classes, scopes=()
        )
        if not fits(ahead.memory.peak_bytes or 0, device):  # it cannot run here: untimed
            return float("inf"), "not timed: its forward pass would not fit in memory"

    result = cache.get_or_compute(key, timed, Latency.from_json)
    threads = "" if result.threads is None else f", {result.threads} thread(s)"
    method = f"{result.method}, median of {request.timing.repeats}, batch 1{threads}"
    if result.median_ms is None:  # out of memory on the GPU: over any latency budget
        return float("inf"), method
    return result.median_ms, method
