"""Before the first trial: is the space sound, and can anything in it meet the budgets?

:func:`check_space` is ``harness check`` and the first thing ``harness search`` does:

1. the data is there and readable (its classes are the head every candidate is costed
   with);
2. every value a parameter can take to its extremes (every categorical choice, the lowest
   and highest number) is realised, with the parameters its ``when:`` needs set so that it
   is sampled, and compiled at the spec's clip and at the fidelity's clip; a value the spec
   rejects is an error at that value's line of the space file;
3. a feasibility scan: a few hundred random draws, costed by the pre-check (milliseconds
   each, cached), give the minimum, median and maximum of each budgeted cost and the share
   of draws within budget. A space with nothing within budget is an error naming its
   cheapest draw. Latency is timed per trial, never scanned.

Problems are :class:`~harness.errors.SpecError` at the space file's line and key path.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from harness.costs import CostRequest, format_shape, parse_cost
from harness.errors import SpecError, format_key_path
from harness.search._costs import TrialCosts, cost_candidate, measure_trial_costs, wanted_costs
from harness.search.samplers import create_sampler, derive_seed, list_samplers
from harness.search.space import SearchSpace
from harness.spec import ModelSpec, load_spec, realise
from harness.spec.localization import LocalizationSpec

__all__ = ["DEFAULT_DRAWS", "CostSpread", "DataInfo", "SpaceCheck", "check_space", "inspect_data"]

DEFAULT_DRAWS = 200  # random draws of the feasibility scan
_TIMED = ("latency_ms",)  # costs the scan does not measure (each would be a timing)


@dataclass(frozen=True)
class DataInfo:
    """What the space's data holds."""

    data: str
    classes: int
    train_clips: int  # training clips (localization: untrimmed videos)
    val_clips: int
    unit: str = "clips"  # what the counts count: clips, or (untrimmed) videos


@dataclass(frozen=True)
class CostSpread:
    """One cost over the scan's draws."""

    name: str
    low: float
    median: float
    high: float
    limit: float | None  # its budget, if any
    within: float | None  # share of draws within that budget


@dataclass(frozen=True)
class SpaceCheck:
    """What :func:`check_space` found (it raises instead when something is wrong)."""

    space: str
    data: DataInfo
    realised: int  # candidates built to check every value of every parameter
    inputs: tuple[str, str]  # the spec's clip and the fidelity's, as measured
    draws: int
    distinct: int  # distinct candidates among the draws
    invalid: int  # draws the spec rejected (parameter combinations)
    spreads: tuple[CostSpread, ...]
    within: float | None  # share of draws within every scanned budget (None: no budget)
    unscanned: tuple[str, ...]  # budgeted costs the scan does not measure
    seconds: float

    def lines(self) -> list[str]:
        """The report in words, a line each."""
        d = self.data
        inputs = f"{self.inputs[0]} (spec) and {self.inputs[1]} (fidelity)"
        if d.unit == "videos":  # localizers: windows of feature steps (input.steps may vary)
            inputs = "their windows of feature steps"
        out = [
            f"space {self.space}: every value of every parameter realised ({self.realised} "
            f"candidates) and compiled at {inputs}; data {d.data}: {d.classes} classes, "
            f"{d.train_clips} train and {d.val_clips} val {d.unit}"
        ]
        if not self.draws:
            return out
        share = "" if self.within is None else f": {self.within:.0%} within every budget"
        out.append(
            f"feasibility over {self.draws} random draws ({self.distinct} distinct"
            f"{f', {self.invalid} invalid' if self.invalid else ''}){share}"
        )
        for s in self.spreads:
            budget = "" if s.limit is None else f"  budget {s.limit:g}: {s.within:.0%} within"
            out.append(
                f"  {s.name}: min {s.low:.4g}  median {s.median:.4g}  max {s.high:.4g}{budget}"
            )
        for name in self.unscanned:
            out.append(f"  {name}: timed per trial, not scanned")
        return out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def inspect_data(space: SearchSpace) -> DataInfo:
    """The classes and split sizes of the space's data.

    Raises:
        SpecError: the data is missing or unreadable, at the space's ``data`` line.
    """
    if space.task == "localization":
        return _inspect_features(space)
    from harness.data import create_dataset, load_data_spec
    from harness.train import audio_settings

    base = load_spec(space.base)
    clip = realise(base).clip
    f = space.fidelity
    clip = clip.model_copy(update={"frames": f.frames or clip.frames, "size": f.size or clip.size})
    try:
        audio = audio_settings(base)  # the sound the trials will ask the data for
        spec = load_data_spec(space.data)
        train = create_dataset(spec, "train", clip=clip, audio=audio)
        val = create_dataset(spec, "val", clip=clip, audio=audio)
    except SpecError as exc:
        where = format_key_path(exc.path)
        raise space.error(f"data '{space.data}': {where}: {exc.message}", ("data",)) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise space.error(f"data '{space.data}' cannot be read: {reason}", ("data",)) from None
    return DataInfo(space.data, len(train.classes), len(train), len(val))


