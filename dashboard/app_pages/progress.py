"""Search progress: hypervolume, states over time, parameter importance, parallel coordinates."""

from __future__ import annotations

import streamlit as st

from dashboard import data, figures, ui, views

sel = ui.get_selection()
st.title("Search progress")
protocols = data.list_protocols(sel.trials)
protocol = sel.protocol or (protocols[0] if protocols else None)
one = sel.trials[sel.trials["protocol"] == protocol]

st.subheader("Hypervolume over trials")
history, ref = views.get_hypervolume_history(one, x=sel.x, y=sel.y)
st.caption(
    f"Protocol `{protocol}`; maximise {figures.axis_title(sel.y)}, minimise "
    f"{figures.axis_title(sel.x)}; reference point ({ref[0]:g}, {ref[1]:.4g}). Complete, "
    "feasible trials count."
)
if history.empty:
    st.info("No trial of this protocol under the current filters.")
else:
    ui.show_chart(figures.plot_hypervolume_history(history), key="hv_chart")

st.subheader("Trials by state over time")
st.caption("Cumulative trials per state (all protocols; choose states in the sidebar).")
states = views.get_state_history(sel.trials)
if states.empty:
    st.info("No trial with a start or completion time.")
else:
    ui.show_chart(figures.plot_state_history(states), key="state_chart")

st.subheader("Parameter importance")
st.caption(
    f"Share of the variance of {figures.axis_title(sel.y)} each parameter explains on its "
    "own (first-order variance decomposition over binned values, bias-corrected ε², as in "
    "fANOVA's main effects; interactions not counted), over complete trials of protocol "
    f"`{protocol}`."
)
importance = views.get_importance_info(one, objective=sel.y)
if importance.empty:
    st.info("No search parameter varies under the current filters.")
else:
    ui.show_chart(figures.plot_param_importance(importance), key="importance_chart")

st.subheader("Parallel coordinates")
axes = views.get_parallel_info(one, x=sel.x, y=sel.y)
if not axes or len(axes[-1].values) == 0:
    st.info("No complete trial of this protocol under the current filters.")
else:
    st.caption("One line per complete trial, coloured by accuracy; drag on an axis to filter.")
    ui.show_chart(figures.plot_parallel_coordinates(axes), key="parallel_chart")
