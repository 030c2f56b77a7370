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
    "Axis",
    "Budget",
    "ExpansionInfo",
    "ParetoInfo",
    "TrialDetail",
    "get_architecture_table",
    "get_budgets",
    "get_expansion_info",
    "get_hypervolume_history",
    "get_importance_info",
    "get_parallel_info",
    "get_pareto_front_info",
    "get_picks",
    "get_state_history",
    "get_trial_detail",
    "get_trials_table",
    "list_expansion_studies",
]

DRAWN_STATES = ("complete", "infeasible")
MAX_HOVER_PARAMS = 6
MAX_CATEGORIES = 8  # a parameter with at most this many values gets a categorical axis


@dataclass(frozen=True)
class Budget:
    """One budget line: a limit on a column, and the studies whose budget it is."""

    value: float
    studies: tuple[str, ...]


@dataclass(frozen=True)
class ParetoInfo:
    """Everything the Pareto chart draws.

    Attributes:
        x, y: cost and accuracy columns.
        points: drawn trials (complete or infeasible with both values), ``on_front`` marked.
        untrained: infeasible trials with a cost but no accuracy (rejected before training):
            drawn at their cost in a strip under the chart.
        fronts: label -> front rows sorted by cost, one per protocol (and study, if asked).
            A group made only of expansion rows has no front: it is drawn as its path.
        paths: expansion study -> its kept candidates in step order (rows with a ``step``).
        budgets_x, budgets_y: budget lines on either axis, with the studies they belong to.
        zoo: published points of the shown protocols that have a value on ``x``.
        hover_params: parameter columns shown on hover; ``param_labels`` their short names.
        protocol_labels: protocol -> the part of it that tells it from the others shown.
        color_by: ``"study"``, or ``"protocol"`` when several protocols are shown together.
        not_drawn: trials filtered in but without a cost, or without an accuracy and not
            infeasible (pruned, failed, running...).
    """

    x: str
    y: str
    points: pd.DataFrame
    fronts: dict[str, pd.DataFrame]
    budgets_x: list[Budget]
    budgets_y: list[Budget]
    zoo: pd.DataFrame
    hover_params: list[str]
    not_drawn: int
    picks: dict[str, object] = field(default_factory=dict)
    untrained: pd.DataFrame = field(default_factory=pd.DataFrame)
    paths: dict[str, pd.DataFrame] = field(default_factory=dict)
    param_labels: dict[str, str] = field(default_factory=dict)
    protocol_labels: dict[str, str] = field(default_factory=dict)
    color_by: str = "study"

    @property
    def studies(self) -> list[str]:
        """Every study with a mark on the chart."""
        shown = set(self.points["study"]) | set(self.untrained.get("study", []))
        return sorted(str(s) for s in shown)


def _budget_values(df: pd.DataFrame, column: str) -> list[float]:
    values = set()
    for budgets in data.parse_json_column(df["budgets"].unique()):
        if isinstance(budgets, dict) and isinstance(budgets.get(column), int | float):
            values.add(float(budgets[column]))
    return sorted(values)


def get_budgets(df: pd.DataFrame, column: str) -> list[Budget]:
    """The budget on ``column`` in force in each study of ``df`` (its latest trial's), one
    line per value with the studies that share it, smallest first."""
    owners: dict[float, list[str]] = {}
    df = df[["study", "trial", "budgets"]]  # NOTE: study_budgets sorts: no wide rows to move
    for study, rows in df.groupby("study", sort=True):
        value = data.study_budgets(rows).get(column)
        if value is not None:
            owners.setdefault(float(value), []).append(str(study))
    return [Budget(value, tuple(studies)) for value, studies in sorted(owners.items())]


def _kept_path(rows: pd.DataFrame) -> pd.DataFrame:
    """The kept candidate of each expansion step, in step order."""
    rows = rows.sort_values(["step", "trial"], kind="stable")
    kept = rows["kept"].fillna(False).astype(bool)
    return rows[kept].drop_duplicates("step", keep="last")


