"""The results store: one tidy table per study, and pure functions over it.

Imports neither torch nor Optuna: the dashboard reads results through this package only.
"""

from harness.results._pareto import (
    Direction,
    hypervolume,
    knee_point,
    non_dominated_rank,
    pareto_front,
    pareto_mask,
    study_budgets,
    study_objectives,
    to_minimisation,
)
from harness.results._summary import (
    GroupBest,
    compare_time_mixing,
    search_params,
    summarise_architecture,
)
from harness.results._table import (
    COLUMNS,
    STATES,
    TABLE_NAME,
    load_results,
    load_study_results,
    reused,
    reused_reason,
    save_results,
    study_dirs,
)

__all__ = [
    "COLUMNS",
    "STATES",
    "TABLE_NAME",
    "Direction",
    "GroupBest",
    "compare_time_mixing",
    "hypervolume",
    "knee_point",
    "load_results",
    "load_study_results",
    "non_dominated_rank",
    "pareto_front",
    "pareto_mask",
    "reused",
    "reused_reason",
    "save_results",
    "search_params",
    "study_budgets",
    "study_dirs",
    "study_objectives",
    "summarise_architecture",
    "to_minimisation",
]
