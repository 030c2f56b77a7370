"""Running a search: create the study once, then ask/tell workers until it has N trials.

``run_search`` is what ``harness search`` calls. ``evaluate_candidates`` runs an explicit
list of candidates (parameter dicts, e.g. the X3D expansion steps of issue 7) through the
same storage, results table and duplicate reuse: each is enqueued as a fixed trial and the
workers drain the queue. Both return a :class:`SearchResult`.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from harness.errors import HarnessError, Interrupted, SpecError, warn
from harness.results import (
    Direction,
    GroupBest,
    compare_time_mixing,
    load_study_results,
    pareto_front,
    reused,
)
from harness.search._check import check_space, inspect_data
from harness.search._evaluate import ROW_ATTR, Context, evaluate_trial, requeue_trial
from harness.search._preflight import (
    check_results_dir,
    check_study_name,
    default_study_name,
)
from harness.search._records import DISCARDED_ATTR, KEPT_ATTR, export_results
from harness.search._signals import held_signals, stop_on_signals
from harness.search._storage import (
    WORKER_ATTR,
    Heartbeat,
    check_settings,
    open_storage,
    recover_interrupted,
    worker_id,
)
from harness.search._workers import run_workers
from harness.search.samplers import create_study_sampler
from harness.search.space import RECOGNITION_METRICS, SearchSpace

__all__ = [
    "SearchResult",
    "create_study",
    "evaluate_candidates",
    "run_search",
    "run_worker",
    "set_kept",
]

SPACE_ATTR = "harness.space"  # study attribute: the space's fingerprint
SETTINGS_ATTR = "harness.settings"  # study attribute: sampler, seed and budgets of the last run
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


@dataclass
class SearchResult:
    """What a search leaves behind."""

    study: str
    results: Path  # the results table (Parquet)
    table: pd.DataFrame = field(repr=False)
    objectives: dict[str, Direction] = field(default_factory=dict)
    budgets: dict[str, float] = field(default_factory=dict)  # in force at the end

    def count(self, state: str) -> int:
        """Trials in ``state``; ``failed`` leaves out interrupted ones (they run again)."""
        if not len(self.table):
            return 0
        rows = self.table["state"] == state
        if state == "failed":
            rows &= ~self._interrupted()
        return int(rows.sum())

    def _interrupted(self) -> pd.Series:
        return self.table["reason"].fillna("").str.startswith("interrupted")

    def interrupted(self) -> int:
        """Trials stopped by a signal or a dead worker, each queued to run again."""
        return int(self._interrupted().sum()) if len(self.table) else 0

    def pareto(self) -> pd.DataFrame:
        """Complete trials within the budgets in force, on the Pareto set of the objectives."""
        return pareto_front(self.table, self.objectives, self.budgets)

    def time_mixing(self) -> dict[str, GroupBest]:
        """The best accuracy among trained networks that mix frames and among the blind ones
        (:func:`harness.results.compare_time_mixing`); ``{}`` without an accuracy objective."""
        metric = next((m for m in self.objectives if m in RECOGNITION_METRICS), None)
        return compare_time_mixing(self.table, metric) if metric else {}

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
            "n_interrupted": self.interrupted(),
            "n_trained": self.trained(),
            "time_mixing": {k: v.to_json() for k, v in self.time_mixing().items()},
            "pareto": json.loads(front.to_json(orient="records")),
        }

    def trained(self) -> int:
        """Trials that trained (complete or pruned, not reused duplicates)."""
        if not len(self.table):
            return 0
        trained = self.table["state"].isin(["complete", "pruned"]) & ~reused(self.table)
        return int(trained.sum())


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

    A study's search space (base, data, params, tied) and objectives are fixed when it is
    created, and so is its seed (the stream of proposals derives from it): resuming with
    others is refused. Budgets and the sampler may change between runs: each change is one
    warning line, and from then on every verdict, reused results' included, follows the
    new budgets.

    NOTE: two processes creating Optuna's schema in an empty PostgreSQL database at the same
    moment race (one crashes), hence once, here.

    Raises:
        HarnessError: the study exists with another space, objectives or seed.
    """
    store = open_storage(storage, results_dir, study)
    created = optuna.create_study(
        storage=store, study_name=study, directions=space.directions(), load_if_exists=True
    )
    _check_space_unchanged(created, space)
    _record_settings(created, sampler=sampler, seed=seed, budgets=dict(space.budgets))
    return created


def _check_space_unchanged(study: optuna.Study, space: SearchSpace) -> None:
    stored = study.user_attrs.get(SPACE_ATTR)
    if stored is None:
        study.set_user_attr(SPACE_ATTR, space.fingerprint())
        return
    if stored == space.fingerprint():
        return
    before, now = json.loads(stored), json.loads(space.fingerprint())
    name = study.study_name
    if before.get("objectives") != now.get("objectives"):
        raise HarnessError(
            f"study '{name}' has the objectives {json.dumps(before.get('objectives'))}, not "
            f"{json.dumps(now.get('objectives'))}: a study's objectives are fixed when it is "
            "created; give another --study name"
        )
    changed = ", ".join(k for k in sorted(now) if before.get(k) != now.get(k))
    raise HarnessError(
        f"study '{name}' exists with a different search space ({changed} differ); "
        "give another --study name or the original space"
    )


