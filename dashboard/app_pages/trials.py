"""Trials table: the filtered trials, exportable as CSV."""

from __future__ import annotations

import streamlit as st

from dashboard import ui

sel = ui.get_selection()
st.title("Trials table")
df = sel.trials
if sel.protocol is not None:
    df = df[df["protocol"] == sel.protocol]
st.caption(f"{len(df):,} trials under the sidebar filters (protocol included).")
shown = [
    "study",
    "trial",
    "state",
    "family",
    "protocol",
    "top1",
    "top5",
    "gflops",
    "params",
    "train_memory_mb",
    "latency_ms",
    "feasible",
    "violations",
    "fidelity_epochs",
    "sampler",
    "spec_hash",
    "datetime_complete",
    *[c for c in df.columns if c.startswith("param.")],
]
st.dataframe(df[shown], hide_index=True, width="stretch")
st.download_button(
    "Download these trials (CSV, every column)",
    df.to_csv(index=False),
    file_name="trials.csv",
    mime="text/csv",
    key="trials_csv",
)
