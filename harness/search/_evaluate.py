"""One trial, start to finish: sample -> spec -> pre-check -> (reuse | train) -> tell.

The order matters: a candidate is checked against the budgets before anything trains, and
a spec already evaluated under the same protocol is reused instead of trained again. Every
outcome, including failures, is told to Optuna and recorded on the trial as one ``row``
user attribute that :mod:`harness.search._records` turns into a results-table row.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import torch
from optuna.trial import TrialState

from harness import __version__ as harness_version
from harness.costs import CostRequest
from harness.errors import HarnessError
from harness.measure import DoesNotFit
from harness.results import reused_reason
from harness.search._costs import cost_candidate, describe_costs
from harness.search._halving import promote, rungs
from harness.search._preflight import results_dir_problem
from harness.search._storage import requeue
from harness.search._tasks import Candidate, Outcome, describe_candidate, train_candidate
from harness.search.samplers import derive_seed
from harness.search.space import METRICS, SearchSpace

if TYPE_CHECKING:
    from harness.train.config import TrainConfig

__all__ = ["ROW_ATTR", "Context", "evaluate_trial", "requeue_trial", "root_trial"]

ROW_ATTR = "row"  # the trial's results row, a user attribute


@dataclass(frozen=True)
class Context:
    """What every trial of a study shares."""

    space: SearchSpace
    study: str
    results_dir: Path
    sampler: str
    seed: int  # the study's seed (each trial's is derived from it)
    classes: int  # classes of the data: the head every candidate is built and costed with


class _Pruned(Exception):
    """Raised from the training callback to stop an unpromising candidate."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    return {
        "harness_version": harness_version,
        "torch_version": torch.__version__,
        "optuna_version": optuna.__version__,
        "host": socket.gethostname(),
    }


def _values(space: SearchSpace, row: dict[str, Any], feasible: bool) -> list[float]:
    """Objective values for Optuna. An untrained infeasible candidate gets accuracy 0: its
    constraints already mark it infeasible, so the value only has to be finite."""
    out = []
    for name in space.objectives:
        value = row.get(name)
        if value is None and name in METRICS and not feasible:
            value = 0.0
        if value is None:
            raise HarnessError(f"objective '{name}' was not measured")
        out.append(float(value))
    return out


def _find_trained(study: optuna.Study, trial_number: int, key: tuple[str, str]) -> dict | None:
    """The row of a trial that trained the same spec under the same protocol to the end."""
    for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        row = other.user_attrs.get(ROW_ATTR) or {}
        same = (row.get("spec_hash"), row.get("protocol")) == key
        if same and other.number != trial_number and row.get("state") == "complete":
            return {**row, "trial": other.number}
    return None


def _find_seen(study: optuna.Study, trial_number: int, digest: str) -> int | None:
    """The first other finished trial of the same spec, if any."""
    for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        row = other.user_attrs.get(ROW_ATTR) or {}
        if row.get("spec_hash") == digest and other.number != trial_number:
            return other.number
    return None


