"""The dashboard's one door to the results store: read it, clean it, filter it.

Layout (written by ``harness search``)::

    results/
      <study>/trials.parquet   one row per trial (trials.csv alongside, as a fallback)
      zoo_reference.csv        published zoo models: name, protocol, top1, params, gflops, source

The tables are read by ``harness.results`` (the store's owner; it imports neither torch
nor Optuna), as are the Pareto set, hypervolume and knee point, so the dashboard and the
search agree on them. This module adds what a dashboard needs on top: a clear error for a
missing directory, the problems found (a damaged study table is skipped, rows without a
trial number dropped), plain dtypes for plotting, the zoo reference points, a cache key.
Reading is read-only and lock-free: the search replaces files atomically, and nothing here
opens a file for writing, so a running study is never disturbed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dashboard._metrics import best_under_budget, minimization_points, param_importance
from harness.costs import COSTS, TRAINED
from harness.results import (
    STATES,
    hypervolume,
    knee_point,
    load_results,
    pareto_mask,
    study_budgets,
    summarise_architecture,
)

__all__ = [
    "COST_COLUMNS",
    "METRIC_COLUMNS",
    "STATES",
    "Filters",
    "Store",
    "StoreError",
    "apply_filters",
    "architecture_summaries",
    "best_under_budget",
    "column_label",
    "hypervolume",
    "knee_point",
    "list_protocols",
    "load_results",
    "load_store",
    "minimization_points",
    "param_columns",
    "param_importance",
    "pareto_mask",
    "pareto_mask_by_protocol",
    "parse_json_column",
    "short_param_names",
    "short_protocol_labels",
    "store_signature",
    "study_budgets",
]

# What training measures (harness.search.space.METRICS): a recognizer's accuracies and a
# localizer's detection mAP, all fractions in [0, 1], higher is better.
METRIC_COLUMNS = {
    "top1": "top-1",
    "top5": "top-5",
    "mean_class_acc": "mean class accuracy",
    "average_mAP": "average mAP",
    "mAP_50": "mAP@0.5",
}
# The cost room's table (harness.costs): the deployed network's costs, then the trained ones.
COST_COLUMNS = {name: cost.label for name, cost in COSTS.items()} | {
    f"{TRAINED}{name}": f"{cost.label}, as trained" for name, cost in COSTS.items()
}


def column_label(column: str) -> str:
    """A readable name for a result column (``top1`` -> ``top-1``, ``gflops`` -> ``GFLOPs``)."""
    return {**METRIC_COLUMNS, **COST_COLUMNS}.get(column, column)


_TEXT = [
    "study",
    "name",
    "family",
    "protocol",
    "data",
    "spec_hash",
    "spec_yaml",
    "state",
    "gflops_method",
    "memory_method",
    "latency_method",
    "violations",
    "budgets",
    "objectives",
    "datetime_start",
    "datetime_complete",
    "history",
    "stages",
    "reason",
    "harness_version",
    "torch_version",
    "optuna_version",
    "host",
    "sampler",
    "axis",
    "parent",
]
_NUMBER = [
    *METRIC_COLUMNS,
    *COST_COLUMNS,
    *["fidelity_subset", "train_seconds", "eval_seconds", "overhead_seconds", "duration_seconds"],
]
_INTEGER = ["trial", "fidelity_epochs", "fidelity_frames", "fidelity_size", "seed", "step"]
_BOOLEAN = ["feasible", "kept"]
_FILES = ("trials.parquet",)
ZOO_FILE = "zoo_reference.csv"


class StoreError(Exception):
    """The results directory itself is unusable (missing, or not a directory)."""


@dataclass(frozen=True)
class Store:
    """What one read of a results directory found.

    Attributes:
        trials: every trial of every readable study, contract columns all present.
        zoo: published reference points (possibly empty).
        problems: one readable line per file or row that was skipped.
    """

    trials: pd.DataFrame
    zoo: pd.DataFrame
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Filters:
    """A selection of trials; ``None`` or empty means "no restriction"."""

    studies: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)


def _study_files(results_dir: Path) -> list[Path]:
    files = []
    for study in sorted(p for p in results_dir.iterdir() if p.is_dir()):
        files += [study / name for name in _FILES if (study / name).is_file()]
    return files


def store_signature(results_dir: str | Path) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime_ns, size) of every file the store reads: a cache key that changes
    whenever a running study writes."""
    root = Path(results_dir)
    if not root.is_dir():
        return ()
    files = [*_study_files(root), root / ZOO_FILE]
    return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files if p.is_file())


