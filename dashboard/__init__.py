"""The harness dashboard: a Streamlit app over the results store.

Start it with ``harness dashboard [--results DIR]``. It reads ``results/<study>/trials.parquet``
and nothing else: no torch, no Optuna (see ``dashboard.data``). Modules:

- ``data``: the store reader, filters, Pareto set, hypervolume, knee point, importance;
- ``views``: pure data functions behind each chart (``get_*_info``);
- ``figures``: the plotly figure of each view (``plot_*``);
- ``ui``: Streamlit glue (cached store, sidebar, trial detail); ``app.py`` and ``app_pages/``
  (not ``pages/``: Streamlit would turn that folder into its legacy page list).
"""
