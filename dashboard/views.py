"""Pure data functions behind each chart: frames in, small frames/dataclasses out.

Each ``get_*_info`` here has a ``plot_*`` partner in ``dashboard.figures`` (the split of
optuna's ``_get_pareto_front_info`` / ``_get_pareto_front_plot``); these are tested with
plain asserts, the figures only for their traces.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dashboard import data
from harness.costs import TRAINED

__all__ = [
    "ExpansionInfo",
    "ParetoInfo",
    "TrialDetail",
    "get_expansion_info",
    "get_hypervolume_history",
    "get_importance_info",
    "get_parallel_info",
    "get_pareto_front_info",
    "get_picks",
    "get_state_history",
    "get_trial_detail",
    "list_expansion_studies",
]

DRAWN_STATES = ("complete", "infeasible")
MAX_HOVER_PARAMS = 6


@dataclass(frozen=True)
class ParetoInfo:
    """Everything the Pareto chart draws.

    Attributes:
        x, y: cost and accuracy columns.
        points: drawn trials (complete or infeasible with both values), ``on_front`` marked.
        fronts: label -> front rows sorted by cost, one per protocol (and study, if asked).
        budgets_x, budgets_y: budget values on either axis.
        zoo: published points of the shown protocols that have a value on ``x``.
        hover_params: parameter columns shown on hover.
        not_drawn: trials filtered in but without a cost or accuracy (pruned, failed...).
    """

    x: str
    y: str
    points: pd.DataFrame
    fronts: dict[str, pd.DataFrame]
    budgets_x: list[float]
    budgets_y: list[float]
    zoo: pd.DataFrame
    hover_params: list[str]
    not_drawn: int
    picks: dict[str, object] = field(default_factory=dict)


def _budget_values(df: pd.DataFrame, column: str) -> list[float]:
    values = set()
    for budgets in data.parse_json_column(df["budgets"].unique()):
        if isinstance(budgets, dict) and isinstance(budgets.get(column), int | float):
            values.add(float(budgets[column]))
    return sorted(values)


def get_pareto_front_info(
    df: pd.DataFrame,
    *,
    x: str,
    y: str,
    protocol: str | None,
    zoo: pd.DataFrame | None = None,
    per_study: bool = False,
) -> ParetoInfo:
    """Trials to draw for accuracy ``y`` against cost ``x`` and their Pareto fronts.

    ``protocol=None`` keeps every protocol, each with its own front; otherwise only that
    protocol's trials are drawn. Fronts hold complete, feasible trials only.
    """
    if protocol is not None:
        df = df[df["protocol"] == protocol]
    drawable = df["state"].isin(DRAWN_STATES) & df[x].notna() & df[y].notna()
    points = df[drawable].copy()
    objectives = {y: "maximize", x: "minimize"}
    by = ["protocol", "study"] if per_study else ["protocol"]
    points["on_front"] = data.pareto_mask_by_protocol(points, objectives, by=by)
    fronts = {}
    for key, group in points[points["on_front"]].groupby(by, sort=True):
        label = " · ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
        fronts[label] = group.sort_values([x, y], kind="stable")
    shown = set(points["protocol"]) if protocol is None else {protocol}
    zoo_rows = pd.DataFrame() if zoo is None else zoo
    if len(zoo_rows) and x in zoo_rows and y in zoo_rows:
        zoo_rows = zoo_rows[zoo_rows["protocol"].isin(shown) & zoo_rows[x].notna()]
        zoo_rows = zoo_rows[zoo_rows[y].notna()]
    else:
        zoo_rows = pd.DataFrame()
    return ParetoInfo(
        x=x,
        y=y,
        points=points,
        fronts=fronts,
        budgets_x=_budget_values(df, x),
        budgets_y=_budget_values(df, y),
        zoo=zoo_rows,
        hover_params=data.param_columns(points)[:MAX_HOVER_PARAMS],
        not_drawn=int((~drawable).sum()),
    )


def get_picks(info: ParetoInfo, *, mode: str, budget: float | None = None) -> dict[str, object]:
    """One highlighted trial (index label) per front: ``"knee"`` or ``"budget"``.

    ``"knee"`` is the knee of the front; ``"budget"`` the most accurate complete, feasible
    trial of the front's group with cost at most ``budget``.
    """
    picks: dict[str, object] = {}
    for label, front in info.fronts.items():
        if mode == "knee":
            knee = data.knee_point(front, {info.y: "maximize", info.x: "minimize"})
            if knee is not None:
                picks[label] = knee
        elif mode == "budget" and budget is not None:
            pick = data.best_under_budget(front, metric=info.y, cost=info.x, budget=budget)
            if pick is not None:
                picks[label] = pick
    return picks


def list_expansion_studies(df: pd.DataFrame) -> list[str]:
    """Studies that hold expansion rows (a ``step`` value)."""
    return sorted(df.loc[df["step"].notna(), "study"].unique().tolist())


@dataclass(frozen=True)
class ExpansionInfo:
    """The X3D expansion path: every candidate, and the kept one of each step in order."""

    x: str
    y: str
    candidates: pd.DataFrame
    path: pd.DataFrame


def get_expansion_info(df: pd.DataFrame, *, study: str, x: str, y: str) -> ExpansionInfo:
    """Candidates of ``study`` with a step, and the path through the kept ones."""
    rows = df[(df["study"] == study) & df["step"].notna() & df[x].notna() & df[y].notna()]
    rows = rows.sort_values(["step", "trial"], kind="stable")
    kept = rows["kept"].fillna(False).astype(bool)
    path = rows[kept].drop_duplicates("step", keep="last")
    return ExpansionInfo(x=x, y=y, candidates=rows.assign(kept=kept), path=path)


def get_hypervolume_history(
    df: pd.DataFrame, *, x: str, y: str, reference: tuple[float, float] | None = None
) -> tuple[pd.DataFrame, tuple[float, float]]:
    """Hypervolume of each study's front after each of its trials, in trial order.

    Objectives: maximise ``y``, minimise ``x``; only complete, feasible trials count. The
    reference point is (``y`` = 0, ``x`` = the budget on ``x`` if any, else 1.1 x the
    largest cost). ``df`` should hold one protocol. Returns the history (columns study,
    n, trial, hypervolume) and the reference used.
    """
    done = df[df["state"].eq("complete") & df["feasible"] & df[x].notna() & df[y].notna()]
    if reference is None:
        budgets = _budget_values(df, x)
        top = budgets[0] if budgets else 1.1 * float(done[x].max()) if len(done) else 1.0
        reference = (0.0, top)
    ref = np.array([-reference[0], reference[1]])
    rows = []
    for study, group in df.groupby("study", sort=True):
        group = group.sort_values("trial", kind="stable")
        usable = group.index.isin(done.index)
        points = data.minimization_points(group, {y: "maximize", x: "minimize"})
        front = np.empty((0, 2))
        volume = 0.0
        for n, (trial, ok, p) in enumerate(zip(group["trial"], usable, points, strict=True)):
            if ok and not np.any(np.all(front <= p, axis=1)):
                front = np.vstack([front[~np.all(p <= front, axis=1)], p])
                volume = data.hypervolume(front, ref)
            rows.append((study, n + 1, int(trial), volume))
    history = pd.DataFrame(rows, columns=["study", "n", "trial", "hypervolume"])
    return history, reference


def get_state_history(df: pd.DataFrame, *, max_points: int = 400) -> pd.DataFrame:
    """Cumulative number of trials in each state over time (completion, else start time)."""
    when = pd.to_datetime(df["datetime_complete"], errors="coerce", utc=True, format="ISO8601")
    start = pd.to_datetime(df["datetime_start"], errors="coerce", utc=True, format="ISO8601")
    frame = pd.DataFrame({"time": when.fillna(start), "state": df["state"]}).dropna()
    frame = frame.sort_values("time", kind="stable")
    parts = []
    for state, group in frame.groupby("state", sort=True):
        counts = pd.DataFrame({"time": group["time"], "state": state})
        counts["trials"] = np.arange(1, len(group) + 1)
        step = max(1, len(counts) // max_points)
        parts.append(pd.concat([counts.iloc[::step], counts.iloc[[-1]]]).drop_duplicates())
    columns = ["time", "state", "trials"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def get_importance_info(df: pd.DataFrame, *, objective: str) -> pd.DataFrame:
    """Importance of every varying parameter for ``objective`` over complete trials."""
    done = df[df["state"].eq("complete")]
    params = data.param_columns(done)
    scores = data.param_importance(done, params, objective)
    return pd.DataFrame({"param": scores.index, "importance": scores.to_numpy()})


@dataclass(frozen=True)
class Axis:
    """One parallel-coordinates axis: numeric values plus tick labels for categories."""

    label: str
    values: np.ndarray
    ticktext: list[str] | None = None


def get_parallel_info(df: pd.DataFrame, *, x: str, y: str) -> list[Axis]:
    """Axes for the parallel-coordinates view: each varying parameter, then cost and
    accuracy (the last axis also colours the lines). Complete trials only."""
    done = df[df["state"].eq("complete") & df[y].notna()]
    axes = []
    for column in [*data.param_columns(done), x, y]:
        numeric = pd.to_numeric(done[column], errors="coerce")
        if numeric.notna().sum() == done[column].notna().sum():
            axes.append(Axis(column.removeprefix("param."), numeric.to_numpy(dtype=float)))
        else:
            codes, labels = pd.factorize(done[column].astype("string"), sort=True)
            axes.append(Axis(column.removeprefix("param."), codes.astype(float), list(labels)))
    return axes


@dataclass(frozen=True)
class TrialDetail:
    """One trial, unpacked for its page."""

    row: pd.Series
    costs: pd.DataFrame
    stages: pd.DataFrame
    history: pd.DataFrame
    fidelity: pd.DataFrame
    notes: list[str]


_COST_METHODS = {
    "gflops": "gflops_method",
    "gflops_all": "gflops_method",
    "params": None,
    "train_memory_mb": "memory_method",
    "latency_ms": "latency_method",
}


def _cost_rows(row: pd.Series) -> list[tuple[str, object, object, object]]:
    """(cost, value, input, method) of the deployed network, then of the trained one."""
    out = []
    for prefix in ("", TRAINED):
        if prefix and pd.isna(row.get(f"{TRAINED}gflops")):
            continue  # a row from before the trained costs were recorded
        for cost, method in _COST_METHODS.items():
            name = f"{prefix}{cost}"
            how = row.get(f"{prefix}{method}") if method else "counted"
            out.append(
                (data.COST_COLUMNS[name], row.get(name), row.get(f"{prefix}input_shape"), how)
            )
    return out


def get_trial_detail(df: pd.DataFrame, *, study: str, trial: int) -> TrialDetail | None:
    """The detail of trial ``trial`` of ``study``, or ``None`` if it is not in ``df``."""
    match = df[(df["study"] == study) & (df["trial"] == trial)]
    if match.empty:
        return None
    row = match.iloc[-1]
    notes = []
    costs = pd.DataFrame(_cost_rows(row), columns=["cost", "value", "input", "method"])
    tables = {}
    for column in ("stages", "history"):
        (parsed,) = data.parse_json_column([row[column]])
        if row[column] and not isinstance(parsed, list):
            notes.append(f"the {column} column of this trial is not valid JSON")
        tables[column] = pd.DataFrame(parsed if isinstance(parsed, list) else [])
    if "output_shape" in tables["stages"]:
        shapes = tables["stages"]["output_shape"]
        tables["stages"]["output_shape"] = [
            " x ".join(map(str, s)) if isinstance(s, list) else str(s) for s in shapes
        ]
    fidelity = pd.DataFrame(
        [(k.removeprefix("fidelity_"), row[k]) for k in row.index if k.startswith("fidelity_")]
        + [("seed", row["seed"]), ("protocol", row["protocol"])],
        columns=["setting", "value"],
    ).astype({"value": "str"})
    return TrialDetail(
        row=row,
        costs=costs,
        stages=tables["stages"],
        history=tables["history"],
        fidelity=fidelity,
        notes=notes,
    )
