"""Search spaces: a base spec plus distributions over its key paths, loaded from YAML.

A space file names a base spec (a zoo name or a YAML path relative to the space file), the
data, objectives, budgets, fidelity and the parameters. Each parameter is a key path of the
spec (``stages.1.block.type``) with a distribution; ``when`` makes it conditional on earlier
parameters, and ``tied`` copies one parameter's value to other key paths::

    name: tiny
    base: tiny_c2d
    data: synthetic:tiny
    objectives: {top1: maximize, gflops: minimize}
    budgets: {gflops: 0.05}            # cost <= limit; or a list: ["gflops <= 0.05"]
    fidelity: {epochs: 2}
    params:
      stages.0.width: {type: int, low: 8, high: 32, step: 8}
      stages.1.block.type: [basic, r2plus1d]          # a list is a categorical
      stages.1.block.temporal_kernel:
        {type: categorical, choices: [1, 3], when: {stages.1.block.type: basic}}
    tied:
      stages.2.block.type: stages.1.block.type

A base that is a localization spec (``task: localization``, e.g. ``pyramid_conv``) makes a
localization space: its candidates are localization specs, its data the untrimmed videos
(a features folder, or videos the base's ``input.backbone`` extracts features from) and
its metrics the detection ones (``average_mAP``, ``mAP_50``) at ``protocol``'s thresholds.

Sampling is the only place where Optuna's trial is touched: :meth:`SearchSpace.sample`
asks it for each active parameter, in file order.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from harness.costs import is_cost, list_costs
from harness.errors import SpecError, shorten
from harness.localization.costs import (
    is_localization_ref,
    load_localization_spec,
    localization_document,
)
from harness.localization.evaluate import LOCALIZATION_METRICS
from harness.spec import (
    Document,
    Integer,
    ModelSpec,
    NotBool,
    error_message,
    error_path,
    load_spec,
    load_yaml_file,
)
from harness.spec.load import load_document
from harness.spec.localization import LocalizationSpec

if TYPE_CHECKING:
    from harness.train.config import TrainConfig

__all__ = [
    "METRICS",
    "RECOGNITION_METRICS",
    "TASK_METRICS",
    "CategoricalParam",
    "FidelitySpec",
    "FloatParam",
    "HalvingSpec",
    "IntParam",
    "SearchSpace",
    "TrialLike",
    "load_space",
]

# What training measures, with the sense of "better", per task. Objectives are these or any
# cost of the cost room (harness.costs.list_costs(): minimised); budgets are costs.
RECOGNITION_METRICS: dict[str, Literal["maximize"]] = {
    "top1": "maximize",
    "top5": "maximize",
    "mean_class_acc": "maximize",
}
Task = Literal["recognition", "localization"]
TASK_METRICS: dict[Task, dict[str, Literal["maximize"]]] = {
    "recognition": RECOGNITION_METRICS,
    "localization": LOCALIZATION_METRICS,
}
METRICS: dict[str, Literal["maximize"]] = {**RECOGNITION_METRICS, **LOCALIZATION_METRICS}
# The train: settings a localization trial runs with (train_localizer's; it trains on the
# CPU: a window of features is small); others are refused.
LOCALIZATION_TRAIN = frozenset(
    {"optimizer", "lr", "weight_decay", "momentum", "batch_size", "clip_grad_norm"}
)

Scalar = int | float | str | bool
# A finite number: NaN and infinities are rejected where a range or a limit is read.
Finite = Annotated[float, Field(allow_inf_nan=False), NotBool]
# NOTE: constraints go inside the Annotated of an optional field, or the schema loses them
_Size = Annotated[int, Field(ge=1, le=1_000_000), NotBool]
MAX_INT = 2**53  # integer bounds beyond this are typos (and lose precision as floats)
MAX_GRID = 100_000  # values of one parameter on a grid


class TrialLike(Protocol):
    """The part of ``optuna.trial.Trial`` a space samples from."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...
    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int: ...
    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...


class _Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Param(_Node):
    # Sample only when every named earlier parameter took one of the listed values.
    when: dict[str, Scalar | list[Scalar]] = Field(default_factory=dict)

    def active(self, values: dict[str, Any]) -> bool:
        for key, allowed in self.when.items():
            options = allowed if isinstance(allowed, list) else [allowed]
            if key not in values or values[key] not in options:
                return False
        return True


