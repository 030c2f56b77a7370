"""Optuna trials -> results-table rows, and the export to ``results/<study>/``."""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from harness.errors import HarnessError
from harness.results import COLUMNS, save_results
from harness.search._evaluate import ROW_ATTR

__all__ = ["DISCARDED_ATTR", "KEPT_ATTR", "export_results", "trial_row", "trials_frame"]

DISCARDED_ATTR = "discarded"  # a trial asked for but never run (see run_worker)
# Study attribute: trial numbers an expansion kept. NOTE: a study attribute, because a
# finished trial takes no new user attributes in the RDB storages, and "kept" is decided
# only after the trials of a step have finished.
KEPT_ATTR = "harness.kept"

_JSON_COLUMNS = ("history", "stages")
_STATE = {
    TrialState.RUNNING: "running",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}


def trial_row(
    study_name: str, trial: FrozenTrial, kept: Collection[int] | None = None
) -> dict[str, Any] | None:
    """One row of the results table; None for a trial that has not started (waiting).

    ``kept``: the trials an expansion kept, for the ``kept`` column of its rows.
    """
    if trial.state == TrialState.WAITING or trial.user_attrs.get(DISCARDED_ATTR):
        return None
    stored: dict[str, Any] = dict(trial.user_attrs.get(ROW_ATTR) or {})
    row: dict[str, Any] = {k: v for k, v in stored.items() if k in COLUMNS}
    row["study"] = study_name
    row["trial"] = trial.number
    state = _STATE.get(trial.state) or stored.get("state", "complete")
    row["state"] = "running" if trial.state == TrialState.RUNNING else state
    if trial.state == TrialState.FAIL:
        # NOTE: only a stale-heartbeat sweep fails a trial that never recorded an outcome
        unfinished = stored.get("state", "running") == "running"
        row["reason"] = stored.get("reason") or (
            "interrupted (its worker stopped sending heartbeats); re-run"
            if unfinished
            else "failed"
        )
    for column in _JSON_COLUMNS:
        row[column] = json.dumps(stored.get(column) or [])
    values = stored.get("values", trial.params)
    for key, value in values.items():
        row[f"param.{key}"] = value
    for key in ("step", "axis", "parent", "kept"):
        if key in trial.user_attrs:
            row[key] = trial.user_attrs[key]
    if kept is not None and "step" in trial.user_attrs:
        row["kept"] = trial.number in kept
    if trial.datetime_start is not None:
        row.setdefault("datetime_start", trial.datetime_start.isoformat(timespec="seconds"))
    if row["state"] != "running":
        row.setdefault("train_seconds", 0.0)
    return row


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """Every started trial of ``study`` as one table, ordered by trial number."""
    kept = study.user_attrs.get(KEPT_ATTR)
    kept = None if kept is None else set(kept)
    rows = [trial_row(study.study_name, t, kept) for t in study.get_trials(deepcopy=False)]
    return pd.DataFrame([r for r in rows if r is not None])


def export_results(study: optuna.Study, results_dir: str | Path) -> Path:
    """Write ``results/<study>/trials.parquet`` and ``trials.csv``; returns the Parquet path.

    Raises:
        HarnessError: the table cannot be written (a full disk...). The trials themselves
            are in the study's storage: running the same command again writes the table.
    """
    folder = Path(results_dir) / study.study_name
    try:
        return save_results(trials_frame(study), folder)
    except OSError as exc:
        raise HarnessError(
            f"cannot write the results table in {folder} ({exc.strerror or exc}); the "
            "finished trials are kept in the study's storage: make room and run the same "
            "command again to write the table"
        ) from None
