"""Pareto fronts: accuracy against a cost, per evaluation protocol."""

from __future__ import annotations

import dataclasses

import streamlit as st

from dashboard import figures, ui, views

sel = ui.get_selection()
st.title("Pareto fronts")
protocol_text = (
    "every protocol, each with its own front"
    if sel.protocol is None
    else (f"protocol `{sel.protocol}`")
)
st.caption(
    f"{figures.axis_title(sel.y)} against {figures.axis_title(sel.x)} · {protocol_text}. "
    "The Pareto set is computed per protocol over complete, feasible trials; trials of "
    "different protocols never dominate each other. Crosses are infeasible trials; those "
    "rejected before training (no accuracy) are ticks at their cost in the strip under the "
    "chart. Rings mark the Pareto set, arrows an expansion run's kept candidates, dashed red "
    "lines the budgets, stars published zoo models of the same protocol. Click or "
    "box/lasso-select points to open their detail; the camera button downloads the chart "
    "as a PNG."
)
left, middle, right = st.columns([2, 2, 3])
per_study = left.toggle("One front per study", key="per_study")
log_x = left.toggle("Log cost axis", key="log_x")
mode = middle.radio(
    "Highlight", ["none", "knee point", "best under budget"], horizontal=True, key="pick_mode"
)
info = views.get_pareto_front_info(
    sel.trials, x=sel.x, y=sel.y, protocol=sel.protocol, zoo=sel.store.zoo, per_study=per_study
)
budget = None
if mode == "best under budget":
    default = info.budgets_x[0].value if info.budgets_x else float(info.points[sel.x].median() or 1)
    budget = right.number_input(
        f"{figures.axis_title(sel.x)} budget", value=default, min_value=0.0, key="pick_budget"
    )
picks = views.get_picks(info, mode="knee" if mode == "knee point" else "budget", budget=budget)
info = dataclasses.replace(info, picks=picks if mode != "none" else {})

if info.points.empty and info.untrained.empty:
    st.info("No complete or infeasible trial with a cost under this selection.")
    st.stop()
fig = figures.plot_pareto_front(info, log_x=log_x)
event = ui.show_chart(fig, key="pareto_chart", selectable=True)
front_size = sum(len(f) for f in info.fronts.values())
st.caption(
    f"{len(info.points):,} trials drawn at their accuracy and {len(info.untrained):,} "
    f"never trained (in the strip), {front_size} on the Pareto set(s); {info.not_drawn:,} "
    "selected trials without a cost or accuracy (pruned, failed, running) not drawn."
    if len(info.untrained)
    else f"{len(info.points):,} trials drawn, {front_size} on the Pareto set(s); "
    f"{info.not_drawn:,} selected trials without a cost or accuracy not drawn."
)


# the protocol column only where several protocols are shown
key_columns = ("study", "trial") if sel.protocol is not None else ("study", "trial", "protocol")
column_config = {
    "trial": st.column_config.NumberColumn("trial", width="small"),
    sel.y: st.column_config.NumberColumn(
        figures.axis_title(sel.y), format="percent", width="small"
    ),
    sel.x: st.column_config.NumberColumn(figures.axis_title(sel.x), format="%.4g", width="small"),
    "architecture": st.column_config.TextColumn("architecture", width="large"),
}
if info.picks:
    picked = info.points.loc[list(info.picks.values())]
    st.markdown("**Picked**")
    st.dataframe(
        views.get_architecture_table(picked, x=sel.x, y=sel.y, first=key_columns),
        hide_index=True,
        column_config=column_config,
    )

points = getattr(getattr(event, "selection", None), "points", None) or []
chosen = []
for point in points:
    custom = point.get("customdata") or []
    if len(custom) >= 2 and str(custom[1]).isdigit():
        chosen.append((str(custom[0]), int(custom[1])))
chosen = list(dict.fromkeys(chosen))
if chosen:
    st.session_state["detail"] = chosen[0]
    st.markdown(f"**Selected: {len(chosen)} trial(s)**")
    if st.button("Open in the trial detail page", key="open_detail"):
        st.switch_page("app_pages/trial.py")
    detail = views.get_trial_detail(sel.trials, study=chosen[0][0], trial=chosen[0][1])
    if detail is not None:
        ui.render_trial_detail(detail, key="pareto_detail")

with st.expander("Pareto set as a table"):
    front_rows = info.points[info.points["on_front"]].sort_values(["protocol", sel.x])
    st.dataframe(
        views.get_architecture_table(front_rows, x=sel.x, y=sel.y, first=key_columns),
        hide_index=True,
        column_config=column_config,
        width="stretch",
    )
    st.download_button(
        "Download the Pareto set (CSV)",
        front_rows.to_csv(index=False),
        file_name="pareto_set.csv",
        mime="text/csv",
        key="pareto_csv",
    )
