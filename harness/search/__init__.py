"""Architecture search: a thin adapter over Optuna's ask/tell.

    space YAML --load_space--> SearchSpace --sample(trial)--> Spec --pre-check--> costs
        budgets violated: recorded infeasible (trial.set_constraint), never trained
        same spec hash + protocol seen: result reused
        otherwise: harness.train with pruning (Optuna's pruner, or successive halving by
        non-dominated rank for several objectives) --> tell --> results/<study>/trials.parquet

``run_search`` runs (or resumes) a study; ``evaluate_candidates`` runs an explicit list of
candidates through the same machinery (issue 7's expansion runner).
"""

from harness.search._check import DataInfo, SpaceCheck, check_space, inspect_data
from harness.search.run import (
    SearchResult,
    create_study,
    evaluate_candidates,
    pareto_front,
    run_search,
    run_worker,
)
from harness.search.samplers import (
    create_sampler,
    create_study_sampler,
    derive_seed,
    list_samplers,
    register_sampler,
)
from harness.search.space import SearchSpace, load_space, parse_budget

__all__ = [
    "DataInfo",
    "SearchResult",
    "SearchSpace",
    "SpaceCheck",
    "check_space",
    "create_sampler",
    "create_study",
    "create_study_sampler",
    "derive_seed",
    "evaluate_candidates",
    "inspect_data",
    "list_samplers",
    "load_space",
    "pareto_front",
    "parse_budget",
    "register_sampler",
    "run_search",
    "run_worker",
]
