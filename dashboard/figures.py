"""Plotly figures, one per ``dashboard.views`` info function; no data logic lives here.

Trial markers use WebGL (``Scattergl``) so 10,000 points stay fast. Every trace carries
``meta={"kind": ...}`` (``trials``, ``untrained``, ``front``, ``path``, ``zoo``, ``pick``,
``candidates``...) so tests and the browser check can count what was drawn. Trial traces
carry ``customdata = [study, trial, ...]`` for hover and for selecting a trial. Accuracy
axes are percentages with as many decimals as their range needs, so no two ticks read
the same.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from dashboard import data
from dashboard.views import Axis, Budget, ExpansionInfo, ParetoInfo

__all__ = [
    "CHART_CONFIG",
    "axis_title",
    "percent_tickformat",
    "percent_ticks",
    "plot_expansion",
    "plot_hypervolume_history",
    "plot_parallel_coordinates",
    "plot_param_importance",
    "plot_pareto_front",
    "plot_state_history",
    "plot_training_curves",
    "value_format",
]

# The modebar's camera button downloads the chart as a PNG (at twice screen resolution).
CHART_CONFIG = {
    "displaylogo": False,
    "toImageButtonOptions": {"format": "png", "scale": 2},
}
PALETTE = qualitative.Plotly
STATE_COLORS = {
    "complete": "#2ca02c",
    "infeasible": "#ff7f0e",
    "pruned": "#7f7f7f",
    "failed": "#d62728",
    "running": "#1f77b4",
}


def axis_title(column: str) -> str:
    """A readable axis title for a result column."""
    return data.column_label(column)


def value_format(column: str) -> str:
    """d3 format of a column's values: accuracy is a fraction, shown as a percentage."""
    return ".1%" if column in data.METRIC_COLUMNS else ".4g"


def percent_tickformat(values: Iterable[float], *, max_ticks: int = 10) -> str:
    """d3 format for an axis of fractions shown as percentages, with enough decimals that
    no two ticks read the same.

    Plotly places at most ``max_ticks`` ticks (10 by default) at a step of 1, 2 or 5 times a
    power of ten, so the step is at least a tenth of the range: that many decimals suffice
    (``.0%`` for a range of 20 points, ``.1%`` for 1.6 points, where ``.0%`` would print
    "14%, 14%, 13%").
    """
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2 or np.ptp(v) <= 0:
        return ".1%"
    step = 100 * float(np.ptp(v)) / max_ticks  # in percentage points
    return f".{int(np.clip(np.ceil(-np.log10(step) - 1e-9), 0, 4))}%"


