"""Trials table: the filtered trials, exportable as CSV."""

from __future__ import annotations

import streamlit as st

from dashboard import data, ui, views

sel = ui.get_selection()
st.title("Trials table")
df = sel.trials
if sel.protocol is not None:
    df = df[df["protocol"] == sel.protocol]
st.caption(f"{len(df):,} trials under the sidebar filters (protocol included).")
params = [c for c in df.columns if c.startswith("param.") and df[c].notna().any()]
labels = data.short_param_names(params)
chosen = st.multiselect(
    "Search parameters shown",
    params,
    default=[c for c in data.param_columns(df) if c in params],
    format_func=lambda column: labels[column],
    key="trials_params",
    help="The `param.*` columns of the trials under the filters; by default those that vary.",
)
st.dataframe(
    views.get_trials_table(df, x=sel.x, y=sel.y, params=chosen),
    hide_index=True,
    width="stretch",
    height=560,
)
st.download_button(
    "Download these trials (CSV, every column)",
    df.to_csv(index=False),
    file_name="trials.csv",
    mime="text/csv",
    key="trials_csv",
)
