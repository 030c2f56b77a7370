"""Dashboard pages, run by ``st.navigation`` in ``dashboard/app.py`` (not imported)."""