def percent_ticks(values: Iterable[float], *, n: int = 6) -> tuple[list[float], list[str]]:
    """Explicit ticks for a percentage axis (parallel coordinates, whose tick count plotly
    does not bound): about ``n`` ticks at a round step, labelled with as many decimals as
    the step needs, so each label is distinct."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return [], []
    low, high = float(v.min()), float(v.max())
    if high - low <= 0:
        return [low], [f"{low:.1%}"]
    rough = (high - low) / n
    power = 10 ** np.floor(np.log10(rough))
    step = float(next(m * power for m in (1, 2, 5, 10) if m * power >= rough))
    ticks = np.arange(np.ceil(low / step - 1e-9) * step, high + step * 1e-9, step)
    decimals = int(np.clip(np.ceil(-np.log10(100 * step) - 1e-9), 0, 4))
    return [float(t) for t in ticks], [f"{t:.{decimals}%}" for t in ticks]


def _axes(fig: go.Figure, x: str, y: str, y_values: Iterable[float] = ()) -> None:
    percent = y in data.METRIC_COLUMNS
    fig.update_layout(
        xaxis={"title": axis_title(x)},
        yaxis={
            "title": axis_title(y),
            "tickformat": percent_tickformat(y_values) if percent else "",
        },
    )


def _hover(
    info: ParetoInfo, protocol: str | None = None, extra: tuple[str, ...] = ()
) -> tuple[list[str], str]:
    # NOTE: a trials trace holds one protocol, written into its template once rather than
    # into every point's customdata (it was half of the JSON for 10,000 points).
    fields = ["study", "trial", "family", "spec_hash"]
    if protocol is None:
        fields.append("protocol")
    fields += [*info.hover_params, *extra]
    lines = [
        "<b>%{customdata[0]} #%{customdata[1]}</b>",
        f"{axis_title(info.y)}: %{{y:{value_format(info.y)}}}",
        f"{axis_title(info.x)}: %{{x:{value_format(info.x)}}}",
        f"protocol: {protocol if protocol is not None else '%{customdata[4]}'}",
        "family: %{customdata[2]} · spec %{customdata[3]}",
    ]
    lines += [
        f"{info.param_labels.get(p, p.removeprefix('param.'))}: %{{customdata[{fields.index(p)}]}}"
        for p in info.hover_params
    ]
    if "step" in extra:
        step, axis = fields.index("step"), fields.index("axis")
        lines.append(f"expansion step %{{customdata[{step}]}}: %{{customdata[{axis}]}}")
    return fields, "<br>".join(lines) + "<extra></extra>"


def _customdata(rows: pd.DataFrame, fields: list[str]) -> np.ndarray:
    frame = rows[fields].astype(object).where(rows[fields].notna(), "")
    frame["spec_hash"] = frame["spec_hash"].astype(str).str.slice(0, 12)
    return frame.to_numpy()


_DASHES = ("solid", "dot", "dash", "dashdot")


def _colors(info: ParetoInfo) -> dict[str, str]:
    """Colour of each study (or each protocol, when several are shown together); every
    expansion run gets its own colour after them."""
    rows = pd.concat([info.points, info.untrained])
    if rows.empty:
        return {}
    expansion = rows["step"].notna()
    keys = sorted({str(k) for k in rows.loc[~expansion, info.color_by]})
    keys += sorted({str(s) for s in rows.loc[expansion, "study"]} - set(keys))
    return {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(keys)}


def _by_color(rows: pd.DataFrame, info: ParetoInfo) -> list[tuple[str, pd.DataFrame]]:
    """``rows`` split by the key that colours them (study, protocol or expansion run).

    NOTE: one trace per colour rather than one trace with a colour per point: plotly
    validates a list of colours string by string (50 ms per 3,000 points).
    """
    keys = np.where(rows["step"].notna(), rows["study"], rows[info.color_by]).astype(str)
    return [(str(k), part) for k, part in rows.groupby(keys, sort=True)]


def plot_pareto_front(info: ParetoInfo, *, log_x: bool = False) -> go.Figure:
    """Accuracy against cost: the trials of each study (of each protocol, when several are
    shown) in its colour, infeasible trials as crosses, those never trained as ticks in a
    strip under the chart at their cost, each front as a step line with its members ringed,
    an expansion run as one arrowed path through its kept candidates, budgets as dashed
    lines naming their studies, zoo models as stars. ``log_x``: a log cost axis, every
    tick labelled in full (plotly's default labels 2, 5, 1, 2, 5: the same text twice)."""
    fig = go.Figure()
    colors = _colors(info)
    _add_trials(fig, info, colors)
    fields, template = _hover(info)
    _add_fronts(fig, info, colors, fields, template)
    _add_expansion(fig, info, colors)
    _add_picks(fig, info, fields, template)
    _add_zoo(fig, info)
    _add_budgets(fig, info, log_x=log_x)
    if log_x:
        fig.update_layout(xaxis={"type": "log", "tickformat": "~g"})
    y_values = [*info.points[info.y], *info.zoo.get(info.y, []), *(b.value for b in info.budgets_y)]
    _axes(fig, info.x, info.y, y_values)
    fig.update_layout(
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02},
        margin={"t": 60, "r": 10},
        height=560,
        clickmode="event+select",
    )
    _add_untrained(fig, info, colors)
    return fig


