"""Running a search: create the study once, then ask/tell workers until it has N trials.

``run_search`` is what ``harness search`` calls. ``evaluate_candidates`` runs an explicit
list of candidates (parameter dicts, e.g. the X3D expansion steps of issue 7) through the
same storage, results table and duplicate reuse: each is enqueued as a fixed trial and the
workers drain the queue. Both return a :class:`SearchResult`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import torch
from optuna.trial import TrialState

from harness.errors import HarnessError
from harness.results import Direction, load_study_results, pareto_mask
from harness.search._evaluate import Context, evaluate_trial
from harness.search._preflight import check_results_dir
from harness.search._records import DISCARDED_ATTR, KEPT_ATTR, export_results
from harness.search._storage import (
    WORKER_ATTR,
    Heartbeat,
    open_storage,
    recover_interrupted,
    worker_id,
)
from harness.search.samplers import create_sampler, derive_seed
from harness.search.space import SearchSpace

__all__ = [
    "SearchResult",
    "create_study",
    "evaluate_candidates",
    "run_search",
    "run_worker",
    "set_kept",
]

SPACE_ATTR = "harness.space"
EXPORT_EVERY_SECONDS = 5.0
Progress = Callable[[optuna.Study], None]


def _ask(study: optuna.Study) -> optuna.Trial:
    """``study.ask()``, without Optuna's warning that heartbeats want ``Study.optimize``.

    NOTE: we ask and tell ourselves and beat the heartbeat of each trial (``Heartbeat``),
    which is what ``optimize`` would do; the warning would print once per trial.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return study.ask()


def pareto_front(table: pd.DataFrame, objectives: Mapping[str, Direction]) -> pd.DataFrame:
    """Complete, feasible trials of ``table`` on the Pareto set of ``objectives``.

    A candidate evaluated more than once (a reused duplicate) appears once, as the trial
    that trained it.
    """
    if table.empty or "feasible" not in table:
        return table.iloc[0:0]
    done = table[(table["state"] == "complete") & table["feasible"].fillna(False).astype(bool)]
    done = done.sort_values("trial").drop_duplicates(["spec_hash", "protocol"], keep="first")
    if done.empty:
        return done
    return done[pareto_mask(done, objectives)].sort_values(next(iter(objectives)))


@dataclass
class SearchResult:
    """What a search leaves behind."""

    study: str
    results: Path  # the results table (Parquet)
    table: pd.DataFrame = field(repr=False)
    objectives: dict[str, Direction] = field(default_factory=dict)

    def count(self, state: str) -> int:
        return int((self.table["state"] == state).sum()) if len(self.table) else 0

    def pareto(self) -> pd.DataFrame:
        """Complete, feasible trials on the Pareto set of the objectives."""
        return pareto_front(self.table, self.objectives)

    def to_json(self) -> dict[str, Any]:
        columns = ["trial", "spec_hash", *self.objectives, "params", "gflops"]
        front = self.pareto()
        front = front[list(dict.fromkeys(c for c in columns if c in front.columns))]
        return {
            "study": self.study,
            "results": str(self.results),
            "n_complete": self.count("complete"),
            "n_infeasible": self.count("infeasible"),
            "n_pruned": self.count("pruned"),
            "n_failed": self.count("failed"),
            "pareto": json.loads(front.to_json(orient="records")),
        }


def create_study(
    space: SearchSpace,
    *,
    study: str,
    storage: str | None,
    results_dir: Path,
    sampler: str,
    seed: int,
) -> optuna.Study:
    """Create the study (or load it to resume); call once before workers start.

    NOTE: two processes creating Optuna's schema in an empty PostgreSQL database at the same
    moment race (one crashes), hence once, here.
    """
    store = open_storage(storage, results_dir, study)
    created = optuna.create_study(
        storage=store,
        study_name=study,
        directions=space.directions(),
        load_if_exists=True,
        sampler=create_sampler(sampler, seed=seed, space=space, **space.sampler_options),
    )
    stored = created.user_attrs.get(SPACE_ATTR)
    if stored is None:
        created.set_user_attr(SPACE_ATTR, space.fingerprint())
    elif stored != space.fingerprint():
        raise HarnessError(
            f"study '{study}' exists with a different search space; "
            "give another --study name or the original space"
        )
    return created