def root_trial(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The first trial of a candidate that was interrupted and queued again (``retry_of``),
    or the trial itself: its seed and its run folder are the first trial's."""
    return int(trial.user_attrs.get("retry_of", trial.number))


class _Trainer:
    """Trains one candidate, reporting to Optuna's pruner or our successive halving."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial, ctx: Context, row: dict) -> None:
        self.study, self.trial, self.ctx, self.row = study, trial, ctx, row
        self.history: list[dict[str, Any]] = []
        space = ctx.space
        self.metric = next((m for m in space.objectives if m in METRICS), None)
        self.single = len(space.objectives) == 1 and self.metric is not None
        h = space.halving
        self.rungs = set(rungs(h.min_epochs, h.eta, space.fidelity.epochs)) if h else set()

    def callback(self, epoch_row: dict[str, Any]) -> None:
        self.history.append(dict(epoch_row))
        done = len(self.history)
        value = epoch_row.get(self.metric) if self.metric else None
        if value is None:
            return
        if self.single:
            self.trial.report(float(value), done)
            if self.trial.should_prune():
                raise _Pruned(f"pruned by Optuna's pruner after epoch {done}")
        elif done in self.rungs:
            self._halving(done, float(value))

    def _halving(self, epochs: int, value: float) -> None:
        space = self.ctx.space
        point = [value if name == self.metric else self.row[name] for name in space.objectives]
        key = f"rung.{epochs}"
        self.trial.set_user_attr(key, point)
        others = [
            t.user_attrs[key]
            for t in self.study.get_trials(deepcopy=False)
            if t.number != self.trial.number and key in t.user_attrs
        ]
        assert space.halving is not None
        if not promote(point, others, space.directions(), space.halving.eta):
            raise _Pruned(f"not promoted past epoch {epochs} (non-dominated rank)")

    def run(self, spec: Candidate, config: TrainConfig, out_dir: Path) -> Outcome:
        return train_candidate(self.ctx.space, spec, config, out_dir, self.callback)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _out_of_memory(exc: BaseException) -> bool:
    """A failed allocation: Python's, CUDA's, or the CPU allocator's (a RuntimeError); or
    one refused before it was tried (``DoesNotFit``: the step would need more than is free)."""
    if isinstance(exc, MemoryError | torch.OutOfMemoryError | DoesNotFit):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower()
    )


def _reason(exc: BaseException) -> str:
    if _out_of_memory(exc):
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # give the next candidate the memory back
        return f"out of memory: {_first_line(exc)}"
    return _first_line(exc)


def _stop_if_results_dir_broken(study: optuna.Study, trial: optuna.Trial, ctx: Context) -> None:
    """A trial that failed while the results directory cannot be written (disk full, made
    read-only) is not the candidate's fault: put it back in the queue and stop the study."""
    problem = results_dir_problem(ctx.results_dir)
    if problem is None:
        return
    requeue_trial(study, trial, f"interrupted ({problem}); re-run")
    raise HarnessError(
        f"{problem}; stopped the study: its finished trials are kept in its storage, and "
        "once there is room, run the same command again to continue it"
    )


def requeue_trial(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    """Queue ``trial`` to run again if it is still running (an interrupted trial). Best
    effort: the storage may sit on the same full disk (a dead worker's running trial is
    requeued by the next run anyway)."""
    with contextlib.suppress(OSError, RuntimeError, ValueError):
        requeue(study, trial.storage.get_trial(trial._trial_id), reason)


def evaluate_trial(study: optuna.Study, trial: optuna.Trial, ctx: Context) -> str:
    """Evaluate ``trial`` and tell the study; returns the row state.

    A failure of the candidate (a spec the compiler rejects, out of memory, a bug in a block
    builder) is recorded as a failed trial and the study goes on; an interrupted trial
    (SIGINT, SIGTERM, a full or read-only results directory) is queued to run again and the
    error propagates.
    """
    start = time.perf_counter()
    space = ctx.space
    seed = derive_seed(ctx.seed, root_trial(trial))  # a retry trains as its first try did
    row: dict[str, Any] = {
        **_versions(),
        "state": "running",
        "data": space.data,
        "sampler": ctx.sampler,
        "seed": seed,
        "budgets": json.dumps(space.budgets),
        "objectives": json.dumps(space.objectives),
        "fidelity_epochs": space.fidelity.epochs,
        "fidelity_subset": space.fidelity.subset,
        "train_seconds": 0.0,
        "eval_seconds": 0.0,
        "reason": "",
        "checkpoint_retried": False,
        "datetime_start": _now(),
    }
    try:
        values = space.sample(trial)
        row["values"] = values
        spec = space.create_spec(values)
        state = _evaluate_spec(study, trial, ctx, spec, row, space.train_config(seed), start)
    except KeyboardInterrupt as exc:
        requeue_trial(study, trial, f"interrupted ({getattr(exc, 'reason', 'Ctrl-C')}); re-run")
        raise
    except Exception as exc:  # a bug in a block builder must not end the study
        _stop_if_results_dir_broken(study, trial, ctx)
        if not isinstance(exc, HarnessError | RuntimeError | ValueError | MemoryError):
            row["traceback"] = traceback.format_exc(limit=8)
        state = _tell_failed(study, trial, row, _reason(exc), start)
    return state


def _evaluate_spec(
    study: optuna.Study,
    trial: optuna.Trial,
    ctx: Context,
    spec: Candidate,
    row: dict[str, Any],
    config: TrainConfig,
    start: float,
) -> str:
    """Measure (cached), judge against the budgets in force, then reuse or train."""
    space = ctx.space
    row.update(describe_candidate(space, spec))  # NOTE: before costing: a failure names it
    request = CostRequest.for_training(config, classes=ctx.classes)
    costed = cost_candidate(spec, space, request)
    if costed.spec is not spec:  # checkpointed by the retry: the same hash, another setting
        row.update(describe_candidate(space, costed.spec))
    spec, costs, verdict = costed.spec, costed.costs, costed.verdict
    row["checkpoint_retried"] = costed.retried
    row.update(costs.columns())
    row.update(
        constraints=verdict.constraints,
        violations=";".join(verdict.violations),
        feasible=verdict.feasible,
    )
    for name in space.objectives:
        if name not in METRICS:
            row[name] = costs.get(name)
    if not verdict.feasible:
        row["reason"] = f"over budget: {', '.join(verdict.violations)} (rejected before training)"
        if costed.retried:
            row["reason"] += "; also over it with activation checkpointing in every stage"
        earlier = _find_seen(study, trial.number, row["spec_hash"])
        if earlier is not None:  # measured again (the cache): the verdict is today's
            row["reason"] += f"; same candidate as trial {earlier}"
        return _tell(study, trial, space, row, "infeasible", start)
    reused = _find_trained(study, trial.number, (row["spec_hash"], row["protocol"]))
    if reused is not None:  # its accuracy; the costs and the verdict are this trial's
        keep = (*METRICS, "history", "stages", "gflops_all", "unsupported_ops",
                "epochs_trained", "checkpoint")  # fmt: skip
        row.update({k: reused[k] for k in keep if k in reused})
        row["reason"] = reused_reason(reused["trial"])
        return _tell(study, trial, space, row, "complete", start)
    row.update(describe_costs(spec, request))  # it will train: fvcore's per-stage table too
    trial.set_user_attr(ROW_ATTR, row)  # the running row shows its costs
    return _train(study, trial, ctx, spec, row, config, start)


def _train(
    study: optuna.Study,
    trial: optuna.Trial,
    ctx: Context,
    spec: Candidate,
    row: dict[str, Any],
    config: TrainConfig,
    start: float,
) -> str:
    trainer = _Trainer(study, trial, ctx, row)
    out_dir = ctx.results_dir / ctx.study / "runs" / f"trial-{root_trial(trial):05d}"
    try:
        result = trainer.run(spec, config, out_dir)
    except _Pruned as exc:
        row["history"] = trainer.history
        row["train_seconds"] = sum(float(h.get("seconds", 0.0)) for h in trainer.history)
        row["eval_seconds"] = sum(float(h.get("eval_seconds", 0.0)) for h in trainer.history)
        row["reason"] = str(exc)
        return _tell(study, trial, ctx.space, row, "pruned", start)
    row.update(
        result.metrics,
        train_seconds=result.train_seconds,
        eval_seconds=result.eval_seconds,
        history=result.history,
        checkpoint=result.checkpoint,
    )
    if result.status != "complete" or not all(
        math.isfinite(float(row[m])) for m in METRICS if row.get(m) is not None
    ):
        row["reason"] = f"training {result.status}: {result.reason or 'no reason given'}"
        return _tell_failed(study, trial, row, row["reason"], start)
    row["epochs_trained"] = result.epochs
    return _tell(study, trial, ctx.space, row, "complete", start)


def _finish(row: dict[str, Any], state: str, start: float) -> None:
    row["state"] = state
    row["datetime_complete"] = _now()
    row["duration_seconds"] = time.perf_counter() - start
    spent = float(row.get("train_seconds") or 0.0) + float(row.get("eval_seconds") or 0.0)
    reused = str(row.get("reason", "")).startswith("duplicate")
    row["trained"] = state in ("complete", "pruned") and not reused  # trials that trained
    row["overhead_seconds"] = row["duration_seconds"] - (0.0 if reused else spent)
    if reused:
        row["train_seconds"] = row["eval_seconds"] = 0.0


def _tell(
    study: optuna.Study,
    trial: optuna.Trial,
    space: SearchSpace,
    row: dict[str, Any],
    state: str,
    start: float,
) -> str:
    for key, value in (row.get("constraints") or {}).items():
        trial.set_constraint(key, value)
    _finish(row, state, start)
    trial.set_user_attr(ROW_ATTR, row)
    if state == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, _values(space, row, state != "infeasible"))
    return state


def _tell_failed(
    study: optuna.Study, trial: optuna.Trial, row: dict, reason: str, start: float
) -> str:
    row["reason"] = reason
    _finish(row, "failed", start)
    try:
        trial.set_user_attr(ROW_ATTR, row)
        study.tell(trial, state=TrialState.FAIL)
    except (RuntimeError, ValueError):  # already finished elsewhere (a stale-trial sweep)
        pass
    return "failed"
