"""A one-line architecture summary of a results row, for tables that would show a hash.

    tiny_c2d: stem 16 | basic(t3) 16 | 2x r2plus1d(t3) 48 | r2plus1d(t3) 96

Read from the row's ``spec_yaml`` (the realised spec the search stored), so it needs neither
torch nor the spec package: per stage, the block kinds with their temporal kernels (``t3/1``
for a cycle) or attention axes, ``Nx`` for a depth of N, and the stage width; a network of
several pathways lists each (``slow: ... ; fast: ...``). A row without a readable spec
falls back to its ``family`` and ``param.*`` values.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import pandas as pd
import yaml

from harness.results._table import reused

__all__ = ["GroupBest", "compare_time_mixing", "search_params", "summarise_architecture"]

PARAM_PREFIX = "param."  # the results table's search-parameter columns

_Row: TypeAlias = Mapping[str, Any] | pd.Series  # a results row: a dict or a table row


def summarise_architecture(row: _Row) -> str:
    """``name: stem W | DEPTHx kind(tK) WIDTH | ...`` of one results row (module docstring).

    Never raises on the row's contents: a missing or damaged ``spec_yaml`` gives the
    ``family`` and the search parameters instead, and a row with neither gives ``""``.
    """
    text = _value(row, "spec_yaml")
    if isinstance(text, str) and (summary := _summarise_yaml(text)):
        return summary
    return _fallback(row)


def _value(row: _Row, key: str) -> Any:
    value = row.get(key)
    if value is None or (not isinstance(value, list | dict) and bool(pd.isna(value))):
        return None
    return value


def search_params(row: _Row) -> list[str]:
    """``key=value`` of each search parameter a results row drew (its ``param.*`` columns;
    a parameter its trial did not draw, a ``when:`` branch not taken, is left out)."""
    keys = row.index if isinstance(row, pd.Series) else row.keys()
    return [
        f"{key[len(PARAM_PREFIX) :]}={_number(value)}"
        for key in keys
        if str(key).startswith(PARAM_PREFIX) and (value := _value(row, key)) is not None
    ]


def _fallback(row: _Row) -> str:
    """``family (key=value, ...)`` from the row's own columns."""
    family = _value(row, "family") or _value(row, "name") or ""
    params = search_params(row)
    return f"{family} ({', '.join(params)})" if params and family else family or ", ".join(params)


# NOTE: libyaml's safe loader where PyYAML has it (7x faster than yaml.safe_load on a spec's
# YAML, which the dashboard summarises row by row): the same SafeConstructor, so no tag in a
# results table can build an object or run code.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=1024)
def _summarise_yaml(text: str) -> str:
    """The summary of a realised spec's YAML; ``""`` when it is not one."""
    try:
        spec = yaml.load(text, Loader=_SAFE_LOADER)
    except yaml.YAMLError:
        return ""
    if not isinstance(spec, dict):
        return ""
    try:
        return _summarise_spec(spec)
    except (TypeError, AttributeError, KeyError, ValueError):  # NOTE: a hand-edited table
        return ""


def _summarise_spec(spec: dict[str, Any]) -> str:
    if not spec.get("name"):  # NOTE: every realised spec has one
        return ""
    name = str(spec["name"])
    pathways = spec.get("pathways")
    if pathways:
        parts = [f"{p.get('name', '?')}: {_trunk(p)}" for p in pathways if isinstance(p, dict)]
        return f"{name}: {' ; '.join(parts)}"
    return f"{name}: {_trunk(spec)}"


def _trunk(node: Mapping[str, Any]) -> str:
    """Stem and stages of one network (or pathway), ``" | "``-separated."""
    parts = [_stem(node.get("stem"))]
    parts += [_stage(stage) for stage in node.get("stages") or () if isinstance(stage, dict)]
    return " | ".join(part for part in parts if part)


def _stem(stem: Any) -> str:
    if not isinstance(stem, dict) or stem.get("type") in (None, "none"):
        return ""
    width = stem.get("width")
    if stem.get("type") == "patch":
        patch = "x".join(str(p) for p in stem.get("patch") or ())
        return f"patch {patch} {width}" if patch else f"patch {width}"
    label = "stem" if stem.get("type") == "conv" else str(stem["type"])
    return f"{label} {width}" if width is not None else label


def _stage(stage: Mapping[str, Any]) -> str:
    """``DEPTHx kind(tK) WIDTH``; an explicit ``blocks`` list as runs of equal kinds."""
    blocks = stage.get("blocks")
    if blocks:
        kinds = _runs(_kind(block) for block in blocks)
    else:
        depth = stage.get("depth") or 1
        kinds = _runs([_kind(stage.get("block"))] * int(depth))
    width = stage.get("width")
    return f"{kinds} {width}" if width is not None else kinds


def _runs(kinds: Iterable[str]) -> str:
    """``["a", "a", "b"]`` -> ``2x a + b``."""
    out: list[list[Any]] = []
    for kind in kinds:
        if out and out[-1][0] == kind:
            out[-1][1] += 1
        else:
            out.append([kind, 1])
    return " + ".join(kind if n == 1 else f"{n}x {kind}" for kind, n in out)


def _kind(block: Any) -> str:
    """``basic(t1)``, ``bottleneck(t3/1)``, ``transformer(time+space)``, or the bare type."""
    if not isinstance(block, dict):
        return "?"
    kind = str(block.get("type", "?"))
    temporal = block.get("temporal_kernel")
    if temporal is not None:
        kernels = temporal if isinstance(temporal, list) else [temporal]
        return f"{kind}(t{'/'.join(str(k) for k in kernels)})"
    attention = block.get("attention")
    if attention:
        axes = attention if isinstance(attention, list) else [attention]
        return f"{kind}({'+'.join(str(a) for a in axes)})"
    return kind


def _number(value: Any) -> str:
    """A parameter value as written (``3``, not ``3.0``: pandas turns int columns with gaps
    into floats)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class GroupBest:
    """The best ``metric`` of a group of trials, and how many of them trained."""

    trained: int  # complete trials that trained (reused duplicates left out)
    best: float | None  # the highest value of the metric among them; None without any

    def to_json(self) -> dict[str, Any]:
        return {"trained": self.trained, "best": self.best}


def compare_time_mixing(table: pd.DataFrame, metric: str = "top1") -> dict[str, GroupBest]:
    """The best ``metric`` among trained networks that mix frames and among those blind to
    their order (``mixes_time``), keyed ``mixes_time`` and ``blind``; ``{}`` when the table
    cannot say (no such column, or a group without a complete trial).

    On a benchmark of time-reversed pairs (the built-in one), the blind group cannot pass
    half the pairs: the two figures side by side say whether time was learned.
    """
    if table.empty or "mixes_time" not in table or metric not in table:
        return {}
    done = table[(table["state"] == "complete") & ~reused(table) & table["mixes_time"].notna()]
    groups = {}
    for key, mixes in (("mixes_time", True), ("blind", False)):
        values = pd.to_numeric(done.loc[done["mixes_time"].astype(bool) == mixes, metric])
        if values.dropna().empty:
            return {}
        groups[key] = GroupBest(int(values.notna().sum()), float(values.max()))
    return groups
