"""Samplers by name: one registry, ``create_sampler(name, seed=..., space=...)``.

Every sampler gets an explicit seed. Names: ``tpe`` (default), ``nsga2``, ``nsga3``,
``random``, ``grid`` and ``gp`` (Optuna's Gaussian-process sampler; scipy and torch).

A study's proposals are one stream however many processes draw them:
:func:`create_study_sampler` gives a sampler whose randomness for trial ``n`` is derived
from the study's seed and ``n`` alone (the history comes from the storage, as always), so a
study grown in chunks, resumed after a crash or drawn by several workers on several hosts
proposes what one long run would, never the first chunk's candidates again.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from harness.registry import Registry
from harness.search.space import SearchSpace

__all__ = [
    "TrialSeededSampler",
    "create_sampler",
    "create_study_sampler",
    "derive_seed",
    "list_samplers",
    "register_sampler",
]

SamplerFactory = Callable[..., optuna.samplers.BaseSampler]
_SAMPLERS: Registry[SamplerFactory] = Registry("sampler")


def register_sampler(name: str) -> Callable[[SamplerFactory], SamplerFactory]:
    """Register ``fn(*, seed, space, **options) -> BaseSampler`` under ``name``."""
    return _SAMPLERS.register(name)


def list_samplers() -> list[str]:
    """Names of the registered samplers."""
    return _SAMPLERS.names()


def create_sampler(
    name: str, *, seed: int, space: SearchSpace, **options: Any
) -> optuna.samplers.BaseSampler:
    """The sampler registered as ``name`` (SpecError listing the known names otherwise)."""
    return _SAMPLERS.get(name)(seed=seed, space=space, **options)


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from the study seed and a trial number / worker index (stable, hashed)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@register_sampler("tpe")
def _tpe(*, seed: int, space: SearchSpace, **options: Any) -> optuna.samplers.BaseSampler:
    # NOTE: multivariate + group lets TPE model conditional parameters jointly; constraints
    # come from trial.set_constraint (Optuna 5), no constraints_func needed.
    options = {"multivariate": True, "group": True, "n_startup_trials": 8, **options}
    with warnings.catch_warnings():  # "experimental" in Optuna: we know, once per trial
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, **options)


@register_sampler("nsga2")
def _nsga2(*, seed: int, space: SearchSpace, **options: Any) -> optuna.samplers.BaseSampler:
    options = {"population_size": 16, **options}
    return optuna.samplers.NSGAIISampler(seed=seed, **options)


@register_sampler("nsga3")
def _nsga3(*, seed: int, space: SearchSpace, **options: Any) -> optuna.samplers.BaseSampler:
    options = {"population_size": 16, **options}
    return optuna.samplers.NSGAIIISampler(seed=seed, **options)


@register_sampler("random")
def _random(*, seed: int, space: SearchSpace, **options: Any) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed, **options)


@register_sampler("grid")
def _grid(*, seed: int, space: SearchSpace, **options: Any) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GridSampler(space.grid(), seed=seed, **options)


@register_sampler("gp")
def _gp(*, seed: int, space: SearchSpace, **options: Any) -> optuna.samplers.BaseSampler:
    # NOTE: conditional parameters fall back to the independent sampler, by design here;
    # Optuna would warn about it once per trial.
    options = {"warn_independent_sampling": False, **options}
    return optuna.samplers.GPSampler(seed=seed, **options)


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """A sampler made afresh for every trial, seeded from the study seed and trial number.

    Optuna's samplers keep their random state in the process: two invocations (or two
    workers) seeded alike draw the same stream, and one seeded at random cannot be
    replayed. Here trial ``n`` is always proposed by ``create(derive_seed(seed, n))`` from
    the trials the storage holds, whichever process asks, and in whatever order.
    """

    def __init__(self, create: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._create = create
        self._seed = seed
        self.inner = create(derive_seed(seed, "study"))  # until the first trial starts

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner = self._create(derive_seed(self._seed, "trial", trial.number))
        self.inner.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Nothing to do: every trial's seed is derived, never drawn."""


def create_study_sampler(
    name: str, *, seed: int, space: SearchSpace, **options: Any
) -> TrialSeededSampler:
    """The sampler ``name`` with a trial stream that continues across processes."""
    create_sampler(name, seed=seed, space=space, **options)  # NOTE: fail now, not per trial
    return TrialSeededSampler(
        lambda trial_seed: create_sampler(name, seed=trial_seed, space=space, **options), seed
    )
