"""Expansion axes: what one X3D expansion step may grow, as a registry.

An axis multiplies one or more numeric keys of the base spec by a factor. Factors are
cumulative over the base (the candidate of a path is the base spec with every key it
touched multiplied by the product of the factors taken along that axis), so that the X3D
models are exactly X2D plus ``expansion`` factors.

The six axes of X3D (Feichtenhofer, "X3D: Expanding Architectures for Efficient Video
Recognition", CVPR 2020) multiply ``expansion`` factors of :class:`ExpansionSpec`:

    frames      gamma_t    more frames at the same sampling stride (longer duration)
    frame_rate  gamma_tau  more frames over the same duration: frames x f, stride / f
    size        gamma_s    spatial resolution
    width       gamma_w    every channel width
    bottleneck  gamma_b    inner (bottleneck) widths
    depth       gamma_d    blocks per stage

Any other numeric key of the spec (``pathways.0.frame_stride``, ``stages.2.depth``) is an
axis too: :func:`create_axis` returns a :class:`KeyAxis` for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.errors import SpecError
from harness.registry import Registry, suggest
from harness.spec import ModelSpec

__all__ = [
    "Axis",
    "ExpansionAxis",
    "FrameRateAxis",
    "FramesAxis",
    "KeyAxis",
    "create_axis",
    "list_axes",
    "register_axis",
]

FACTOR_LIMIT = 100.0  # ExpansionSpec accepts factors up to 100


@dataclass(frozen=True)
class Axis:
    """One way to grow a network.

    Attributes:
        name: what the user calls it (``--axes``, the ``axis`` column).
        keys: key paths of the spec it multiplies; a path run's factors over every axis
            touching a key multiply together.
    """

    name: str
    keys: tuple[str, ...]

    def headroom(self, current: ModelSpec) -> tuple[float, str]:
        """The largest factor this axis may still apply to the realised ``current`` spec,
        and why it stops there (``""``: no limit of its own). The clip's span (frames x
        stride) against the video length is checked for every axis by the cost model."""
        del current
        return math.inf, ""


@dataclass(frozen=True)
class ExpansionAxis(Axis):
    """An axis that multiplies one X3D expansion factor (``expansion.<field>``)."""


@dataclass(frozen=True)
class FramesAxis(ExpansionAxis):
    """gamma_t: frames x f at the same stride (the clip spans a longer duration)."""


@dataclass(frozen=True)
class FrameRateAxis(ExpansionAxis):
    """gamma_tau: frames x f and stride / f together (same duration, higher frame rate)."""

    def headroom(self, current: ModelSpec) -> tuple[float, str]:
        stride = current.clip.stride
        return float(stride), f"clip.stride is {stride}: the frame rate cannot rise further"


@dataclass(frozen=True)
class KeyAxis(Axis):
    """Any numeric key of the spec, multiplied directly (integers are rounded)."""


AxisFactory = Callable[[], Axis]
_AXES: Registry[AxisFactory] = Registry("expansion axis")
_ALIASES = {
    "gamma_t": "frames",
    "gamma_tau": "frame_rate",
    "stride": "frame_rate",
    "gamma_s": "size",
    "gamma_w": "width",
    "gamma_b": "bottleneck",
    "gamma_d": "depth",
}


def register_axis(name: str) -> Callable[[AxisFactory], AxisFactory]:
    """Decorator registering a factory ``() -> Axis`` under ``name``."""
    return _AXES.register(name)


def list_axes() -> list[str]:
    """Names of the registered axes (any numeric spec key is an axis as well)."""
    return _AXES.names()


register_axis("frames")(lambda: FramesAxis("frames", ("expansion.frames",)))
register_axis("frame_rate")(
    lambda: FrameRateAxis("frame_rate", ("expansion.frames", "expansion.stride"))
)
register_axis("size")(lambda: ExpansionAxis("size", ("expansion.size",)))
register_axis("width")(lambda: ExpansionAxis("width", ("expansion.width",)))
register_axis("bottleneck")(lambda: ExpansionAxis("bottleneck", ("expansion.bottleneck",)))
register_axis("depth")(lambda: ExpansionAxis("depth", ("expansion.depth",)))


def key_value(data: Any, key: str) -> Any:
    """The value at dotted ``key`` in plain data, or None where the path leads nowhere."""
    node = data
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif (
            isinstance(node, list)
            and part.lstrip("-").isdigit()
            and -len(node) <= int(part) < len(node)
        ):
            node = node[int(part)]
        else:
            return None
    return node


def create_axis(name: str, spec: ModelSpec, *, option: str = "--axes") -> Axis:
    """The axis called ``name``: a registered one (or its paper symbol), else a numeric key.

    Raises:
        SpecError: naming ``name`` when it is neither (``option`` is the key path shown).
    """
    canonical = _ALIASES.get(name, name)
    if canonical in _AXES:
        return _AXES.get(canonical)()
    value = key_value(spec.model_dump(mode="json"), name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return KeyAxis(name, (name,))
    known = list_axes()
    hint = suggest(name, [*known, *_ALIASES])
    what = "is not a number" if value is not None else "is not a key"
    raise SpecError(
        f"axis '{name}'{hint} {what} of spec '{spec.name}' and not a known axis "
        f"({', '.join(known)}, or a numeric key path such as stages.0.depth)",
        path=(option,),
        file="<command line>",
    )