def _add_trials(fig: go.Figure, info: ParetoInfo, colors: dict[str, str]) -> None:
    """Feasible search trials, one trace per study (per protocol); infeasible ones under
    one legend entry."""
    searched = info.points[info.points["step"].isna()]
    feasible = searched[searched["feasible"]]
    by_protocol = info.color_by == "protocol"
    groups = dict(list(feasible.groupby(info.color_by, sort=True)))
    names = {
        key: info.protocol_labels.get(str(key), str(key)) if by_protocol else str(key)
        for key in groups
    }
    for key in sorted(groups, key=lambda k: names[k]):
        part = groups[key]
        same = part["protocol"].nunique() == 1
        fields, template = _hover(info, protocol=str(part["protocol"].iloc[0]) if same else None)
        name = names[key]
        fig.add_trace(
            go.Scattergl(
                x=part[info.x],
                y=part[info.y],
                mode="markers",
                name=name,
                legendgroup=str(key),
                marker={"color": colors[str(key)], "size": 7, "opacity": 0.75},
                customdata=_customdata(part, fields),
                hovertemplate=template,
                meta={"kind": "trials", "feasible": True, "group": str(key)},
            )
        )
    fields, template = _hover(info)
    over = searched[~searched["feasible"]]
    for i, (key, part) in enumerate(_by_color(over, info)):
        fig.add_trace(
            go.Scattergl(
                x=part[info.x],
                y=part[info.y],
                mode="markers",
                name="infeasible (over budget)",
                legendgroup="infeasible",
                showlegend=i == 0,
                marker={"color": colors.get(key, "gray"), "symbol": "x", "size": 8},
                customdata=_customdata(part, fields),
                hovertemplate=template,
                meta={"kind": "trials", "feasible": False},
            )
        )


def _add_fronts(
    fig: go.Figure, info: ParetoInfo, colors: dict[str, str], fields: list[str], template: str
) -> None:
    by_protocol = info.color_by == "protocol"
    for j, front in enumerate(info.fronts.values()):
        protocol, study = str(front["protocol"].iloc[0]), str(front["study"].iloc[0])
        per_study = front["study"].nunique() == 1 and len(info.fronts) > 1 and not by_protocol
        name = "Pareto front" + (f" · {study}" if per_study else "")
        if by_protocol:
            name = "Pareto fronts (one per protocol)"
        fig.add_trace(
            go.Scatter(
                x=front[info.x],
                y=front[info.y],
                mode="lines+markers",
                line={
                    "shape": "hv",
                    "color": colors.get(protocol, "black") if by_protocol else "black",
                    "width": 1.5,
                    "dash": "solid" if by_protocol else _DASHES[j % 4],
                },
                marker={"size": 12, "color": "rgba(0,0,0,0)", "line": {"width": 2}},
                name=name,
                legendgroup="fronts" if by_protocol else None,
                showlegend=not by_protocol or j == 0,
                customdata=_customdata(front, fields),
                hovertemplate=template,
                meta={"kind": "front", "protocol": protocol},
            )
        )


def _add_expansion(fig: go.Figure, info: ParetoInfo, colors: dict[str, str]) -> None:
    """Each expansion run: its candidates as diamonds, its kept ones joined in step order."""
    rows = info.points[info.points["step"].notna()]
    fields, template = _hover(info, extra=("step", "axis"))
    for study, candidates in rows.groupby("study", sort=True):
        color, group = colors.get(str(study), "black"), f"expansion · {study}"
        fig.add_trace(
            go.Scattergl(
                x=candidates[info.x],
                y=candidates[info.y],
                mode="markers",
                name=f"{study} · candidates",
                legendgroup=group,
                showlegend=False,
                marker={"color": color, "symbol": "diamond", "size": 7, "opacity": 0.6},
                customdata=_customdata(candidates, fields),
                hovertemplate=template,
                meta={"kind": "trials", "feasible": True, "expansion": str(study)},
            )
        )
        path = info.paths.get(str(study))
        if path is None or path.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=path[info.x],
                y=path[info.y],
                mode="lines+markers",
                name=f"{study} · expansion path",
                legendgroup=group,
                line={"color": color, "width": 2},
                marker={"size": 12, "color": color, "symbol": "arrow", "angleref": "previous"},
                customdata=_customdata(path, fields),
                hovertemplate=template,
                meta={"kind": "path"},
            )
        )


