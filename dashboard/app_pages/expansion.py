"""X3D expansion: the path through the kept candidates, step by step."""

from __future__ import annotations

import streamlit as st

from dashboard import figures, ui, views

sel = ui.get_selection()
st.title("X3D expansion")
st.caption(
    "Every candidate of every expansion step, coloured by the axis it expands; the kept "
    "candidate of each step is joined to the next (as in the X3D paper's figure 2)."
)
studies = views.list_expansion_studies(sel.trials)
if not studies:
    st.info("No expansion study under the current filters (no trial has a `step`).")
    st.stop()
study = st.selectbox("Expansion study", studies, key="expansion_study")
info = views.get_expansion_info(sel.trials, study=study, x=sel.x, y=sel.y)
if info.candidates.empty:
    st.info(f"No candidate of {study} has both {sel.x} and {sel.y}.")
    st.stop()
ui.show_chart(figures.plot_expansion(info), key="expansion_chart")
st.markdown("**Kept at each step**")
st.dataframe(
    views.get_architecture_table(info.path, x=sel.x, y=sel.y, first=("step", "axis", "trial")),
    hide_index=True,
    width="stretch",
    column_config={
        sel.y: st.column_config.NumberColumn(figures.axis_title(sel.y), format="percent"),
        sel.x: st.column_config.NumberColumn(figures.axis_title(sel.x), format="%.4g"),
    },
)
