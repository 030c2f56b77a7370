"""The results table: one tidy row per trial, ``results/<study>/trials.parquet`` (+ CSV).

This module only reads and writes tables; the search fills the rows. The dashboard reads
these files and nothing else.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pandas as pd

from harness.costs import COSTS, TRAINED

__all__ = [
    "COLUMNS",
    "STATES",
    "TABLE_NAME",
    "load_results",
    "load_study_results",
    "reused",
    "reused_reason",
    "save_results",
    "study_dirs",
]

logger = logging.getLogger(__name__)

TABLE_NAME = "trials.parquet"
STATES = ("complete", "infeasible", "pruned", "failed", "running")

# Fixed columns and their pandas dtypes; one ``param.<key.path>`` column per search parameter
# follows them.
COLUMNS: dict[str, str] = {
    "study": "string",
    "trial": "Int64",
    "state": "string",  # one of STATES
    "spec_hash": "string",  # sha256 of the realised spec: the key everywhere
    "name": "string",  # base spec name
    "family": "string",  # base name and block types
    "mixes_time": "boolean",  # the network combines frames (ModelSpec.mixes_time)
    # data, frames, crop, views, fidelity (localization: data, tIoU protocol, window):
    # metrics compare within one
    "protocol": "string",
    "data": "string",
    "spec_yaml": "string",
    "params": "Int64",  # parameter count
    "gflops": "Float64",  # multiply-adds / 1e9 (1 MAC = 1 FLOP), conv/linear/attention
    "gflops_all": "Float64",  # plus normalisation and pooling
    "train_gflops": "Float64",  # one clip's training step: forward, backward, recomputation
    "train_memory_mb": "Float64",
    "activation_checkpoint": "string",  # stages that recompute activations ("0,1,2"; "": none)
    "checkpoint_retried": "boolean",  # costed again with checkpointing: over a memory budget
    "latency_ms": "Float64",
    "gflops_method": "string",
    "memory_method": "string",
    "latency_method": "string",
    "input_shape": "string",  # C x T x H x W the costs above were measured at (the spec's)
    "top1": "Float64",  # fraction in [0, 1]
    "top5": "Float64",
    "mean_class_acc": "Float64",
    "average_mAP": "Float64",  # localization: mAP over the protocol's tIoU thresholds
    "mAP_50": "Float64",  # localization: mAP at tIoU 0.5
    "feasible": "boolean",
    "violations": "string",  # "gflops<=2.0;latency_ms<=30"
    "budgets": "string",  # JSON {cost: limit}
    "objectives": "string",  # JSON {name: direction}
    "fidelity_epochs": "Int64",
    "fidelity_frames": "Int64",
    "fidelity_size": "Int64",
    "fidelity_subset": "Float64",
    "seed": "Int64",
    "train_seconds": "Float64",
    "eval_seconds": "Float64",
    "overhead_seconds": "Float64",  # everything but training and evaluation
    "duration_seconds": "Float64",
    "datetime_start": "string",  # ISO 8601
    "datetime_complete": "string",
    "history": "string",  # JSON list of per-epoch rows
    "stages": "string",  # JSON list of per-stage rows
    "reason": "string",
    "harness_version": "string",
    "torch_version": "string",
    "optuna_version": "string",
    "host": "string",
    "sampler": "string",
    "step": "Int64",  # expansion runs (issue 7): step, axis, parent spec hash, kept
    "axis": "string",
    "parent": "string",
    "kept": "boolean",
    # The same costs of the network as trained, at the fidelity's clip (harness.costs).
    **{f"{TRAINED}{name}": "Int64" if name == "params" else "Float64" for name in COSTS},
    **{
        f"{TRAINED}{column}": "string"
        for column in ("gflops_method", "memory_method", "latency_method", "input_shape")
    },
}


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Fixed columns in order with their dtypes, then the ``param.*`` columns, sorted."""
    df = df.copy()
    for column, dtype in COLUMNS.items():
        if column not in df.columns:
            df[column] = pd.Series([None] * len(df), dtype=dtype, index=df.index)
        else:
            df[column] = df[column].astype(dtype)
    params = sorted(c for c in df.columns if c.startswith("param."))
    extra = sorted(c for c in df.columns if c not in COLUMNS and c not in params)
    return df[[*COLUMNS, *params, *extra]]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a table is as readable as any file
    try:
        write(tmp)  # type: ignore[operator]
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_results(df: pd.DataFrame, study_dir: str | Path) -> Path:
    """Write ``trials.parquet`` and ``trials.csv`` under ``study_dir`` atomically.

    Parameter columns hold mixed types (a categorical of ints and strings); they are stored
    as text in Parquet so that the file has one type per column.
    """
    study_dir = Path(study_dir)
    table = _typed(df)
    for column in table.columns:
        if column.startswith("param.") and table[column].dtype == object:
            values = table[column]
            kinds = {type(v) for v in values.dropna()}
            if len(kinds) > 1 or kinds - {int, float, str, bool}:
                table[column] = values.map(lambda v: None if v is None else str(v)).astype("string")
    path = study_dir / TABLE_NAME
    _atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False))
    _atomic_write(study_dir / "trials.csv", lambda tmp: table.to_csv(tmp, index=False))
    return path


def load_study_results(study_dir: str | Path) -> pd.DataFrame:
    """The table of one study directory.

    Raises:
        FileNotFoundError: when the directory has no table.
        ValueError: when the table cannot be read (names the file and why).
    """
    path = Path(study_dir) / TABLE_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results table")
    try:
        return _typed(pd.read_parquet(path))
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise ValueError(f"{path}: cannot read the results table ({exc})") from None


_REUSED = "duplicate of trial"  # how the reason of a reused result begins


def reused_reason(trial: int) -> str:
    """The ``reason`` of a trial whose candidate ``trial`` trained: its result is reused."""
    return f"{_REUSED} {trial}: result reused"


def reused(table: pd.DataFrame) -> pd.Series:
    """Which rows of a results table reuse an earlier trial's result (they did not train)."""
    if "reason" not in table:
        return pd.Series(False, index=table.index)
    return table["reason"].fillna("").astype(str).str.startswith(_REUSED)


def study_dirs(results_dir: str | Path) -> list[Path]:
    """The study folders under ``results_dir`` (each holds a results table), sorted; none
    when it is missing or not a folder."""
    root = Path(results_dir)
    return sorted(p.parent for p in root.glob(f"*/{TABLE_NAME}")) if root.is_dir() else []


def load_results(results_dir: str | Path = "results") -> pd.DataFrame:
    """Every study under ``results_dir`` in one table (an empty table with the columns if none).

    A missing directory gives an empty table. A damaged or unreadable study table is skipped
    with a warning that names the file; ``df.attrs["errors"]`` lists those messages.
    """
    frames: list[pd.DataFrame] = []
    errors: list[str] = []
    for folder in study_dirs(results_dir):
        try:
            frames.append(load_study_results(folder))
        except (OSError, ValueError) as exc:
            logger.warning("%s", exc)
            errors.append(str(exc))
    frames = [f for f in frames if not f.empty]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    df = _typed(df)
    df.attrs["errors"] = errors
    return df