def _inspect_features(space: SearchSpace) -> DataInfo:
    """A localization space's features (extracted first where the data is videos), and
    that the base reads features of their width."""
    from harness.localization.costs import load_localization_spec
    from harness.search._tasks import load_space_data

    def log(line: str) -> None:  # NOTE: a backbone to train or features to extract: minutes
        print(f"features: {line}", file=sys.stderr, flush=True)

    try:
        data = load_space_data(space, log)
    except SpecError as exc:
        where = f"{exc.location or exc.file or ''}"
        detail = f"{where}: {_where(exc)}{exc.message}" if where else f"{_where(exc)}{exc.message}"
        raise space.error(f"data '{space.data}': {detail}", ("data",)) from None
    width = load_localization_spec(space.base).input.width
    if width != data.width:
        message = (
            f"the base reads {width}-d features; those of data '{space.data}' are {data.width}-d"
        )
        raise space.error(message, ("base",))
    return DataInfo(space.data, len(data.labels), len(data.train), len(data.val), "videos")


def check_space(
    space: SearchSpace, *, sampler: str | None = None, draws: int = DEFAULT_DRAWS
) -> SpaceCheck:
    """Validate ``space`` before any trial and scan its feasibility (module docstring).

    Args:
        sampler: the sampler the search will use (default: the space's).
        draws: random draws of the feasibility scan (0: no scan).

    Raises:
        SpecError: the first problem, at the space file's line and key path.
    """
    start = time.perf_counter()
    sampler = sampler or space.sampler
    if sampler not in list_samplers():
        raise SpecError(
            f"unknown sampler '{sampler}'; known: {', '.join(list_samplers())}",
            path=("--sampler",),
            file="<command line>",
        )
    _create_sampler(space, sampler)
    data = inspect_data(space)
    request = CostRequest.for_training(space.train_config(space.seed), classes=data.classes)
    realised, inputs = _realise_every_value(space, request)
    scan = _scan(space, request, draws) if draws > 0 else _Scan(0, 0, 0, (), None, ())
    return SpaceCheck(
        space=space.name, data=data, realised=realised, inputs=inputs, draws=scan.draws,
        distinct=scan.distinct, invalid=scan.invalid, spreads=scan.spreads, within=scan.within,
        unscanned=scan.unscanned, seconds=time.perf_counter() - start,
    )  # fmt: skip


def _create_sampler(space: SearchSpace, sampler: str) -> None:
    """Make the sampler as the search will (a grid needs every value listed, options must be
    the sampler's), so that a sampler that cannot start fails here, not at the first trial."""
    try:
        create_sampler(sampler, seed=space.seed, space=space, **space.sampler_options)
    except (TypeError, ValueError) as exc:
        raise space.error(
            f"sampler '{sampler}' cannot start with these options ({exc})", ("sampler_options",)
        ) from None


# -- every value realised ----------------------------------------------------------------------
def _assignment(space: SearchSpace, forced: Mapping[str, Any]) -> dict[str, Any] | None:
    """Values of one candidate taking ``forced``, with the parents its ``when:`` needs set
    and every other parameter at its first value; None if ``forced`` cannot be sampled."""
    required = dict(forced)
    stack = list(forced)
    while stack:
        for parent, allowed in space.params[stack.pop()].when.items():
            if parent not in required:
                required[parent] = allowed[0] if isinstance(allowed, list) else allowed
                stack.append(parent)
    values: dict[str, Any] = {}
    for key, param in space.params.items():
        if param.active(values):
            values[key] = required[key] if key in required else param.extremes()[0]
    return values if all(values.get(k) == v for k, v in forced.items()) else None


def _every_value(space: SearchSpace) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    yield "", None, _assignment(space, {}) or {}
    for key, param in space.params.items():
        for value in param.extremes():
            values = _assignment(space, {key: value})
            if values is not None:
                yield key, value, values


def _realise_every_value(space: SearchSpace, request: CostRequest) -> tuple[int, tuple[str, str]]:
    """Build every extreme value of every parameter at both clips; raise the first problem."""
    problems: list[SpecError] = []
    seen: set[str] = set()
    inputs = ("", "")
    for key, value, values in _every_value(space):
        label = f"{key}={value!r}" if key else "the first candidate"
        where = space.locate_param(key, value) if key else ("params",)
        digest = json.dumps(space.overrides(values), sort_keys=True, default=str)
        if digest in seen:
            continue
        seen.add(digest)
        try:
            spec = space.create_spec(values)
        except SpecError as exc:
            problems.append(space.error(f"{label}: {_where(exc)}{exc.message}", where))
            continue
        try:
            costs = measure_trial_costs(spec, space, request, names=())
        except SpecError as exc:
            clip = _clip_text(space, spec)
            problems.append(space.error(f"{label}: {clip}: {_where(exc)}{exc.message}", where))
            continue
        inputs = (
            format_shape(costs.deployed.input_shape),
            format_shape(costs.trained.input_shape),
        )
    if problems:
        first = problems[0]
        if len(problems) > 1:
            more = len(problems) - 1
            raise SpecError(
                f"{first.message} ({more} more problem{'s' if more > 1 else ''} after this)",
                path=first.path,
                location=first.location,
                file=first.file,
            )
        raise first
    return len(seen), inputs