def _finished(study: optuna.Study) -> tuple[int, int, int]:
    """(finished trials, running trials, waiting trials); interrupted ones do not count."""
    finished = running = waiting = 0
    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs.get("failed_trial") for t in trials}  # heartbeat retries
    for t in trials:
        if t.state == TrialState.RUNNING:
            running += 1
        elif t.state == TrialState.WAITING:
            waiting += 1
        elif not (
            t.user_attrs.get("interrupted")
            or t.user_attrs.get(DISCARDED_ATTR)
            or t.number in retried
        ):
            finished += 1
    return finished, running, waiting


def _pruner(space: SearchSpace) -> optuna.pruners.BasePruner:
    h = space.halving
    if h is not None:
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=h.min_epochs, reduction_factor=h.eta
        )
    pruners: dict[str, Callable[[], optuna.pruners.BasePruner]] = {
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1),
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "none": optuna.pruners.NopPruner,
    }
    return pruners[space.pruner]()


def run_worker(
    space: SearchSpace,
    *,
    study: str,
    storage: str | None,
    results_dir: Path,
    sampler: str,
    seed: int,
    trials: int | None,
    timeout: float | None = None,
    worker: int = 0,
    on_trial: Progress | None = None,
) -> None:
    """Ask, evaluate and tell until the study has ``trials`` finished trials (None: until no
    trial is waiting), the ``timeout`` (seconds) passes, or the sampler has nothing left.

    Before each ask, the running trials of dead workers are failed and queued again, so the
    workers that survive retry them. A trial in progress when ``timeout`` passes finishes.
    """
    deadline = time.monotonic() + timeout if timeout else None
    loaded = optuna.load_study(
        study_name=study,
        storage=open_storage(storage, results_dir, study),
        sampler=create_sampler(
            sampler, seed=derive_seed(seed, "worker", worker), space=space, **space.sampler_options
        ),
        pruner=_pruner(space),
    )
    ctx = Context(
        space=space, study=study, results_dir=Path(results_dir), sampler=sampler, seed=seed
    )
    last_export = 0.0
    while deadline is None or time.monotonic() < deadline:
        recover_interrupted(loaded)  # a worker that died mid-trial: its trial runs again
        finished, running, waiting = _finished(loaded)
        if waiting == 0 and (trials is None or finished + running >= trials):
            break
        trial = _ask(loaded)
        system_attrs = trial.storage.get_trial_system_attrs(trial._trial_id)
        if trials is None and "fixed_params" not in system_attrs:
            # NOTE: another worker took the last queued candidate between our count and our
            # ask; Optuna cannot take a trial back, so this sampled one is dropped unrun.
            trial.set_user_attr(DISCARDED_ATTR, True)
            loaded.tell(trial, state=TrialState.FAIL)
            break
        trial.storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker_id())
        with Heartbeat(loaded, trial):
            evaluate_trial(loaded, trial, ctx)
        if time.monotonic() - last_export > EXPORT_EVERY_SECONDS:
            export_results(loaded, results_dir)
            last_export = time.monotonic()
        if on_trial is not None:
            on_trial(loaded)
        grid = loaded.sampler
        if isinstance(grid, optuna.samplers.GridSampler) and grid.is_exhausted(loaded):
            break
    export_results(loaded, results_dir)


def _worker_process(kwargs: dict[str, Any]) -> None:
    torch.set_num_threads(kwargs.pop("threads"))
    try:
        run_worker(**kwargs)
    except HarnessError as exc:  # one line, as the command line prints it; no traceback
        sys.stderr.write(f"harness: worker {kwargs['worker']}: {exc}\n")
        sys.exit(2)


def _run_workers(
    workers: int, on_poll: Progress | None, handle: optuna.Study, **kwargs: Any
) -> None:
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_worker_process, args=({**kwargs, "worker": i, "threads": threads},))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=1.0 / workers)
            if on_poll is not None:
                on_poll(handle)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
    bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if bad:
        raise HarnessError(f"{len(bad)} worker process(es) failed (exit codes {bad})")