def _add_untrained(fig: go.Figure, info: ParetoInfo, colors: dict[str, str]) -> None:
    """Infeasible trials without an accuracy, at their cost in a strip under the chart (a
    second y axis sharing the cost axis)."""
    rows = info.untrained
    if rows.empty:
        return
    fields = ["study", "trial", "family", "spec_hash", "protocol", "violations"]
    template = (
        "<b>%{customdata[0]} #%{customdata[1]}</b><br>not trained: over budget "
        f"(%{{customdata[5]}})<br>{axis_title(info.x)}: %{{x:{value_format(info.x)}}}"
        "<br>protocol: %{customdata[4]}<br>family: %{customdata[2]} · spec "
        "%{customdata[3]}<extra></extra>"
    )
    for i, (key, part) in enumerate(_by_color(rows, info)):
        jitter = np.modf(part["trial"].to_numpy(dtype=float) * 0.6180339887)[0]  # spread ties
        fig.add_trace(
            go.Scattergl(
                x=part[info.x],
                y=0.1 + 0.8 * jitter,
                yaxis="y2",
                mode="markers",
                name="infeasible (not trained)",
                legendgroup="untrained",
                showlegend=i == 0,
                marker={
                    "color": colors.get(key, "gray"),
                    "symbol": "line-ns-open",
                    "size": 11,
                    "line": {"width": 2},
                },
                customdata=_customdata(part, fields),
                hovertemplate=template,
                meta={"kind": "untrained"},
            )
        )
    fig.update_layout(
        height=620,
        xaxis={"anchor": "y2"},
        yaxis={"domain": [0.14, 1.0]},
        yaxis2={
            "domain": [0.0, 0.09],
            "range": [0, 1],
            "tickvals": [0.5],
            "ticktext": ["not trained"],
            "showgrid": False,
            "zeroline": False,
            "fixedrange": True,
        },
    )


def _add_budgets(fig: go.Figure, info: ParetoInfo, *, log_x: bool = False) -> None:
    """Dashed budget lines; with several studies on the chart, each names whose it is."""
    several = len(info.studies) > 1

    def label(axis: str, sign: str, budget: Budget) -> str:
        owners = f" ({', '.join(budget.studies)})" if several else ""
        return f"budget {axis_title(axis)} {sign} {budget.value:g}{owners}"

    for i, budget in enumerate(info.budgets_x):
        fig.add_vline(
            budget.value,
            line={"dash": "dash", "color": "crimson"},
            annotation_text=label(info.x, "≤", budget),
            annotation_position="top right",
            annotation_yshift=-18 * i,  # NOTE: stacked, so nearby budgets do not overprint
            annotation_bgcolor="rgba(255,255,255,0.7)",
        )
        if not info.untrained.empty:  # down through the strip of the untrained trials too
            fig.layout.shapes[-1].update(yref="paper", y0=0, y1=1)
        if log_x and budget.value > 0:  # NOTE: on a log axis an annotation's x is log10(x)
            fig.layout.annotations[-1].update(x=float(np.log10(budget.value)))
    for budget in info.budgets_y:
        fig.add_hline(
            budget.value,
            line={"dash": "dash", "color": "crimson"},
            annotation_text=label(info.y, "≥", budget),
            annotation_bgcolor="rgba(255,255,255,0.7)",
        )


