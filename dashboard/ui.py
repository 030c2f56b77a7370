"""Streamlit glue shared by the pages: the cached store, the sidebar filters, messages.

The sidebar is drawn by ``app.py`` before the page runs, so its widgets (and so the
filters) persist while the user moves between pages; pages read the result with
:func:`get_selection`.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import data, figures, views

__all__ = [
    "ALL_PROTOCOLS",
    "Selection",
    "default_results_dir",
    "get_selection",
    "load_store_or_stop",
    "render_trial_detail",
    "show_chart",
    "sidebar",
]

ALL_PROTOCOLS = "all protocols (separate fronts)"
RESULTS_ENV = "HARNESS_RESULTS"
DEFAULT_STATES = ("complete", "infeasible")


def default_results_dir() -> Path:
    """``--results DIR`` after ``streamlit run app.py --``, else ``$HARNESS_RESULTS``, else
    ``results``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--results")
    known, _ = parser.parse_known_args(sys.argv[1:])
    return Path(known.results or os.environ.get(RESULTS_ENV) or "results")


@st.cache_resource(max_entries=4, show_spinner="Reading the results store...")
def _cached_store(results_dir: str, signature: tuple[tuple[str, int, int], ...]) -> data.Store:
    # NOTE: keyed on every file's mtime and size, so a study that is still running shows
    # its new trials on the next rerun; cache_resource hands out the same frames without
    # copying them (nothing downstream mutates them).
    del signature
    return data.load_store(results_dir)


def load_store_or_stop(results_dir: Path) -> data.Store:
    """The store, or a clear message on the page (and the script stopped) if unusable."""
    try:
        store = _cached_store(str(results_dir), data.store_signature(results_dir))
    except data.StoreError as exc:
        st.error(
            f"Cannot read the results: {exc}. Run a search first, or start the dashboard "
            "with `harness dashboard --results DIR`."
        )
        st.stop()
    for problem in store.problems:
        st.warning(f"Skipped: {problem}")
    if store.trials.empty:
        st.info(
            f"No trials yet in {results_dir}: it holds no readable "
            "`<study>/trials.parquet` or `trials.csv`."
        )
        st.stop()
    return store


@dataclass(frozen=True)
class Selection:
    """What the sidebar selected, as every page sees it."""

    store: data.Store
    trials: pd.DataFrame  # filtered
    protocol: str | None  # None: every protocol, each with its own front
    x: str  # cost column
    y: str  # metric column (accuracy, or a localizer's mAP)


def _default_axes(df: pd.DataFrame, accuracy: list[str], costs: list[str]) -> tuple[int, int]:
    for objectives in data.parse_json_column(df["objectives"].unique()):
        if isinstance(objectives, dict):
            ys = [k for k, v in objectives.items() if v == "maximize" and k in accuracy]
            xs = [k for k, v in objectives.items() if v == "minimize" and k in costs]
            return (costs.index(xs[0]) if xs else 0), (accuracy.index(ys[0]) if ys else 0)
    return 0, 0


def _present(df: pd.DataFrame, columns: dict[str, str]) -> list[str]:
    return [c for c in columns if df[c].notna().any()] or list(columns)[:1]


def sidebar(store: data.Store) -> Selection:
    """Draw the filters in the sidebar and return the selection."""
    df = store.trials
    bar = st.sidebar
    studies = sorted(df["study"].unique())
    chosen = bar.multiselect("Studies", studies, default=studies, key="f_studies")
    families = sorted(f for f in df["family"].unique() if f)
    fams = bar.multiselect("Families", families, default=families, key="f_families")
    states = sorted(df["state"].unique())
    default = [s for s in DEFAULT_STATES if s in states]
    picked = bar.multiselect("States", states, default=default, key="f_states")
    base = data.apply_filters(df, data.Filters(tuple(chosen), tuple(fams), tuple(picked)))
    protocols = data.list_protocols(base)
    protocol = bar.selectbox(
        "Evaluation protocol",
        [*protocols, ALL_PROTOCOLS],
        key="f_protocol",
        help="Accuracy is only comparable within one protocol (data, split, frames, crop, "
        "views, epochs): the Pareto set is computed per protocol.",
    )
    # NOTE: the metrics of the protocol shown: a localization study's mAP, a recognizer's
    # accuracy; the widget's key follows them, so a choice never outlives its options
    scope = base if protocol == ALL_PROTOCOLS else base[base["protocol"] == protocol]
    scope = scope if len(scope) else (base if len(base) else df)
    metrics, costs = _present(scope, data.METRIC_COLUMNS), _present(df, data.COST_COLUMNS)
    x_index, y_index = _default_axes(scope, metrics, costs)
    y = bar.selectbox(
        "Metric", metrics, index=y_index, key=f"f_y:{','.join(metrics)}",
        format_func=figures.axis_title,
    )  # fmt: skip
    x = bar.selectbox("Cost", costs, index=x_index, key="f_x", format_func=figures.axis_title)
    ranges = _range_filters(base, costs)
    trials = data.apply_filters(base, data.Filters(ranges=ranges))
    bar.caption(f"{len(trials):,} of {len(df):,} trials selected")
    return Selection(store, trials, None if protocol == ALL_PROTOCOLS else protocol, x, y)