def run_search(
    space: SearchSpace,
    *,
    trials: int,
    study: str | None = None,
    storage: str | None = None,
    results_dir: str | Path = "results",
    workers: int = 1,
    sampler: str | None = None,
    seed: int | None = None,
    timeout: float | None = None,
    on_trial: Progress | None = None,
) -> SearchResult:
    """Run (or resume) a search until the study has ``trials`` finished trials.

    Re-running the same call after a crash (kill -9 included) continues the study: finished
    trials are kept, the interrupted one is run again.

    Raises:
        SpecError: before anything trains, when ``results_dir`` cannot be written or its disk
            is (nearly) full.
    """
    study = study or space.name
    sampler = sampler or space.sampler
    seed = space.seed if seed is None else seed
    results_dir = Path(results_dir)
    check_results_dir(results_dir)
    created = create_study(
        space, study=study, storage=storage, results_dir=results_dir, sampler=sampler, seed=seed
    )
    kwargs: dict[str, Any] = dict(
        space=space, study=study, storage=storage, results_dir=results_dir,
        sampler=sampler, seed=seed, trials=trials, timeout=timeout,
    )  # fmt: skip
    if workers <= 1:
        run_worker(**kwargs, on_trial=on_trial)
    else:
        _run_workers(workers, on_trial, created, **kwargs)
    return _result(created, space, results_dir)


def _result(study: optuna.Study, space: SearchSpace, results_dir: Path) -> SearchResult:
    path = export_results(study, results_dir)
    table = load_study_results(path.parent)
    return SearchResult(study.study_name, path, table, dict(space.objectives))


def evaluate_candidates(
    space: SearchSpace,
    candidates: Sequence[Mapping[str, Any]],
    *,
    study: str,
    storage: str | None = None,
    results_dir: str | Path = "results",
    workers: int = 1,
    attrs: Sequence[Mapping[str, Any]] | None = None,
    seed: int | None = None,
) -> SearchResult:
    """Evaluate explicit candidates (``{key path: value}`` each) through the search machinery.

    Each candidate becomes a fixed trial of ``study`` (enqueued once: calling again with the
    same candidates after a crash does not add them twice) and is pre-checked, deduplicated,
    trained and recorded exactly like a sampled one. ``attrs`` gives per-candidate extra
    columns (``step``, ``axis``, ``parent``, ``kept`` for the X3D expansion runner). The
    keys must be parameters of ``space`` with values inside their distributions.
    """
    seed = space.seed if seed is None else seed
    results_dir = Path(results_dir)
    check_results_dir(results_dir)
    created = create_study(
        space, study=study, storage=storage, results_dir=results_dir, sampler="random", seed=seed
    )
    queued = {
        json.dumps(t.user_attrs.get("candidate"), sort_keys=True)
        for t in created.get_trials(deepcopy=False)
        if "candidate" in t.user_attrs
    }
    for i, candidate in enumerate(candidates):
        key = {"index": i, **candidate}
        if json.dumps(key, sort_keys=True) in queued:
            continue
        extra = dict(attrs[i]) if attrs is not None else {}
        created.enqueue_trial(dict(candidate), user_attrs={"candidate": key, **extra})
    kwargs: dict[str, Any] = dict(
        space=space, study=study, storage=storage, results_dir=results_dir,
        sampler="random", seed=seed, trials=None,
    )  # fmt: skip
    if workers <= 1:
        run_worker(**kwargs)
    else:
        _run_workers(workers, None, created, **kwargs)
    return _result(created, space, results_dir)


def set_kept(
    study: str,
    trials: Sequence[int],
    *,
    storage: str | None = None,
    results_dir: str | Path = "results",
) -> Path:
    """Record which trials of ``study`` an expansion kept (the ``kept`` column of rows that
    carry a ``step``) and export the results table again; returns its path."""
    results_dir = Path(results_dir)
    loaded = optuna.load_study(study_name=study, storage=open_storage(storage, results_dir, study))
    loaded.set_user_attr(KEPT_ATTR, sorted(int(t) for t in trials))
    return export_results(loaded, results_dir)
