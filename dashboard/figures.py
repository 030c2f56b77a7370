"""Plotly figures, one per ``dashboard.views`` info function; no data logic lives here.

Trial markers use WebGL (``Scattergl``) so 10,000 points stay fast. Every trace carries
``meta={"kind": ...}`` (``trials``, ``front``, ``zoo``, ``pick``, ``candidates``, ``path``)
so tests and the browser check can count what was drawn. Trial traces carry
``customdata = [study, trial, ...]`` for hover and for selecting a trial.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from dashboard import data
from dashboard.views import Axis, ExpansionInfo, ParetoInfo

__all__ = [
    "CHART_CONFIG",
    "axis_title",
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
    return {**data.ACCURACY_COLUMNS, **data.COST_COLUMNS}.get(column, column)


def value_format(column: str) -> str:
    """d3 format of a column's values: accuracy is a fraction, shown as a percentage."""
    return ".1%" if column in data.ACCURACY_COLUMNS else ".4g"


def _axes(fig: go.Figure, x: str, y: str) -> None:
    fig.update_xaxes(title=axis_title(x))
    fig.update_yaxes(title=axis_title(y), tickformat=".0%" if y in data.ACCURACY_COLUMNS else "")


def _hover(info: ParetoInfo, protocol: str | None = None) -> tuple[list[str], str]:
    # NOTE: a trials trace holds one protocol, written into its template once rather than
    # into every point's customdata (it was half of the JSON for 10,000 points).
    fields = ["study", "trial", "family", "spec_hash"]
    if protocol is None:
        fields.append("protocol")
    fields += info.hover_params
    lines = [
        "<b>%{customdata[0]} #%{customdata[1]}</b>",
        f"{axis_title(info.y)}: %{{y:{value_format(info.y)}}}",
        f"{axis_title(info.x)}: %{{x:{value_format(info.x)}}}",
        f"protocol: {protocol if protocol is not None else '%{customdata[4]}'}",
        "family: %{customdata[2]} · spec %{customdata[3]}",
    ]
    lines += [
        f"{p.removeprefix('param.')}: %{{customdata[{fields.index(p)}]}}" for p in info.hover_params
    ]
    return fields, "<br>".join(lines) + "<extra></extra>"


def _customdata(rows: pd.DataFrame, fields: list[str]) -> np.ndarray:
    frame = rows[fields].astype(object).where(rows[fields].notna(), "")
    frame["spec_hash"] = frame["spec_hash"].astype(str).str.slice(0, 12)
    return frame.to_numpy()


_SYMBOLS = ("circle", "square", "diamond", "triangle-up")