def load_store(results_dir: str | Path) -> Store:
    """Read every study under ``results_dir``, tolerating damaged tables and rows.

    Raises:
        StoreError: ``results_dir`` does not exist or is not a directory.
    """
    root = Path(results_dir)
    if not root.exists():
        raise StoreError(f"results directory {root} does not exist")
    if not root.is_dir():
        raise StoreError(f"{root} is not a directory")
    raw = load_results(root)
    problems = [str(e)[:300] for e in raw.attrs.get("errors", [])]
    keyed = pd.to_numeric(raw["trial"], errors="coerce").notna() & raw["study"].notna()
    if not keyed.all():
        problems.append(f"{int((~keyed).sum())} row(s) without a study or trial number skipped")
    zoo, zoo_problems = _read_zoo(root / ZOO_FILE)
    return Store(trials=_normalize(raw[keyed]), zoo=zoo, problems=tuple(problems + zoo_problems))


def _read_zoo(path: Path) -> tuple[pd.DataFrame, list[str]]:
    columns = ["name", "protocol", "top1", "params", "gflops", "source"]
    empty = pd.DataFrame({c: pd.Series(dtype=float if c in _NUMBER else "str") for c in columns})
    if not path.is_file():
        return empty, []
    try:
        zoo = pd.read_csv(path)
    except Exception as exc:
        return empty, [f"{path}: unreadable ({type(exc).__name__})"]
    for column in columns:
        if column not in zoo.columns:
            zoo[column] = np.nan if column in _NUMBER else ""
    for column in ("top1", "params", "gflops"):
        zoo[column] = pd.to_numeric(zoo[column], errors="coerce")
    if zoo["top1"].max() > 1.5:  # NOTE: published tables give percent; the store, fractions
        zoo["top1"] = zoo["top1"] / 100
    zoo["protocol"] = zoo["protocol"].astype("str")
    return zoo[columns], []