def _front_mask(points: pd.DataFrame, objectives: dict[str, str], by: list[str]) -> np.ndarray:
    """Per-group Pareto mask; a group made only of expansion rows gets no front."""
    mask = data.pareto_mask_by_protocol(points, objectives, by=by)
    if not len(points):
        return mask
    expansion = points["step"].notna()
    only_expansion = expansion.groupby([points[c] for c in by], sort=False).transform("all")
    return mask & ~only_expansion.to_numpy(dtype=bool)


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
    protocol's trials are drawn. Fronts hold complete, feasible trials only. Expansion runs
    (rows with a ``step``) give a path through their kept candidates instead of fronts: their
    candidates change the clip, so each would be a protocol, and a front, of its own.
    """
    if protocol is not None:
        df = df[df["protocol"] == protocol]
    has_x, has_y = df[x].notna(), df[y].notna()
    drawable = df["state"].isin(DRAWN_STATES) & has_x & has_y
    not_trained = df["state"].eq("infeasible") & has_x & ~has_y
    points, untrained = df[drawable].copy(), df[not_trained]
    by = ["protocol", "study"] if per_study else ["protocol"]
    points["on_front"] = _front_mask(points, {y: "maximize", x: "minimize"}, by)
    fronts = {}
    for key, group in points[points["on_front"]].groupby(by, sort=True):
        label = " · ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
        fronts[label] = group.sort_values([x, y], kind="stable")
    expansion = points[points["step"].notna()]
    paths = {str(s): _kept_path(rows) for s, rows in expansion.groupby("study", sort=True)}
    searched = pd.concat([points[["step", "protocol"]], untrained[["step", "protocol"]]])
    searched = searched.loc[searched["step"].isna(), "protocol"].unique()
    shown = set(points["protocol"]) | set(untrained["protocol"])
    hover = data.param_columns(points)[:MAX_HOVER_PARAMS]
    budgets = df[["study", "trial", "budgets"]]
    owners = budgets[budgets["study"].isin(set(points["study"]) | set(untrained["study"]))]
    return ParetoInfo(
        x=x,
        y=y,
        points=points,
        fronts=fronts,
        budgets_x=get_budgets(owners, x),
        budgets_y=get_budgets(owners, y),
        zoo=_zoo_rows(zoo, shown, x, y),
        hover_params=hover,
        not_drawn=int((~drawable & ~not_trained).sum()),
        untrained=untrained,
        paths={s: p for s, p in paths.items() if len(p)},
        param_labels=data.short_param_names(hover),
        protocol_labels={p: p for p in shown} | data.short_protocol_labels(sorted(searched)),
        color_by="protocol" if protocol is None and len(searched) > 1 else "study",
    )


def _zoo_rows(zoo: pd.DataFrame | None, protocols: set[str], x: str, y: str) -> pd.DataFrame:
    """Published points of ``protocols`` with both values."""
    if zoo is None or zoo.empty or x not in zoo or y not in zoo:
        return pd.DataFrame()
    return zoo[zoo["protocol"].isin(protocols) & zoo[x].notna() & zoo[y].notna()]


def get_architecture_table(
    rows: pd.DataFrame, *, x: str, y: str, first: tuple[str, ...] = ("study", "trial", "protocol")
) -> pd.DataFrame:
    """A table of a few trials (a Pareto set, the picks, an expansion path) that says what
    each network is: the ``first`` columns, accuracy and cost, the architecture summary
    (base spec, per-stage block kinds and widths), then the spec hash shortened."""
    table = rows[[*first, y, x]].copy()
    table["architecture"] = data.architecture_summaries(rows)
    table["spec"] = rows["spec_hash"].astype(str).str.slice(0, 12)
    return table


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
    return ExpansionInfo(x=x, y=y, candidates=rows.assign(kept=kept), path=_kept_path(rows))


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
    labels = data.short_param_names(params)
    return pd.DataFrame(
        {
            "param": scores.index,
            "label": [labels[p] for p in scores.index],
            "importance": scores.to_numpy(),
        }
    )


@dataclass(frozen=True)
class Axis:
    """One parallel-coordinates axis: numeric values, plus tick labels for categories.

    A categorical axis holds codes ``0..k-1``; ``ticktext`` names them. ``percent`` marks an
    accuracy axis (fractions, shown as percentages).
    """

    label: str
    values: np.ndarray
    ticktext: list[str] | None = None
    percent: bool = False


MISSING = "(not set)"  # the category of a conditional parameter that a trial did not use


def _value_text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float | int) else str(value)


def _param_axis(values: pd.Series, label: str) -> Axis:
    """A categorical axis for text, booleans, parameters with few values or missing ones
    (conditional parameters); a numeric axis for numbers with many values."""
    numeric = pd.to_numeric(values, errors="coerce")
    is_number = numeric.notna().sum() == values.notna().sum() and values.dtype != bool
    missing = values.isna()
    if is_number and values.nunique() > MAX_CATEGORIES and not missing.any():
        return Axis(label, numeric.to_numpy(dtype=float))
    if is_number:  # numbers keep their order, and read as written (3, not 3.0)
        order = sorted(numeric.dropna().unique())
        codes = numeric.map({v: i for i, v in enumerate(order)})
        text = [_value_text(float(v)) for v in order]
    else:
        codes_, uniques = pd.factorize(values.astype("string"), sort=True)
        codes = pd.Series(np.where(codes_ < 0, np.nan, codes_), index=values.index)
        text = [str(u) for u in uniques]
    if missing.any():
        codes = codes.fillna(len(text))
        text.append(MISSING)
    return Axis(label, codes.to_numpy(dtype=float), text)


def get_parallel_info(df: pd.DataFrame, *, x: str, y: str) -> list[Axis]:
    """Axes for the parallel-coordinates view: each varying parameter (short names,
    categorical where it has few values), then cost and accuracy (the last axis also
    colours the lines). Complete trials only."""
    done = df[df["state"].eq("complete") & df[y].notna()]
    params = data.param_columns(done)
    labels = data.short_param_names(params)
    axes = [_param_axis(done[column], labels[column]) for column in params]
    for column in (x, y):
        values = pd.to_numeric(done[column], errors="coerce").to_numpy(dtype=float)
        percent = column in data.METRIC_COLUMNS
        axes.append(Axis(data.column_label(column), values, percent=percent))
    return axes


def get_trials_table(
    df: pd.DataFrame, *, x: str, y: str, params: list[str] | None = None
) -> pd.DataFrame:
    """The trials table: key columns, the chosen accuracy and cost, the chosen ``param.*``
    columns (default: those that vary) under their short names, then the rest of note."""
    params = data.param_columns(df) if params is None else params
    first = ["study", "trial", "state", y, x]
    rest = [
        *data.METRIC_COLUMNS,
        *[c for c in data.COST_COLUMNS if not c.startswith(TRAINED)],
        "family",
        "protocol",
        "feasible",
        "violations",
        "fidelity_epochs",
        "sampler",
        "spec_hash",
        "datetime_complete",
    ]
    columns = list(dict.fromkeys([*first, *params, *rest]))
    table = df[[c for c in columns if c in df.columns]]
    return table.rename(columns=data.short_param_names(params))


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