def _add_picks(fig: go.Figure, info: ParetoInfo, fields: list[str], template: str) -> None:
    if not info.picks:
        return
    rows = info.points.loc[list(info.picks.values())]
    fig.add_trace(
        go.Scatter(
            x=rows[info.x],
            y=rows[info.y],
            mode="markers",
            name="picked",
            marker={"symbol": "diamond-open", "size": 20, "color": "crimson", "line": {"width": 3}},
            customdata=_customdata(rows, fields),
            hovertemplate=template,
            meta={"kind": "pick"},
        )
    )


def _add_zoo(fig: go.Figure, info: ParetoInfo) -> None:
    if info.zoo.empty:
        return
    fig.add_trace(
        go.Scatter(
            x=info.zoo[info.x],
            y=info.zoo[info.y],
            mode="markers+text",
            text=info.zoo["name"],
            textposition="top center",
            name="zoo (published)",
            marker={"symbol": "star", "size": 14, "color": "gold", "line": {"width": 1}},
            customdata=info.zoo[["protocol", "source"]].to_numpy(),
            hovertemplate=f"<b>%{{text}}</b> (published)<br>%{{y:{value_format(info.y)}}} at "
            f"%{{x:{value_format(info.x)}}}"
            "<br>protocol: %{customdata[0]}<br>%{customdata[1]}<extra></extra>",
            meta={"kind": "zoo"},
        )
    )


def plot_expansion(info: ExpansionInfo) -> go.Figure:
    """The expansion path, cost against accuracy: candidates coloured by axis, the kept
    one of each step joined by arrows and labelled with its step (X3D paper, figure 2)."""
    fig = go.Figure()
    axes = sorted(info.candidates["axis"].unique())
    for i, axis in enumerate(axes):
        rows = info.candidates[info.candidates["axis"] == axis]
        fig.add_trace(
            go.Scatter(
                x=rows[info.x],
                y=rows[info.y],
                mode="markers",
                name=axis or "(no axis)",
                marker={"size": 9, "color": PALETTE[i % len(PALETTE)], "opacity": 0.6},
                customdata=rows[["study", "trial", "step"]].astype(object).to_numpy(),
                hovertemplate="%{customdata[0]} #%{customdata[1]} · step %{customdata[2]}"
                f"<br>axis: {axis}<br>%{{y:{value_format(info.y)}}} at "
                f"%{{x:{value_format(info.x)}}}<extra></extra>",
                meta={"kind": "candidates"},
            )
        )
    path = info.path
    fig.add_trace(
        go.Scatter(
            x=path[info.x],
            y=path[info.y],
            mode="lines+markers+text",
            text=[f"{int(s)}: {a}" for s, a in zip(path["step"], path["axis"], strict=True)],
            textposition="top left",
            name="kept (expansion path)",
            line={"color": "black", "width": 2},
            marker={"size": 14, "color": "black", "symbol": "arrow", "angleref": "previous"},
            customdata=path[["study", "trial", "step"]].astype(object).to_numpy(),
            hovertemplate="kept at step %{customdata[2]}: #%{customdata[1]}"
            f"<br>%{{y:{value_format(info.y)}}} at %{{x:{value_format(info.x)}}}<extra></extra>",
            meta={"kind": "path"},
        )
    )
    _axes(fig, info.x, info.y, info.candidates[info.y])
    fig.update_layout(height=520, legend={"title": "candidate axis"})
    return fig


def _count_ticks(counts: Iterable[float]) -> dict[str, object]:
    """Whole-number ticks for an axis of counts: plotly would step by 0.5 below ten."""
    top = max((float(c) for c in counts), default=0.0)
    return {"dtick": 1} if top <= 10 else {}


def plot_hypervolume_history(history: pd.DataFrame) -> go.Figure:
    """Hypervolume after each trial, one line per study."""
    fig = go.Figure()
    for i, (study, rows) in enumerate(history.groupby("study", sort=True)):
        fig.add_trace(
            go.Scattergl(
                x=rows["n"],
                y=rows["hypervolume"],
                mode="lines",
                name=str(study),
                line={"color": PALETTE[i % len(PALETTE)], "shape": "hv"},
                customdata=rows[["trial"]].to_numpy(),
                meta={"kind": "hypervolume"},
                hovertemplate="after %{x} trials (#%{customdata[0]}): %{y:.4g}<extra></extra>",
            )
        )
    fig.update_layout(
        xaxis={"title": "trials", **_count_ticks(history["n"])},
        yaxis_title="hypervolume",
        height=380,
    )
    return fig


