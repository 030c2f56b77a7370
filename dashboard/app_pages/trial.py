"""Trial detail: spec, per-stage table, costs with methods, training curves, fidelity."""

from __future__ import annotations

import streamlit as st

from dashboard import ui, views

sel = ui.get_selection()
st.title("Trial detail")
df = sel.trials
if df.empty:
    st.info("No trial under the current filters.")
    st.stop()
studies = sorted(df["study"].unique())
wanted = st.session_state.get("detail")
study_index = studies.index(wanted[0]) if wanted and wanted[0] in studies else 0
left, right = st.columns(2)
study = left.selectbox("Study", studies, index=study_index, key="detail_study")
numbers = sorted(int(t) for t in df.loc[df["study"] == study, "trial"])
trial_index = numbers.index(wanted[1]) if wanted and wanted[1] in numbers else 0
trial = right.selectbox("Trial", numbers, index=trial_index, key="detail_trial")
st.session_state["detail"] = (study, trial)
detail = views.get_trial_detail(df, study=study, trial=trial)
if detail is None:
    st.info("That trial is not under the current filters.")
    st.stop()
ui.render_trial_detail(detail, key="detail")
