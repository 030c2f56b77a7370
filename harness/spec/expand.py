"""X3D expansion: a pure function from a spec and factors to a realised spec.

One rounding rule for all of harness: widths to the nearest multiple of 8 (never more than
10% below the exact value, as PySlowFast/PyTorchVideo round), depths rounded up.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError

from harness.errors import SpecError
from harness.spec._errors import error_message, error_path
from harness.spec.limits import check_limits
from harness.spec.load import locate
from harness.spec.schema import ExpansionSpec, ModelSpec

__all__ = ["expand", "realise", "round_repeats", "round_width"]


def round_width(width: float, factor: float = 1.0, divisor: int = 8) -> int:
    """Scale a channel width and round it to a multiple of ``divisor``.

    The result is the nearest multiple of ``divisor`` (at least ``divisor``), bumped up by
    one ``divisor`` when rounding went more than 10% below ``width * factor``.
    """
    exact = width * factor
    rounded = max(divisor, int(exact + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * exact:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, factor: float = 1.0) -> int:
    """Scale a block count and round it up: ``ceil(repeats * factor)``."""
    return math.ceil(repeats * factor)


def _width(value: int | None, factor: float) -> int | None:
    if value is None or factor == 1.0:
        return value
    return round_width(value, factor)


def _expand_block(block: dict[str, Any], f: ExpansionSpec) -> dict[str, Any]:
    branches = block.get("branches")
    if branches is not None and f.width != 1.0:
        block = {**block, "branches": {k: round_width(v, f.width) for k, v in branches.items()}}
    return block


def _expand_stage(stage: dict[str, Any], f: ExpansionSpec, index: int) -> dict[str, Any]:
    out = dict(stage)
    out["width"] = _width(stage["width"], f.width)
    if stage["inner_width"] is not None:
        inner = _width(stage["inner_width"], f.width)
        out["inner_width"] = _width(inner, f.bottleneck)
    if stage["bottleneck_ratio"] is not None:
        out["bottleneck_ratio"] = stage["bottleneck_ratio"] * f.bottleneck
    if stage["block"] is not None:
        out["block"] = _expand_block(stage["block"], f)
        out["depth"] = round_repeats(stage["depth"], f.depth)
    else:
        if f.depth != 1.0:
            raise SpecError(
                "the stage lists its blocks one by one; a depth factor cannot repeat them",
                path=("stages", index, "blocks"),
            )
        out["blocks"] = [_expand_block(b, f) for b in stage["blocks"]]
    return out


def _expand_stem(stem: dict[str, Any] | None, factor: float) -> None:
    if stem is None:
        return
    for key in ("width", "mid_width"):
        if stem.get(key) is not None:
            stem[key] = _width(stem[key], factor)


def _expand_trunk(trunk: dict[str, Any], f: ExpansionSpec, prefix: tuple[str | int, ...]) -> None:
    """Expand the stem and stages of ``trunk`` (the spec itself, or one pathway) in place."""
    _expand_stem(trunk["stem"], f.width)
    stages = []
    for i, stage in enumerate(trunk["stages"]):
        try:
            stages.append(_expand_stage(stage, f, i))
        except SpecError as exc:
            raise SpecError(exc.message, path=(*prefix, *exc.path)) from None
    trunk["stages"] = stages


def expand(spec: ModelSpec, factors: ExpansionSpec) -> ModelSpec:
    """Apply expansion ``factors`` to ``spec``; the result carries factors of 1.

    frames x gamma_t (rounded, at least 1); sampling stride / gamma_tau (rounded, at least
    1); crop size x gamma_s (rounded); every width x gamma_w and inner width x gamma_b
    (:func:`round_width`); every stage depth x gamma_d (:func:`round_repeats`).
    Widths a factor of 1 leaves alone stay exactly as written.

    Raises:
        SpecError: an expanded value leaves its range, naming the key and its line.
    """
    if factors.is_identity():
        return spec
    try:
        return _expand(spec, factors)
    except SpecError as exc:
        raise locate(spec, exc) from None


def _expand(spec: ModelSpec, factors: ExpansionSpec) -> ModelSpec:
    data = spec.model_dump(mode="python", round_trip=True)
    clip = data["clip"]
    clip["frames"] = max(1, round(clip["frames"] * factors.frames))
    clip["stride"] = max(1, round(clip["stride"] / factors.stride))
    clip["size"] = max(1, round(clip["size"] * factors.size))
    if data["pathways"] is None:
        _expand_trunk(data, factors, ())
    for i, pathway in enumerate(data["pathways"] or ()):
        _expand_trunk(pathway, factors, ("pathways", i))
    head = data["head"]
    if head.get("conv_ratio") is not None:
        head["conv_ratio"] = head["conv_ratio"] * factors.bottleneck
    data["expansion"] = {}
    return _revalidate(spec, data, "after expansion")


def _revalidate(spec: ModelSpec, data: dict[str, Any], when: str) -> ModelSpec:
    """Validate the realised ``data`` of ``spec``; errors name the key and ``when``."""
    try:
        out = ModelSpec.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        path = error_path(data, error["loc"])
        message = error_message(error)
        raise locate(spec, SpecError(f"{message} ({when})", path=path)) from None
    out._origin = spec._origin
    return out


def _scale(value: int | None, ratio: float) -> int | None:
    return None if value is None else max(1, round(value * ratio))


def _apply_width_ratio(pathway: dict[str, Any]) -> dict[str, Any]:
    """Multiply a pathway's widths by its ``width_ratio`` (SlowFast's beta), exactly."""
    ratio = pathway["width_ratio"]
    if ratio == 1.0:
        return pathway
    stem = dict(pathway["stem"])
    for key in ("width", "mid_width"):
        if stem.get(key) is not None:
            stem[key] = _scale(stem[key], ratio)
    stages = [
        {**s, "width": _scale(s["width"], ratio), "inner_width": _scale(s["inner_width"], ratio)}
        for s in pathway["stages"]
    ]
    return {**pathway, "stem": stem, "stages": stages, "width_ratio": 1.0}


def realise(spec: ModelSpec) -> ModelSpec:
    """The spec as built and hashed: expansion factors and pathway width ratios applied.

    Raises:
        SpecError: a realised value leaves its range, or the network is too large to build
            (:func:`harness.spec.limits.check_limits`).
    """
    spec = expand(spec, spec.expansion)
    if spec.pathways is not None and any(p.width_ratio != 1.0 for p in spec.pathways):
        data = spec.model_dump(mode="python", round_trip=True)
        data["pathways"] = [_apply_width_ratio(p) for p in data["pathways"]]
        spec = _revalidate(spec, data, "after the pathway width ratios")
    try:
        check_limits(spec)
    except SpecError as exc:
        raise locate(spec, exc) from None
    return spec