class CategoricalParam(_Param):
    """One of a list of plain values; a YAML list is this distribution too."""

    type: Literal["categorical"] = "categorical"
    choices: list[Scalar | None] = Field(min_length=1)  # plain values (no lists or mappings)

    def suggest(self, trial: TrialLike, name: str) -> Any:
        return trial.suggest_categorical(name, self.choices)

    def can_take(self, value: Any) -> bool:
        return any(value == c and type(value) is type(c) for c in self.choices)

    def extremes(self) -> list[Any]:
        """The values a space check realises: every choice."""
        return list(self.choices)

    def grid(self) -> list[Any]:
        return list(self.choices)


class IntParam(_Param):
    """An integer from ``low`` to ``high`` in steps of ``step``, or on a log scale."""

    type: Literal["int"] = "int"
    low: Integer = Field(ge=-MAX_INT, le=MAX_INT)  # lowest value
    high: Integer = Field(ge=-MAX_INT, le=MAX_INT)  # highest value (drawn if low + k * step)
    step: Integer = Field(default=1, ge=1, le=MAX_INT)  # values low, low+step, ...
    log: bool = False  # sample on a log scale (step must be 1)

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) is below low ({self.low})")
        if self.log and (self.step != 1 or self.low < 1):
            raise ValueError("a log-scale int needs low >= 1 and step 1")
        return self

    def suggest(self, trial: TrialLike, name: str) -> Any:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def can_take(self, value: Any) -> bool:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and self.low <= value <= self.high
            and (value - self.low) % self.step == 0
        )

    def extremes(self) -> list[Any]:
        """The values a space check realises: the lowest and the highest it can draw."""
        top = self.low + (self.high - self.low) // self.step * self.step
        return list(dict.fromkeys([self.low, top]))

    def grid(self) -> list[Any]:
        values = range(self.low, self.high + 1, self.step)
        _check_grid(len(values))
        return list(values)


class FloatParam(_Param):
    """A number from ``low`` to ``high``, on a grid of ``step`` or continuous, rounded."""

    type: Literal["float"] = "float"
    low: Finite  # lowest value
    high: Finite  # highest value
    # values low, low+step, ...; also rounding
    step: Annotated[float, Field(gt=0, allow_inf_nan=False), NotBool] | None = None
    log: bool = False  # sample on a log scale (low > 0, no step)
    # rounding of sampled values, so near-equal specs hash equal
    digits: Integer = Field(4, ge=0, le=12)

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) is below low ({self.low})")
        if self.log and (self.step is not None or self.low <= 0):
            raise ValueError("a log-scale float needs low > 0 and no step")
        return self

    def suggest(self, trial: TrialLike, name: str) -> Any:
        value = trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)
        return round(value, self.digits)

    def can_take(self, value: Any) -> bool:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number and self.low <= value <= self.high

    def extremes(self) -> list[Any]:
        """The values a space check realises: the lowest and the highest it can draw."""
        top = self.high
        if self.step is not None:
            top = self.low + math.floor((self.high - self.low) / self.step + 1e-9) * self.step
        return list(dict.fromkeys([round(self.low, self.digits), round(top, self.digits)]))

    def grid(self) -> list[Any]:
        if self.step is None:
            raise ValueError("a grid over a float needs its 'step'")
        count = round((self.high - self.low) / self.step) + 1
        _check_grid(count)
        return [round(self.low + i * self.step, self.digits) for i in range(count)]


def _check_grid(count: int) -> None:
    if count > MAX_GRID:
        raise ValueError(f"a grid over {count} values is too large (at most {MAX_GRID})")


Param = Annotated[CategoricalParam | IntParam | FloatParam, Field(discriminator="type")]


class FidelitySpec(_Node):
    """How cheaply a candidate is trained (``harness.train.Fidelity``)."""

    epochs: Integer = Field(default=1, ge=1, le=10_000)  # epochs of a full evaluation
    subset: Finite = Field(default=1.0, gt=0, le=1)  # fraction of the training set
    # frames per clip to train and evaluate on (None: the spec's)
    frames: _Size | None = None
    size: _Size | None = None  # crop side, pixels (None: spec's)