def _where(exc: SpecError) -> str:
    return f"{format_key_path(exc.path)}: " if exc.path else ""


def _clip_text(space: SearchSpace, spec: ModelSpec | LocalizationSpec) -> str:
    """Which clip failed: the fidelity's when it differs from the spec's."""
    if isinstance(spec, LocalizationSpec):
        return f"at a window of {spec.input.steps} feature steps"
    f = space.fidelity
    try:
        clip = realise(spec).clip
    except SpecError:
        return "at the spec's clip"
    frames, size = f.frames or clip.frames, f.size or clip.size
    if (frames, size) == (clip.frames, clip.size):
        return f"at the spec's clip ({clip.frames} frames of {clip.size} px)"
    return f"at the fidelity's clip or the spec's ({frames}x{size} px, {clip.frames}x{clip.size})"


# -- the feasibility scan ----------------------------------------------------------------------
class _Draw:
    """A :class:`~harness.search.space.TrialLike` that draws every value uniformly."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self.rng.choice(list(choices))

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        if log:
            value = round(math.exp(self.rng.uniform(math.log(low), math.log(high))))
            return min(high, max(low, value))
        return low + step * self.rng.randint(0, (high - low) // step)

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        if step is not None:
            return low + step * self.rng.randint(0, math.floor((high - low) / step + 1e-9))
        return self.rng.uniform(low, high)


@dataclass(frozen=True)
class _Scan:
    draws: int
    distinct: int
    invalid: int
    spreads: tuple[CostSpread, ...]
    within: float | None
    unscanned: tuple[str, ...]


def _scan(space: SearchSpace, request: CostRequest, draws: int) -> _Scan:
    names = [n for n in wanted_costs(space) if parse_cost(n).cost.name not in _TIMED]
    unscanned = tuple(n for n in space.budgets if parse_cost(n).cost.name in _TIMED)
    rng = random.Random(derive_seed(space.seed, "feasibility scan"))
    costed: dict[str, tuple[dict[str, Any], TrialCosts | None]] = {}
    drawn: list[str] = []
    for _ in range(draws):
        values = space.sample(_Draw(rng))
        key = json.dumps(space.overrides(values), sort_keys=True, default=str)
        if key not in costed:
            costed[key] = (values, _cost(space, values, request, names))
        drawn.append(key)
    valid = [(values, costs) for values, costs in map(costed.__getitem__, drawn) if costs]
    invalid = len(drawn) - len(valid)
    if not valid:
        raise space.error(f"none of {draws} random draws builds; see harness check", ("params",))
    budgets = {n: v for n, v in space.budgets.items() if n in names}
    spreads = tuple(_spread(n, [c.get(n) or 0.0 for _, c in valid], budgets) for n in names)
    if not budgets:
        return _Scan(draws, len(costed), invalid, spreads, None, unscanned)
    fits = [all((c.get(n) or 0.0) <= lim for n, lim in budgets.items()) for _, c in valid]
    if not any(fits):
        raise _nothing_fits(space, budgets, valid)
    return _Scan(draws, len(costed), invalid, spreads, sum(fits) / len(drawn), unscanned)


def _cost(
    space: SearchSpace, values: dict[str, Any], request: CostRequest, names: list[str]
) -> TrialCosts | None:
    try:
        return cost_candidate(space.create_spec(values), space, request, names).costs
    except SpecError:  # a combination of values the spec rejects: counted, not fatal
        return None


def _spread(name: str, values: list[float], budgets: Mapping[str, float]) -> CostSpread:
    limit = budgets.get(name)
    within = None if limit is None else sum(v <= limit for v in values) / len(values)
    return CostSpread(name, min(values), statistics.median(values), max(values), limit, within)


def _nothing_fits(
    space: SearchSpace,
    budgets: Mapping[str, float],
    valid: list[tuple[dict[str, Any], TrialCosts]],
) -> SpecError:
    def excess(costs: TrialCosts) -> float:
        return max((costs.get(n) or 0.0) / limit for n, limit in budgets.items())

    values, costs = min(valid, key=lambda vc: excess(vc[1]))
    over = ", ".join(
        f"{n} {costs.get(n):.4g} > {lim:g}"
        for n, lim in budgets.items()
        if (costs.get(n) or 0) > lim
    )
    drawn = ", ".join(f"{k}={v}" for k, v in values.items()) or "the base spec"
    return space.error(
        f"no candidate is within budget: of {len(valid)} random draws the cheapest "
        f"({drawn}) has {over}; loosen the budget or narrow the space",
        ("budgets",),
    )
