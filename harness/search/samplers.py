"""Samplers by name: one registry, ``create_sampler(name, seed=..., space=...)``.

Every sampler gets an explicit seed. Names: ``tpe`` (default), ``nsga2``, ``nsga3``,
``random``, ``grid``, and ``gp`` where its dependencies (scipy, torch) import.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import optuna

from harness.registry import Registry
from harness.search.space import SearchSpace

__all__ = ["create_sampler", "derive_seed", "list_samplers", "register_sampler"]

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


def _gp_available() -> bool:
    try:
        import scipy  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


if _gp_available():

    @register_sampler("gp")
    def _gp(*, seed: int, space: SearchSpace, **options: Any) -> optuna.samplers.BaseSampler:
        return optuna.samplers.GPSampler(seed=seed, **options)