class BackboneTrainingSpec(_Node):
    """Training the feature extractor of a localization space before its features are
    extracted (as ActivityNet features come from a backbone trained on trimmed clips)."""

    data: str = "synthetic:tiny"  # recognition data with the untrimmed videos' classes
    epochs: Integer = Field(default=4, ge=1, le=10_000)  # epochs of its training (seed 0)


class HalvingSpec(_Node):
    """Successive halving over epochs: rungs at min_epochs * eta^k up to fidelity.epochs."""

    min_epochs: Integer = Field(default=1, ge=1, le=10_000)  # epochs before the first promotion
    eta: Integer = Field(default=3, ge=2, le=1_000)  # keep the best 1/eta at each rung


Direction = Literal["minimize", "maximize"]


def _default_objectives() -> dict[str, Direction]:
    return {"top1": "maximize", "gflops": "minimize"}


KeyPath = tuple[str | int, ...]


class SearchSpace(_Node):
    """A validated search space. ``base`` (and a data path beside the file) are absolute
    after loading; the source document is kept to point errors at their line."""

    # the study's name unless --study gives one; default: the file stem
    name: str = Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""  # one line on what the space explores
    base: str  # the spec searched around: zoo name or YAML path (relative to this file)
    data: str = "synthetic:tiny"  # "synthetic[:ci|tiny|small|large]" or a data set path
    # classes the head predicts; None: decided by the data
    classes: _Size | None = None
    # metric or cost name -> direction; costs as in harness.costs (``trained.`` prefix: at
    # the fidelity's clip); default: top1 (localization: average_mAP) maximize, gflops
    # minimize
    objectives: dict[str, Direction] = Field(default_factory=_default_objectives, min_length=1)
    # cost -> upper limit; a bare cost is the deployed network's (the spec's clip),
    # ``trained.<cost>`` the network as trained (the fidelity's clip)
    budgets: dict[str, Finite] = Field(default_factory=dict)
    fidelity: FidelitySpec = FidelitySpec()  # how much training a candidate gets
    # successive halving over epochs; None: every candidate trains fidelity.epochs
    halving: HalvingSpec | None = None
    # Optuna's pruner of single-objective studies without ``halving``
    pruner: Literal["median", "successive_halving", "hyperband", "none"] = "median"
    # training settings of every trial: TrainConfig keyword arguments (no seed)
    train: dict[str, Any] = Field(default_factory=dict)
    # A candidate over a train_memory_mb budget (and no other) is costed again with
    # activation checkpointing in every stage, and trains with it if it then fits; the row
    # records the retry (``checkpoint_retried``). False: it is rejected as it is.
    retry_with_checkpointing: bool = False
    # localization: the detection protocol whose tIoU thresholds average_mAP averages over
    protocol: Literal["activitynet", "thumos14"] = "activitynet"
    # localization with untrimmed videos as data: a ``harness train`` checkpoint of the
    # base's input.backbone to extract features with (None: its seeded initialisation)
    backbone_weights: str | None = None
    # localization: train the base's input.backbone first (once, cached) and extract with it
    backbone_training: BackboneTrainingSpec | None = None
    sampler: str = "tpe"  # Optuna sampler, by name
    sampler_options: dict[str, Any] = Field(default_factory=dict)  # its keyword arguments
    # seeds the sampler and every trial's training (numpy's range of seeds)
    seed: Integer = Field(default=0, ge=0, le=2**32 - 1)
    # spec key path (``stages.1.width``) -> distribution, sampled in file order
    params: dict[str, Param] = Field(default_factory=dict)
    tied: dict[str, str] = Field(default_factory=dict)  # key path -> parameter it copies
    _doc: Document | None = PrivateAttr(default=None)
    _cli_budgets: set[str] = PrivateAttr(default_factory=set)  # budgets given by --budget
    _task: Task | None = PrivateAttr(default=None)  # read from the base once (see task)

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        params = data.get("params")
        if isinstance(params, dict):
            data["params"] = {
                k: {"type": "categorical", "choices": v} if isinstance(v, list) else v
                for k, v in params.items()
            }
        return data

    @field_validator("budgets", mode="before")
    @classmethod
    def _budget_list(cls, budgets: Any) -> Any:
        if isinstance(budgets, list):
            return dict(parse_budget(str(b)) for b in budgets)
        return budgets

    @field_validator("objectives", mode="before")
    @classmethod
    def _objective_list(cls, objectives: Any) -> Any:
        if isinstance(objectives, list):
            return {
                str(o): _default_direction(str(o)) for o in objectives if isinstance(o, str)
            } | {k: v for o in objectives if isinstance(o, dict) for k, v in o.items()}
        return objectives

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> SearchSpace:
        if not (info.context or {}).get("deferred"):  # load_space reports with locations
            for _, message in self.problems():
                raise ValueError(message)
        return self

    @property
    def task(self) -> Task:
        """What the candidates do: ``localization`` for a localization base, else
        ``recognition`` (read from the base file once: every trial and draw asks)."""
        if self._task is None:
            self._task = "localization" if is_localization_ref(self.base) else "recognition"
        return self._task

    def metrics(self) -> dict[str, Literal["maximize"]]:
        """What a trial of this space measures by training (its task's metrics)."""
        return TASK_METRICS[self.task]

    def problems(self) -> Iterator[tuple[KeyPath, str]]:
        """What is wrong with the space as a whole, as (key path, message), in file order."""
        metrics = self.metrics()
        for name in self.objectives:
            if name not in METRICS and not is_cost(name):
                known = ", ".join([*metrics, *list_costs()])
                yield ("objectives", name), f"unknown objective '{name}'; known: {known}"
            elif name in METRICS and name not in metrics:
                known = ", ".join(metrics)
                yield (
                    ("objectives", name),
                    f"'{name}' is not measured in a {self.task} space; it measures {known}",
                )
        yield from self._task_problems()
        for cost, limit in self.budgets.items():
            if not is_cost(cost):
                yield ("budgets", cost), f"unknown cost '{cost}'; known: {', '.join(list_costs())}"
            elif not limit > 0:
                yield ("budgets", cost), f"a budget is a limit above 0, got {limit:g}"
        if self.halving is not None and self.halving.min_epochs > self.fidelity.epochs:
            yield (
                ("halving", "min_epochs"),
                (
                    f"{self.halving.min_epochs} epochs before the first promotion, but a candidate "
                    f"trains only {self.fidelity.epochs} (fidelity.epochs)"
                ),
            )
        yield from self._param_problems()
        for target, source in self.tied.items():
            if source not in self.params:
                yield (
                    ("tied", target),
                    (f"tied key '{target}' copies '{source}', which is not a parameter"),
                )
            elif target in self.params:
                yield (
                    ("tied", target),
                    (f"'{target}' is both a parameter and tied to '{source}': it can be only one"),
                )

    def _task_problems(self) -> Iterator[tuple[KeyPath, str]]:
        """Settings that do not apply to the space's task."""
        if self.task == "recognition":
            for key in ("backbone_weights", "backbone_training"):
                if getattr(self, key) is not None:
                    yield (key,), f"{key} is for localization spaces"
            return
        if self.backbone_weights is not None and self.backbone_training is not None:
            message = "give backbone_weights or backbone_training, not both"
            yield ("backbone_training",), message
        for key in ("frames", "size"):
            if getattr(self.fidelity, key) is not None:
                message = f"a localization candidate reads feature windows: remove fidelity.{key}"
                yield ("fidelity", key), message
        if self.retry_with_checkpointing:
            message = "activation checkpointing is for recognition networks"
            yield ("retry_with_checkpointing",), message
        for key in self.train:
            if key not in LOCALIZATION_TRAIN:
                known = ", ".join(sorted(LOCALIZATION_TRAIN))
                yield ("train", key), f"a localization trial does not use '{key}'; it uses {known}"
        for section, keys in (("params", self.params), ("tied", self.tied)):
            for key in keys:
                if key.startswith("input.") and key != "input.steps":
                    message = ("the features are extracted once per study: only input.steps "
                               "(the window) can vary")  # fmt: skip
                    yield (section, key), message

    def _param_problems(self) -> Iterator[tuple[KeyPath, str]]:
        seen: dict[str, CategoricalParam | IntParam | FloatParam] = {}
        for key, param in self.params.items():
            for other, allowed in param.when.items():
                where = ("params", key, "when", other)
                if other not in seen:
                    yield where, f"'{key}' depends on '{other}', which is not an earlier parameter"
                    continue
                for value in allowed if isinstance(allowed, list) else [allowed]:
                    if not seen[other].can_take(value):
                        never = f"'{other}' never takes the value {value!r}"
                        yield where, f"{never}, so '{key}' would never be sampled"
            seen[key] = param

    # -- sampling -------------------------------------------------------------------------
    def sample(self, trial: TrialLike) -> dict[str, Any]:
        """Ask ``trial`` for every active parameter; returns {key path: value}."""
        values: dict[str, Any] = {}
        for key, param in self.params.items():
            if param.active(values):
                values[key] = param.suggest(trial, key)
        return values

    def overrides(self, values: dict[str, Any]) -> dict[str, Any]:
        """Spec overrides for sampled ``values``: the values plus their tied copies."""
        out = dict(values)
        for target, source in self.tied.items():
            if source in values:
                out[target] = values[source]
        return out

    def create_spec(self, values: dict[str, Any]) -> ModelSpec | LocalizationSpec:
        """The candidate spec for sampled ``values`` (raises SpecError if it is invalid):
        a localization spec in a localization space."""
        if self.task == "localization":
            return load_localization_spec(self.base, **self.overrides(values))
        return load_spec(self.base, **self.overrides(values))

    def train_config(self, seed: int) -> TrainConfig:
        """The training settings of a trial seeded with ``seed`` (``train:`` plus the seed;
        a localization trial trains on the CPU, and its step is costed there)."""
        from harness.train.config import TrainConfig

        device = {"device": "cpu"} if self.task == "localization" else {}
        return TrainConfig(**{**self.train, "seed": seed, **device})

    def grid(self) -> dict[str, list[Any]]:
        """Every parameter's values, for the grid sampler (conditions ignored).

        Raises:
            SpecError: a float parameter has no step, or a parameter has too many values.
        """
        out = {}
        for key, param in self.params.items():
            try:
                out[key] = param.grid()
            except ValueError as exc:
                raise self.error(str(exc), ("params", key)) from None
        return out

    def directions(self) -> list[Literal["minimize", "maximize"]]:
        return list(self.objectives.values())

    def with_budgets(self, budgets: dict[str, float]) -> SearchSpace:
        """A copy with ``budgets`` (from the command line) replacing the file's own."""
        copy = self.model_copy(update={"budgets": {**self.budgets, **budgets}})
        copy._cli_budgets = self._cli_budgets | set(budgets)
        return copy

    def fingerprint(self) -> str:
        """What must match for a study to be resumed with this space."""
        keep = self.model_dump(mode="json", include={"base", "data", "objectives", "params"})
        keep["tied"] = self.tied
        return json.dumps(keep, sort_keys=True)

    def error(self, message: str, path: KeyPath) -> SpecError:
        """A SpecError at ``path`` of the space file (its line when the file is known); a
        budget from the command line is named as ``--budget``."""
        if path[:1] == ("budgets",) and self._cli_budgets:
            return SpecError(message, path=("--budget",), file="<command line>")
        if self._doc is not None:
            return self._doc.error(message, path)
        return SpecError(message, path=path, file=f"space {self.name}")

    def locate_param(self, key: str, value: Any | None = None) -> KeyPath:
        """The key path of parameter ``key`` in the file, or of one of its values."""
        param = self.params[key]
        if value is None or not isinstance(param, CategoricalParam):
            return ("params", key)
        index = next(
            (i for i, c in enumerate(param.choices) if c == value and type(c) is type(value)), 0
        )
        raw = self._doc.data.get("params", {}).get(key) if self._doc is not None else None
        return (
            ("params", key, index) if isinstance(raw, list) else ("params", key, "choices", index)
        )