def _range_filters(df: pd.DataFrame, costs: list[str]) -> dict[str, tuple[float, float]]:
    ranges = {}
    with st.sidebar.expander("Budget ranges"):
        for column in costs:
            values = df[column].dropna()
            if values.nunique() < 2:
                continue
            low, high = float(values.min()), float(values.max())
            chosen = st.slider(
                figures.axis_title(column), low, high, (low, high), key=f"f_range_{column}"
            )
            if chosen != (low, high):
                ranges[column] = (float(chosen[0]), float(chosen[1]))
    return ranges


def get_selection() -> Selection:
    """The selection ``app.py`` computed for this run."""
    selection = st.session_state.get("_selection")
    if not isinstance(selection, Selection):
        st.error("Open the dashboard through its entry point: `harness dashboard`.")
        st.stop()
    return selection


def show_chart(fig: go.Figure, *, key: str, selectable: bool = False) -> object:
    """Draw ``fig`` with the PNG download button; return the selection event if asked."""
    if selectable:
        return st.plotly_chart(
            fig,
            key=key,
            on_select="rerun",
            config=figures.CHART_CONFIG,
            selection_mode=("points", "box", "lasso"),
        )
    return st.plotly_chart(fig, key=key, config=figures.CHART_CONFIG)


def render_trial_detail(detail: views.TrialDetail, *, key: str) -> None:
    """The realised spec, per-stage table, costs, training curves and fidelity of a trial."""
    row = detail.row
    st.subheader(f"{row['study']} #{int(row['trial'])} · {row['name'] or '(unnamed)'}")
    flag = "feasible" if row["feasible"] else f"infeasible ({row['violations']})"
    st.caption(
        f"state **{row['state']}** · {flag} · family {row['family'] or '-'} · "
        f"protocol `{row['protocol']}` · spec `{row['spec_hash'][:16]}`"
    )
    if row["reason"]:
        st.caption(f"reason: {row['reason']}")
    architecture = data.architecture_summaries(detail.row.to_frame().T).iloc[0]
    if architecture:
        st.caption(f"architecture: `{architecture}`")
    for note in detail.notes:
        st.warning(note)
    measured = [m for m in data.METRIC_COLUMNS if pd.notna(row.get(m))]
    shown = measured or list(data.METRIC_COLUMNS)[:3]  # untrained: the recognition ones, "-"
    for column, name in zip(st.columns(len(shown)), shown, strict=True):
        value = row[name]
        column.metric(data.METRIC_COLUMNS[name], "-" if pd.isna(value) else f"{value:.1%}")
    left, right = st.columns(2)
    left.markdown("**Costs**")
    left.dataframe(detail.costs, hide_index=True, width="stretch")
    right.markdown("**Fidelity**")
    right.dataframe(detail.fidelity, hide_index=True, width="stretch")
    st.markdown("**Per-stage shapes, parameters and GFLOPs**")
    if detail.stages.empty:
        st.caption("no per-stage table recorded")
    else:
        st.dataframe(detail.stages, hide_index=True, width="stretch")
    st.markdown("**Training curves**")
    if detail.history.empty or "epoch" not in detail.history:
        st.caption("no training history recorded")
    else:
        show_chart(figures.plot_training_curves(detail.history), key=f"{key}_curves")
    st.markdown("**Realised spec**")
    st.code(row["spec_yaml"] or "# no spec recorded", language="yaml")
    st.download_button(
        "Download spec (YAML)",
        row["spec_yaml"],
        file_name=f"{row['study']}_{int(row['trial'])}_{row['spec_hash'][:12]}.yaml",
        mime="application/x-yaml",
        key=f"{key}_yaml",
    )