def _budget_text(budgets: Mapping[str, float]) -> str:
    return ", ".join(f"{k}<={v:g}" for k, v in budgets.items()) or "none"


def _record_settings(
    study: optuna.Study, *, sampler: str, seed: int, budgets: dict[str, float]
) -> None:
    """Store this run's sampler, seed and budgets; warn of what changed, refuse a new seed."""
    before = study.user_attrs.get(SETTINGS_ATTR)
    now = {"sampler": sampler, "seed": seed, "budgets": budgets}
    name = study.study_name
    if before is not None:
        if before["seed"] != seed:
            raise HarnessError(
                f"study '{name}' was created with seed {before['seed']}; seed {seed} would "
                "start another stream of proposals: give the original seed or another --study"
            )
        if before["sampler"] != sampler:
            warn(
                f"study '{name}': sampler {before['sampler']} -> {sampler}; the trials from "
                "now on are proposed by it"
            )
        if before["budgets"] != budgets:
            warn(
                f"study '{name}': budgets {_budget_text(before['budgets'])} -> "
                f"{_budget_text(budgets)}; finished trials keep the verdicts they were "
                "given, new and reused ones are judged against the new budgets"
            )
    if before != now:
        study.set_user_attr(SETTINGS_ATTR, now)


@dataclass(frozen=True)
class _Counts:
    """Where a study stands: interrupted, discarded and retried trials do not count."""

    finished: int
    running: int
    waiting: int
    trained: int  # finished trials that trained (complete or pruned; reused ones are not)


def _counts(study: optuna.Study) -> _Counts:
    finished = running = waiting = trained = 0
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
            trained += bool((t.user_attrs.get(ROW_ATTR) or {}).get("trained"))
    return _Counts(finished, running, waiting, trained)


def _done(counts: _Counts, trials: int | None, trained: int | None) -> bool:
    """Whether a worker should stop asking: the queue is empty and a goal is reached."""
    if counts.waiting:
        return False
    if trials is None and trained is None:  # a queue of fixed candidates: drained
        return True
    reached_trials = trials is not None and counts.finished + counts.running >= trials
    return reached_trials or (trained is not None and counts.trained >= trained)


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
    trained: int | None = None,
    timeout: float | None = None,
    worker: int = 0,
    classes: int | None = None,
    on_trial: Progress | None = None,
) -> None:
    """Ask, evaluate and tell until the study has ``trials`` finished trials or ``trained``
    trials that trained (both None: until no trial is waiting), the ``timeout`` (seconds)
    passes, or the sampler has nothing left.

    Before each ask, the running trials of dead workers are failed and queued again, so the
    workers that survive retry them. A trial in progress when ``timeout`` passes finishes;
    one in progress at a SIGINT / SIGTERM (``KeyboardInterrupt``) is queued again.
    ``classes``: of the data (default: read from it).
    """
    deadline = time.monotonic() + timeout if timeout else None
    loaded = optuna.load_study(
        study_name=study,
        storage=open_storage(storage, results_dir, study),
        sampler=create_study_sampler(sampler, seed=seed, space=space, **space.sampler_options),
        pruner=_pruner(space),
    )
    ctx = Context(
        space=space, study=study, results_dir=Path(results_dir), sampler=sampler, seed=seed,
        classes=classes or inspect_data(space).classes,
    )  # fmt: skip
    last_export = 0.0
    while deadline is None or time.monotonic() < deadline:
        trial: optuna.Trial | None = None
        try:
            # NOTE: a trial asked for but not yet claimed would be left running by a stop
            # signal, and no worker would queue it again: asking and claiming are one step.
            with held_signals():
                recover_interrupted(loaded)  # a worker that died mid-trial: it runs again
                if _done(_counts(loaded), trials, trained):
                    break
                trial = _ask(loaded)
                trial.storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker_id())
            _run_trial(loaded, trial, ctx, fixed_only=trials is None and trained is None)
        except KeyboardInterrupt as exc:  # stopped before its evaluation: queue it again
            if trial is not None:
                reason = getattr(exc, "reason", "Ctrl-C")
                requeue_trial(loaded, trial, f"interrupted ({reason}); re-run")
            raise
        if time.monotonic() - last_export > EXPORT_EVERY_SECONDS:
            export_results(loaded, results_dir)
            last_export = time.monotonic()
        if on_trial is not None:
            on_trial(loaded)
        inner = getattr(loaded.sampler, "inner", loaded.sampler)
        if isinstance(inner, optuna.samplers.GridSampler) and inner.is_exhausted(loaded):
            break
    export_results(loaded, results_dir)