def _normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Give every contract column its type; absent columns become missing values."""
    df = df.copy() if len(df) else pd.DataFrame(index=pd.RangeIndex(0))
    n = len(df)
    for column in _TEXT:
        values = df[column] if column in df else pd.Series([None] * n, index=df.index)
        df[column] = values.where(values.notna(), "").astype("str")
    for column in _NUMBER:
        values = df[column] if column in df else pd.Series(np.nan, index=df.index)
        df[column] = pd.to_numeric(values, errors="coerce").astype(float)
    for column in _INTEGER:
        values = df[column] if column in df else pd.Series(np.nan, index=df.index)
        df[column] = pd.to_numeric(values, errors="coerce").round().astype("Int64")
    for column in _BOOLEAN:
        values = df[column] if column in df else pd.Series(pd.NA, index=df.index)
        df[column] = values.map(_to_bool, na_action="ignore").astype("boolean")
    df["state"] = df["state"].str.lower().str.strip()
    df["feasible"] = df["feasible"].fillna(df["violations"] == "").astype(bool)
    df["protocol"] = df["protocol"].where(df["protocol"] != "", "(unknown protocol)")
    return df.sort_values(["study", "trial"], kind="stable").reset_index(drop=True)


def _to_bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes", "t"}
    return bool(value)


def param_columns(df: pd.DataFrame) -> list[str]:
    """The search-parameter columns (``param.<key.path>``) that vary in ``df``."""
    columns = [c for c in df.columns if c.startswith("param.")]
    return [c for c in columns if df[c].nunique(dropna=True) > 1]


def parse_json_column(values: Iterable[str]) -> list[object]:
    """Decode JSON cells; an empty or undecodable cell becomes ``None``."""
    cache: dict[str, object] = {}
    out = []
    for text in values:
        if text not in cache:
            try:
                cache[text] = json.loads(text) if text else None
            except (TypeError, ValueError):
                cache[text] = None
        out.append(cache[text])
    return out


def list_protocols(df: pd.DataFrame) -> list[str]:
    """Protocols in ``df``, the one with the most complete trials first."""
    if df.empty:
        return []
    done = df["state"].eq("complete")
    counts = done.groupby(df["protocol"]).sum().sort_values(ascending=False, kind="stable")
    return [str(p) for p in counts.index]


def pareto_mask_by_protocol(
    df: pd.DataFrame, objectives: Mapping[str, str], *, by: Iterable[str] = ("protocol",)
) -> np.ndarray:
    """Pareto mask computed separately inside each protocol (and each ``by`` group).

    Only complete, feasible trials compete: accuracy under different evaluation protocols
    is not comparable, so no trial ever dominates one of another protocol.
    """
    mask = np.zeros(len(df), dtype=bool)
    eligible = df["state"].eq("complete").to_numpy() & df["feasible"].to_numpy(dtype=bool)
    positions = pd.Series(np.arange(len(df)), index=df.index)
    for _, group in df[eligible].groupby(list(by), sort=False, dropna=False):
        mask[positions[group.index].to_numpy()] = np.asarray(pareto_mask(group, objectives))
    return mask


def apply_filters(df: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    """Rows of ``df`` that pass ``filters``; a range drops rows whose value is missing."""
    keep = pd.Series(True, index=df.index)
    for column, allowed in (
        ("study", filters.studies),
        ("family", filters.families),
        ("state", filters.states),
    ):
        if allowed:
            keep &= df[column].isin(allowed)
    for column, (low, high) in filters.ranges.items():
        keep &= df[column].between(low, high).fillna(False).astype(bool)
    return df[keep]


def architecture_summaries(df: pd.DataFrame) -> pd.Series:
    """One line per row saying what the network is, for tables that would show a bare hash.

    ``x3d_s: stem 24 | 3x x3d(t3) 24 | 5x x3d(t3) 48 | ...``: the base spec, then per stage
    the block kinds (with temporal kernels) and the width, read from the row's stored
    ``spec_yaml`` by the results store's ``summarise_architecture``; a row without a
    readable spec gives its ``family`` and ``param.*`` values. Meant for the few rows of a
    table (a Pareto set, an expansion path), not for every trial: it parses YAML.
    """
    if df.empty:
        return pd.Series([], index=df.index, dtype="str", name="architecture")
    params = [c for c in df.columns if c.startswith("param.")]
    keep = [c for c in ("spec_yaml", "family", "name") if c in df.columns] + params
    summaries = [summarise_architecture(row) for _, row in df[keep].iterrows()]
    return pd.Series(summaries, index=df.index, dtype="str", name="architecture")


# Path parts that name a list (``stages.1`` -> ``s1``) and parts a short name leaves out.
_LIST_PARTS = {"stages": "s", "pathways": "p", "blocks": "b", "laterals": "lateral"}


def _short_param(column: str) -> str:
    """``param.stages.1.block.type`` -> ``s1.block``; ``param.stem.kernel.0`` ->
    ``stem.kernel[0]``; ``param.stages.0.block.temporal_kernel`` -> ``s0.temporal_kernel``."""
    parts = column.removeprefix("param.").split(".")
    if len(parts) > 1 and parts[-1] == "type":  # a block's (stem's, head's) type is its kind
        parts = parts[:-1]
    out: list[str] = []
    for i, part in enumerate(parts):
        if part.isdigit() and out and i > 0 and parts[i - 1] in _LIST_PARTS:
            out[-1] = f"{_LIST_PARTS[parts[i - 1]]}{part}"
        elif part.isdigit() and out:
            out[-1] += f"[{part}]"
        elif part == "block" and i < len(parts) - 1 and out:
            continue  # ``s1.block.temporal_kernel``: the stage has one block spec
        else:
            out.append(part)
    return ".".join(out)


def short_param_names(columns: Iterable[str]) -> dict[str, str]:
    """Readable labels for ``param.*`` columns, unique among ``columns``.

    Stages, pathways and block lists shorten to ``s1``, ``p0``, ``b2``; a trailing ``type``
    and a ``block`` in the middle are dropped. Where two columns would get the same label,
    both keep their full key path (without ``param.``).
    """
    columns = list(dict.fromkeys(columns))
    short = {c: _short_param(c) for c in columns}
    counts = pd.Series(list(short.values()), dtype="str").value_counts()
    return {c: s if counts[s] == 1 else c.removeprefix("param.") for c, s in short.items()}


def short_protocol_labels(protocols: Iterable[str]) -> dict[str, str]:
    """Labels that keep only the ``|``-separated fields in which ``protocols`` differ.

    ``kinetics400|frames=16|...|epochs=100`` and ``...|epochs=10`` become ``epochs=100`` and
    ``epochs=10`` (several fields are joined by ``", "``). A single protocol, or protocols
    that do not split into the same number of fields, keep their full text.
    """
    protocols = list(dict.fromkeys(str(p) for p in protocols))
    fields = [p.split("|") for p in protocols]
    if len(protocols) < 2 or len({len(f) for f in fields}) != 1:
        return {p: p for p in protocols}
    differ = [i for i in range(len(fields[0])) if len({f[i] for f in fields}) > 1]
    return {p: ", ".join(f[i] for i in differ) for p, f in zip(protocols, fields, strict=True)}
