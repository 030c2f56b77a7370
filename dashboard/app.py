"""Entry point of the dashboard: ``streamlit run dashboard/app.py -- --results DIR``.

``harness dashboard`` runs exactly that. The sidebar (results directory and filters) is
drawn here, before the page, so the filters persist across pages.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

# NOTE: `streamlit run` puts only this file's folder on sys.path; the pages import the
# `dashboard` package, so its parent folder goes first.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard import ui  # noqa: E402

st.set_page_config(page_title="harness dashboard", page_icon="📈", layout="wide")
page = st.navigation(
    [
        st.Page("app_pages/pareto.py", title="Pareto fronts", default=True),
        st.Page("app_pages/trial.py", title="Trial detail"),
        st.Page("app_pages/expansion.py", title="X3D expansion"),
        st.Page("app_pages/progress.py", title="Search progress"),
        st.Page("app_pages/trials.py", title="Trials table"),
    ]
)
results_dir = st.sidebar.text_input(
    "Results directory", str(ui.default_results_dir()), key="results_dir"
)
st.session_state["_selection"] = ui.sidebar(ui.load_store_or_stop(Path(results_dir)))
try:
    page.run()
except Exception as exc:  # a page bug or odd data: a message, not a traceback
    st.error(f"This page could not be drawn: {type(exc).__name__}: {exc}")
    with st.expander("details"):
        st.code(traceback.format_exc())