def plot_state_history(history: pd.DataFrame) -> go.Figure:
    """Cumulative trials in each state over time."""
    fig = go.Figure()
    for state, rows in history.groupby("state", sort=True):
        fig.add_trace(
            go.Scatter(
                x=rows["time"],
                y=rows["trials"],
                mode="lines",
                name=str(state),
                line={"shape": "hv", "color": STATE_COLORS.get(str(state))},
                meta={"kind": "states"},
            )
        )
    fig.update_layout(
        xaxis_title="time",
        yaxis={"title": "trials (cumulative)", **_count_ticks(history["trials"])},
        height=380,
    )
    return fig


def plot_param_importance(importance: pd.DataFrame) -> go.Figure:
    """Horizontal bars, most important parameter on top."""
    rows = importance.iloc[::-1]
    fig = go.Figure(
        go.Bar(
            x=rows["importance"],
            y=rows["label"] if "label" in rows else rows["param"].str.removeprefix("param."),
            orientation="h",
            meta={"kind": "importance"},
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis={"title": "share of variance explained (ε²)", "rangemode": "tozero"},
        height=120 + 30 * len(rows),
        margin={"l": 10},
        yaxis={"type": "category"},
    )
    return fig


def plot_parallel_coordinates(axes: list[Axis]) -> go.Figure:
    """One line per trial through every parameter, the cost and the accuracy; categorical
    parameters have one tick per value, accuracy reads as percentages."""
    dimensions = []
    for axis in axes:
        dim: dict[str, object] = {"label": axis.label, "values": axis.values}
        if axis.ticktext is not None:
            dim["tickvals"] = list(range(len(axis.ticktext)))
            dim["ticktext"] = axis.ticktext
        elif axis.percent:
            dim["tickvals"], dim["ticktext"] = percent_ticks(axis.values)
        dimensions.append(dim)
    color: np.ndarray | list[float] = axes[-1].values if axes else []
    colorbar = {"title": {"text": axes[-1].label if axes else ""}, "x": 1.04, "xanchor": "left"}
    if axes and axes[-1].percent:
        colorbar["tickformat"] = percent_tickformat(color)
    fig = go.Figure(
        go.Parcoords(
            dimensions=dimensions,
            line={"color": color, "colorscale": "Viridis", "showscale": True, "colorbar": colorbar},
            meta={"kind": "parallel"},
        )
    )
    fig.update_layout(height=460, margin={"l": 80, "r": 110, "t": 80})
    return fig


def plot_training_curves(history: pd.DataFrame) -> go.Figure:
    """Training loss (left axis) and the validation metrics (right axis) per epoch:
    top-1 and top-5, or a localizer's average mAP and mAP@0.5."""
    fig = go.Figure()
    shown = [c for c in ("top1", "top5", "average_mAP", "mAP_50") if c in history]
    accuracy = [v for c in shown for v in history[c]]
    if "train_loss" in history:
        fig.add_trace(go.Scatter(x=history["epoch"], y=history["train_loss"], name="train loss"))
    for column in shown:
        fig.add_trace(
            go.Scatter(x=history["epoch"], y=history[column], name=data.column_label(column),
                       yaxis="y2")
        )  # fmt: skip
    fig.update_layout(
        xaxis_title="epoch",
        yaxis={"title": "train loss"},
        yaxis2={
            "title": "validation",
            "overlaying": "y",
            "side": "right",
            "tickformat": percent_tickformat(accuracy),
            "tickmode": "auto",
            "showgrid": False,
        },
        height=360,
        legend={"orientation": "h", "y": 1.1},
    )
    return fig