def _default_direction(name: str) -> Direction:
    if name in METRICS:
        return METRICS[name]
    if is_cost(name):
        return "minimize"
    known = ", ".join([*METRICS, *list_costs()])
    raise ValueError(f"unknown objective '{name}'; known: {known}")


_BUDGET = re.compile(r"^\s*([a-z_0-9.]+)\s*(<=|=)\s*(\S+)\s*$")


def parse_budget(text: str) -> tuple[str, float]:
    """``"gflops <= 2"`` or ``"trained.train_memory_mb=300"`` -> (cost, limit).

    Raises:
        ValueError: not ``COST<=LIMIT``, an unknown cost, or a limit that is not a finite
            number above 0.
    """
    match = _BUDGET.match(text)
    if match is None:
        raise ValueError(f"budget '{text}' is not COST<=LIMIT or COST=LIMIT")
    cost, _, limit = match.groups()
    if not is_cost(cost):
        known = ", ".join(list_costs())
        raise ValueError(f"unknown cost '{cost}' in budget '{text}'; known: {known}")
    try:
        value = float(limit)
    except ValueError:
        raise ValueError(f"budget '{text}': '{limit}' is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"budget '{text}': a limit is a finite number above 0")
    return cost, value


# -- loading ---------------------------------------------------------------------------------
def _validate(doc: Document, data: dict[str, Any]) -> SearchSpace:
    """The space of ``data``, checked as a whole; errors at their line of ``doc``."""
    try:
        space = SearchSpace.model_validate(data, context={"deferred": True})
    except ValidationError as exc:
        error = exc.errors()[0]
        message = error_message(error, SearchSpace)
        raise doc.error(message, error_path(data, error["loc"])) from None
    space._doc = doc
    for where, message in space.problems():
        raise doc.error(message, where)
    _check_train(space)
    _check_sampler(space)
    return space


def _check_train(space: SearchSpace) -> None:
    """``train:`` must be settings a trial can run with (TrainConfig's own checks)."""
    from harness.train.config import TrainConfig

    if "seed" in space.train:
        raise space.error(
            "the search seeds every trial from the space's 'seed'; remove train.seed",
            ("train", "seed"),
        )
    try:
        TrainConfig(**space.train)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        message = error_message(error)
        if error["type"] == "extra_forbidden":
            message = f"unknown key '{loc[-1]}'; known: {', '.join(TrainConfig.model_fields)}"
        raise space.error(message, ("train", *loc)) from None
    except TypeError as exc:  # a non-string key
        raise space.error(str(exc), ("train",)) from None


def _check_sampler(space: SearchSpace) -> None:
    from harness.search.samplers import list_samplers  # NOTE: samplers import this module

    if space.sampler not in list_samplers():
        known = ", ".join(list_samplers())
        raise space.error(f"unknown sampler '{space.sampler}'; known: {known}", ("sampler",))


def _resolve_base(base: Any, space_file: Path, doc: Document) -> str:
    if not isinstance(base, str):
        raise doc.error("'base' must be a zoo name or a YAML path", ("base",))
    if not (base.endswith((".yaml", ".yml")) or "/" in base):
        return base  # a zoo name
    path = Path(base)
    try:
        return str(path if path.is_absolute() else (space_file.parent / path).resolve())
    except (OSError, RuntimeError):  # NOTE: Python 3.11 raises RuntimeError for a link loop
        message = f"'{shorten(base)}': cannot follow the path (a loop of symbolic links?)"
        raise doc.error(message, ("base",)) from None


def _resolve_data(data: Any, space_file: Path) -> Any:
    """A relative data path (or ``layout:PATH``) found next to the space file, made absolute.

    The built-in benchmark (``synthetic[:size]``) and paths that only exist relative to the
    working directory are left as written.
    """
    from harness.data import list_layouts  # NOTE: here, so that loading a space stays light

    if not isinstance(data, str) or data.split(":", 1)[0] == "synthetic":
        return data
    prefix, sep, rest = data.partition(":")
    if sep and prefix in list_layouts():
        resolved = _resolve_data(rest, space_file)
        return f"{prefix}:{resolved}"
    path = Path(data).expanduser()
    beside = space_file.parent / path
    return str(beside.resolve()) if not path.is_absolute() and beside.exists() else data


def _check_key_paths(space: SearchSpace, doc: Document) -> None:
    """Every parameter and tied key path must lead into the base spec: list indices in range,
    never through a scalar. A missing mapping key is fine (the spec validation names it)."""
    base = _base_document(space.base).data
    for section, keys in (("params", list(space.params)), ("tied", list(space.tied))):
        for key in keys:
            problem = _key_path_problem(base, key)
            if problem is not None:
                message = f"key path '{key}' does not exist in base spec '{space.base}'"
                raise doc.error(f"{message}: {problem}", (section, key))


def _base_document(base: str) -> Document:
    if is_localization_ref(base):
        return localization_document(base)
    return load_document(base)


def _key_path_problem(base: Any, key: str) -> str | None:
    """Why ``key`` (``stages.1.width``) leads nowhere in the ``base`` data, or None."""
    node: Any = base
    for depth, part in enumerate(key.split(".")):
        index: Any = int(part) if _INDEX.fullmatch(part) else part
        where = ".".join(key.split(".")[:depth]) or "the spec"
        if isinstance(node, dict):
            if index not in node:
                return None
            node = node[index]
        elif not isinstance(node, list):
            return f"{where} is a single value"
        elif not (isinstance(index, int) and 0 <= index < len(node)):
            return f"{where} is a list of {len(node)} items, indices 0 to {len(node) - 1}"
        else:
            node = node[index]
    return None


def load_space(path: str | Path, **updates: Any) -> SearchSpace:
    """Load and validate a search-space YAML file.

    Args:
        path: the space file.
        **updates: top-level fields to replace after loading (``budgets=``, ``sampler=``).

    Raises:
        SpecError: naming file, line, column and key path of the first problem; also when the
            base spec or the base spec with the first choice of every parameter is invalid.
    """
    path = Path(path)
    doc = load_yaml_file(path)
    if not isinstance(doc.data, dict):
        raise doc.error("a search space must be a mapping of keys", ())
    data = dict(doc.data)
    data.setdefault("name", path.stem)
    if "base" not in data:
        raise doc.error("missing required key 'base' (a zoo name or spec file)", ())
    data["base"] = _resolve_base(data["base"], path, doc)
    if "data" in data:
        data["data"] = _resolve_data(data["data"], path)
    if isinstance(data.get("backbone_weights"), str):
        data["backbone_weights"] = str((path.parent / data["backbone_weights"]).resolve())
    if "objectives" not in data and is_localization_ref(data["base"]):
        data["objectives"] = {"average_mAP": "maximize", "gflops": "minimize"}
    space = _validate(doc, data)
    try:
        if space.task == "localization":
            load_localization_spec(space.base)
        else:
            load_spec(space.base)
    except SpecError as exc:
        raise _base_error(exc, doc) from None
    _check_key_paths(space, doc)
    _check_first_candidate(space, doc)
    if updates:
        space = _validate(doc, {**space.model_dump(), **updates})
    return space


# Keys a search space has and a spec has not: a base file with them is a space.
_SPACE_KEYS = frozenset(SearchSpace.model_fields) - {"base", *ModelSpec.model_fields}


def _base_error(error: SpecError, doc: Document) -> SpecError:
    """A base spec that cannot be loaded, named at one place: at the mistake inside the base
    file, or at this file's ``base`` key where the base is missing or no spec at all."""
    base = shorten(str(doc.data["base"]))
    location = error.location
    if location is None or location.file == doc.file:
        return doc.error(f"base spec '{base}': {error.message}", ("base",))
    if _SPACE_KEYS & set(load_yaml_file(location.file).data or {}):
        return doc.error(f"'{base}' is a search space; 'base' names a spec", ("base",))
    message = f"{error.message} (in the base spec of {Path(doc.file).name})"
    return SpecError(message, path=error.path, location=location)


def _check_first_candidate(space: SearchSpace, doc: Document) -> None:
    """Catch a key path whose values the spec rejects (a typo'd block type) at load time."""
    values: dict[str, Any] = {}
    for key, param in space.params.items():
        if param.active(values):
            first = param.choices[0] if isinstance(param, CategoricalParam) else param.low
            values[key] = first
    try:
        space.create_spec(values)
    except SpecError as exc:
        key = next((k for k in space.params if exc.path and k.startswith(_dotted(exc.path))), "")
        where: tuple[str, ...] = ("params", key) if key else ("params",)
        raise doc.error(f"the first candidate is invalid: {exc.message}", where) from None


_INDEX = re.compile(r"-?[0-9]{1,18}")  # a list index in a key path (ASCII digits only)


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path)