def _run_trial(study: optuna.Study, trial: optuna.Trial, ctx: Context, *, fixed_only: bool) -> None:
    system_attrs = trial.storage.get_trial_system_attrs(trial._trial_id)
    if fixed_only and "fixed_params" not in system_attrs:
        # NOTE: another worker took the last queued candidate between our count and our
        # ask; Optuna cannot take a trial back, so this sampled one is dropped unrun.
        trial.set_user_attr(DISCARDED_ATTR, True)
        study.tell(trial, state=TrialState.FAIL)
        return
    with Heartbeat(study, trial):
        evaluate_trial(study, trial, ctx)


def run_search(
    space: SearchSpace,
    *,
    trials: int | None = 20,
    trained: int | None = None,
    study: str | None = None,
    storage: str | None = None,
    results_dir: str | Path = "results",
    workers: int = 1,
    sampler: str | None = None,
    seed: int | None = None,
    timeout: float | None = None,
    on_trial: Progress | None = None,
    check: bool = True,
    on_start: Callable[[], None] | None = None,
) -> SearchResult:
    """Run (or resume) a search until the study has ``trials`` finished trials, or
    ``trained`` of them trained (over-budget and reused candidates do not count).

    Re-running the same call after a crash (kill -9 included) continues the study where one
    long run would be: finished trials are kept, the interrupted one is run again, and the
    sampler goes on with the next proposals, not the first ones again.

    Args:
        check: first validate the space (every choice realised at both clips, the data,
            the sampler) and scan its feasibility (:func:`check_space`).
        on_start: called once the study is open and its table rebuilt from the storage,
            before the first trial (when nothing can fail on the options any more).

    Raises:
        SpecError: before anything trains: a bad space, data or option, a space with nothing
            within budget, or a ``results_dir`` that cannot be written or is (nearly) full.
        Interrupted: SIGINT or SIGTERM; the running trial is queued again and the results
            table holds every finished trial.
    """
    study = check_study_name(study) if study else default_study_name(space.name)
    sampler = sampler or space.sampler
    seed = space.seed if seed is None else seed
    if trials is None and trained is None:
        raise SpecError("give a number of trials or of trained trials", path=("--trials",))
    if trained is not None and trials is None:
        trials = TRIAL_CAP_PER_TRAINED * trained  # a bound, should most draws be over budget
    results_dir = Path(results_dir)
    check_results_dir(results_dir)
    check_settings()
    report = check_space(space, sampler=sampler) if check else None
    classes = report.data.classes if report is not None else inspect_data(space).classes
    created = create_study(
        space, study=study, storage=storage, results_dir=results_dir, sampler=sampler, seed=seed
    )
    kwargs: dict[str, Any] = dict(
        space=space, study=study, storage=storage, results_dir=results_dir, sampler=sampler,
        seed=seed, trials=trials, trained=trained, timeout=timeout, classes=classes,
    )  # fmt: skip
    _drive(created, results_dir, workers, on_trial, kwargs, on_start=on_start)
    return _result(created, space, results_dir)


TRIAL_CAP_PER_TRAINED = 50  # proposals per wanted trained trial when only that is given


def _drive(
    study: optuna.Study,
    results_dir: Path,
    workers: int,
    on_trial: Progress | None,
    kwargs: dict[str, Any],
    *,
    on_start: Callable[[], None] | None = None,
) -> None:
    """Run the workers; on SIGINT / SIGTERM rebuild the table and raise Interrupted."""
    with stop_on_signals():
        try:
            recover_interrupted(study)  # after kill -9: the dead run's trial is queued again
            export_results(study, results_dir)  # and the table is the storage's, first
            if on_start is not None:
                on_start()
            if workers <= 1:
                run_worker(**kwargs, on_trial=on_trial)
            else:
                poll = (lambda: on_trial(study)) if on_trial is not None else None
                run_workers(workers, poll, **kwargs)
        except KeyboardInterrupt as exc:
            path = export_results(study, results_dir)
            finished = _counts(study).finished
            raise Interrupted(
                f"interrupted ({getattr(exc, 'reason', 'Ctrl-C')}): study "
                f"'{study.study_name}' keeps its {finished} finished "
                f"trial{'' if finished == 1 else 's'} ({path}); the "
                "interrupted trial is queued and runs again when the study is resumed"
            ) from None


def _result(study: optuna.Study, space: SearchSpace, results_dir: Path) -> SearchResult:
    path = export_results(study, results_dir)
    table = load_study_results(path.parent)
    return SearchResult(study.study_name, path, table, dict(space.objectives), dict(space.budgets))


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
    check_study_name(study)
    results_dir = Path(results_dir)
    check_results_dir(results_dir)
    check_settings()
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
        sampler="random", seed=seed, trials=None, classes=inspect_data(space).classes,
    )  # fmt: skip
    _drive(created, results_dir, workers, None, kwargs)
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