def plot_pareto_front(info: ParetoInfo) -> go.Figure:
    """Accuracy against cost: every study in its colour (each protocol its own marker
    shape), infeasible trials as crosses, each protocol's front as a step line with its
    members ringed, budgets as dashed lines, zoo models as stars."""
    fig = go.Figure()
    studies = sorted(info.points["study"].unique())
    protocols = sorted(info.points["protocol"].unique())
    groups = dict(list(info.points.groupby(["study", "protocol", "feasible"], sort=True)))
    for study, protocol, feasible in sorted(groups, key=lambda k: (k[0], k[1], not k[2])):
        part = groups[(study, protocol, feasible)]
        color = PALETTE[studies.index(study) % len(PALETTE)]
        k = protocols.index(protocol)
        name = study if len(protocols) == 1 else f"{study} · {protocol}"
        fields, template = _hover(info, protocol=str(protocol))
        fig.add_trace(
            go.Scattergl(
                x=part[info.x],
                y=part[info.y],
                mode="markers",
                name=name if feasible else f"{name} (infeasible)",
                legendgroup=name,
                marker={
                    "color": color,
                    "symbol": _SYMBOLS[k % 4] if feasible else "x",
                    "size": 7,
                    "opacity": 0.75,
                },
                customdata=_customdata(part, fields),
                hovertemplate=template,
                meta={"kind": "trials", "feasible": bool(feasible), "protocol": protocol},
            )
        )
    fields, template = _hover(info)
    for j, (label, front) in enumerate(info.fronts.items()):
        fig.add_trace(
            go.Scatter(
                x=front[info.x],
                y=front[info.y],
                mode="lines+markers",
                line={"shape": "hv", "color": "black", "width": 1.5, "dash": _DASHES[j % 4]},
                marker={"size": 12, "color": "rgba(0,0,0,0)", "line": {"width": 2}},
                name=f"Pareto front · {label}",
                customdata=_customdata(front, fields),
                hovertemplate=template,
                meta={"kind": "front"},
            )
        )
    _add_picks(fig, info, fields, template)
    _add_zoo(fig, info)
    for value in info.budgets_x:
        fig.add_vline(
            value,
            line={"dash": "dash", "color": "crimson"},
            annotation_text=f"budget {axis_title(info.x)} ≤ {value:g}",
        )
    for value in info.budgets_y:
        fig.add_hline(
            value,
            line={"dash": "dash", "color": "crimson"},
            annotation_text=f"budget {axis_title(info.y)} ≥ {value:g}",
        )
    _axes(fig, info.x, info.y)
    fig.update_layout(
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02},
        margin={"t": 60, "r": 10},
        height=560,
        clickmode="event+select",
    )
    return fig


_DASHES = ("solid", "dot", "dash", "dashdot")


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
    _axes(fig, info.x, info.y)
    fig.update_layout(height=520, legend={"title": "candidate axis"})
    return fig


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
    fig.update_layout(xaxis_title="trials", yaxis_title="hypervolume", height=380)
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
    fig.update_layout(xaxis_title="time", yaxis_title="trials (cumulative)", height=380)
    return fig


def plot_param_importance(importance: pd.DataFrame) -> go.Figure:
    """Horizontal bars, most important parameter on top."""
    rows = importance.iloc[::-1]
    fig = go.Figure(
        go.Bar(
            x=rows["importance"],
            y=rows["param"].str.removeprefix("param."),
            orientation="h",
            meta={"kind": "importance"},
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis_title="share of variance explained (ε²)",
        height=120 + 30 * len(rows),
        margin={"l": 10},
    )
    return fig


def plot_parallel_coordinates(axes: list[Axis]) -> go.Figure:
    """One line per trial through every parameter, the cost and the accuracy."""
    dimensions = []
    for axis in axes:
        dim: dict[str, object] = {"label": axis.label, "values": axis.values}
        if axis.ticktext is not None:
            dim["tickvals"] = list(range(len(axis.ticktext)))
            dim["ticktext"] = axis.ticktext
        dimensions.append(dim)
    color = axes[-1].values if axes else []
    fig = go.Figure(
        go.Parcoords(
            dimensions=dimensions,
            line={"color": color, "colorscale": "Viridis", "showscale": True},
            meta={"kind": "parallel"},
        )
    )
    fig.update_layout(height=460, margin={"l": 60, "r": 60})
    return fig


def plot_training_curves(history: pd.DataFrame) -> go.Figure:
    """Training loss (left axis) and validation accuracy (right axis) per epoch."""
    fig = go.Figure()
    if "train_loss" in history:
        fig.add_trace(go.Scatter(x=history["epoch"], y=history["train_loss"], name="train loss"))
    for column in ("top1", "top5"):
        if column in history:
            fig.add_trace(
                go.Scatter(x=history["epoch"], y=history[column], name=column, yaxis="y2")
            )
    fig.update_layout(
        xaxis_title="epoch",
        yaxis={"title": "train loss"},
        yaxis2={"title": "accuracy", "overlaying": "y", "side": "right", "tickformat": ".0%"},
        height=360,
        legend={"orientation": "h", "y": 1.1},
    )
    return fig
