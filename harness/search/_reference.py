"""The reference of the search-space format (docs/space-reference.md), generated.

Tables come from the space's JSON Schema (:mod:`harness.search._jsonschema`), the cost
table (:data:`harness.costs.COSTS`), the metrics a training run returns
(:class:`harness.train.TrainResult`) and the sampler registry; the prose is kept here, and
a pruner or sampler without a paragraph stops the generator. Regenerate with
``python -m harness._docs``.
"""

from __future__ import annotations

from typing import get_args

from pydantic import BaseModel

from harness.costs import COSTS, TRAINED
from harness.localization.evaluate import LOCALIZATION_METRICS
from harness.search._jsonschema import create_space_schema
from harness.search.samplers import list_samplers
from harness.search.space import METRICS, SearchSpace
from harness.spec._jsonschema import field_comment, list_models
from harness.spec._reference import GENERATED_NOTE, render_model, render_models
from harness.train.config import TrainConfig, TrainResult

__all__ = ["create_space_reference"]

INTRO = """\
# Search-space reference

{note}

A search space is a YAML file: a base spec, the data, the objectives and budgets, how much
training a candidate gets, and distributions over key paths of the spec. `harness check
SPACE.yaml` validates it (and builds every value of every parameter) before a study starts;
`harness search SPACE.yaml` runs the study. Editors get the same information from the JSON
Schema [`docs/schema/space.schema.json`](schema/space.schema.json)
(`harness schema --space`); the keys the parameters set are those of the
[spec reference](spec-reference.md).

```yaml
name: tiny                          # default: the file stem
base: tiny_c2d                      # zoo name or spec file (relative to this file)
data: synthetic:tiny
objectives: {{top1: maximize, gflops: minimize}}
budgets: {{gflops: 0.05}}             # cost <= limit; or a list: ["gflops <= 0.05"]
fidelity: {{epochs: 2, frames: 4, size: 16}}
halving: {{min_epochs: 1, eta: 2}}
train: {{batch_size: 16, lr: 0.005}}
params:
  stages.0.width: {{type: int, low: 8, high: 32, step: 8}}
  stages.1.block.type: [basic, r2plus1d]          # a list is a categorical
  stages.1.block.temporal_kernel:
    {{type: categorical, choices: [1, 3], when: {{stages.1.block.type: basic}}}}
tied:
  stages.2.block.type: stages.1.block.type
```

Contents: [top-level keys](#top-level-keys), [parameters](#parameters-and-distributions),
[`when:` and `tied:`](#conditions-when-and-tied-keys-tied),
[objectives and budgets](#objectives-and-budgets),
[fidelity, halving and pruning](#fidelity-halving-and-pruning), [samplers](#samplers),
[training settings](#training-settings-train).
"""

PARAMS = """\
## Parameters and distributions

`params:` maps a key path of the base spec to a distribution. A key path is the spec's keys
joined by dots, list items by their index (`stages.1.block.type`, `pathways.0.frame_stride`,
`stem.kernel.0`, `expansion.gamma_w`); it must lead into the base spec (list indices in
range, never through a scalar), and the value drawn replaces what the base has there, as a
child spec's value would. Parameters are sampled in file order, each as the Optuna parameter
of its key path.

- A YAML list is a categorical distribution over its items:
  `stages.1.block.type: [basic, r2plus1d]` is
  `{type: categorical, choices: [basic, r2plus1d]}`. Choices are plain values (numbers,
  strings, booleans, `null`), compared with their type (`1` is not `1.0`).
- `type: int` draws `low`, `low + step`, ... up to `high`; `log: true` draws on a log scale
  (then `step` is 1 and `low` at least 1).
- `type: float` draws from `low` to `high`, on a grid of `step` if given, else continuously
  (`log: true`: on a log scale, `low` above 0, no `step`), rounded to `digits` decimals so
  that near-equal candidates share one spec hash.
- The grid sampler needs every float to have a `step`, ignores `when:`, and takes at most
  100000 values per parameter.
- When a space loads, the base spec with the first value of every active parameter
  (a categorical's first choice, a number's `low`) must be a valid spec.
"""

CONDITIONS = """\
## Conditions (`when:`) and tied keys (`tied:`)

- `when: {KEY: VALUE}` or `when: {KEY: [VALUE, ...]}` on a parameter: it is sampled only when
  every named parameter was sampled and took one of the listed values; otherwise the base
  spec's value stays. The named parameters must come earlier in the file, and each listed
  value must be one they can take.
- `tied: {TARGET: SOURCE}`: the key path TARGET takes the value drawn for the parameter
  SOURCE (`stem.width: stages.0.width` keeps the two widths equal). SOURCE must be a
  parameter; TARGET must not be one. When SOURCE is not sampled (its `when:` is false),
  TARGET keeps the base spec's value.
"""

OBJECTIVES = """\
## Objectives and budgets

`objectives:` maps each name to `maximize` or `minimize`, or lists names with their usual
direction (the metrics maximised, the costs minimised); one objective makes a
single-objective study, several a multi-objective one (its result is the Pareto front).
The metrics come from training the candidate:

{metrics}

`budgets:` maps a cost to its upper limit (a number above 0), or lists
`"COST<=LIMIT"` / `"COST=LIMIT"` strings; `harness search --budget COST=LIMIT` replaces a
limit from the command line. A candidate over any budget is recorded as infeasible by the
pre-check (`trial.set_constraint`) and never trained. A bare cost name is the cost of the
deployed network, at the spec's clip; `{trained}NAME` the cost of the network as the study
trains it, at the fidelity's clip. Every cost can be an objective and a budget:

{costs}
"""

PRUNING = """\
## Fidelity, halving and pruning

`fidelity:` says how much training a candidate gets: epochs, a fraction of the training
split, shorter clips and smaller crops. `halving:` cuts unpromising candidates short at
rungs of `min_epochs * eta^k` epochs (below `fidelity.epochs`):

- A study with one objective, a metric, reports it after every epoch to an Optuna pruner:
  with `halving:`, Optuna's successive halving (`min_resource = min_epochs`,
  `reduction_factor = eta`); without it, the `pruner`:
{pruners}
- Optuna cannot prune a multi-objective study. With `halving:`, a candidate reaching a rung
  is ranked by non-dominated sorting against every candidate that reached it (the metric at
  that rung, the costs as measured) and goes on if its rank is no worse than that of the
  `ceil(n / eta)`-th best; with fewer than `eta` candidates at the rung, everyone goes on.
  Without `halving:`, every candidate trains `fidelity.epochs`.
"""

PRUNERS = {
    "median": "Optuna's median pruner (`n_startup_trials=4, n_warmup_steps=1`)",
    "successive_halving": "Optuna's successive halving with its default rungs",
    "hyperband": "Optuna's Hyperband",
    "none": "no pruning",
}

SAMPLERS_PROSE = """\
## Samplers

`sampler:` names one of the registered samplers; `sampler_options:` are passed to it as
keyword arguments (over the defaults below). Every sampler is seeded from the space's `seed`
and the trial number, so that a study grown in chunks, resumed or drawn by several workers
proposes what one long run would.

{samplers}
"""

SAMPLERS = {
    "tpe": "Optuna's TPE, multivariate and grouped (conditional parameters modelled jointly), "
    "8 random startup trials; the default",
    "nsga2": "NSGA-II, population 16 (multi-objective)",
    "nsga3": "NSGA-III, population 16 (many objectives)",
    "random": "independent uniform draws",
    "grid": "every combination of every parameter's values (see above)",
    "gp": "Optuna's Gaussian-process sampler (needs scipy and torch); conditional parameters "
    "fall back to independent sampling",
}

TRAIN = """\
## Training settings (`train:`)

`train:` holds the runtime settings of every trial's training run (`TrainConfig`), all
optional; the seed is not one of them: the search derives each trial's seed from the
space's `seed`.

"""


LOCALIZATION = """\
## Localization spaces

A space whose `base` is a localization spec (`task: localization`: a shipped name such as
`pyramid_conv`, or a YAML path) searches temporal action localization networks. Its
candidates read windows of feature steps, so:

- `data:` is a features folder (written by `harness features`), or untrimmed videos
  (`synthetic-untrimmed[:tiny|small]`, an exported folder) that the base's
  `input.backbone` turns into features once before the first trial (cached under the cost
  cache's folder, `features/`); `backbone_training:` trains that backbone first on a
  recognition data set (also once, `backbones/`), `backbone_weights:` names a checkpoint
  of it instead. Parameters may vary `input.steps` (the window) but no other `input.` key.
- The metrics are `average_mAP` (mAP averaged over `protocol`'s tIoU thresholds:
  ActivityNet's 0.5:0.05:0.95 or THUMOS14's 0.3:0.1:0.7) and `mAP_50` (mAP at 0.5), on the
  data's validation videos; the default objectives are `average_mAP` and `gflops`. A
  class-agnostic head (BMN) is scored against class-agnostic ground truth.
- Costs are per window of feature steps, features given (the backbone's clips are not in
  them); budgets are judged before training as for recognition.
- A trial trains on the CPU with `train:`'s `optimizer`, `lr`, `weight_decay`, `momentum`,
  `batch_size` and `clip_grad_norm` (others are refused); `fidelity.frames`, `fidelity.size`
  and `retry_with_checkpointing` do not apply. It is scored after the epochs the search
  reads (successive halving's rungs, every epoch for Optuna's pruner, else the last).

"""


def _bullets(docs: dict[str, str], names: list[str], what: str, indent: str = "") -> str:
    """One bullet per name; a name without a paragraph (or a paragraph without a name) is
    a generator error, so that the prose follows the registry and the models."""
    if sorted(docs) != sorted(names):
        raise ValueError(f"{what}: documented {sorted(docs)}, registered {sorted(names)}")
    return "\n".join(f"{indent}- `{name}`: {docs[name]}" for name in names)


def _metrics() -> str:
    rows = ["| name | direction | meaning |", "|---|---|---|"]
    rows += [
        f"| `{name}` | {direction} | {_meaning(name)} |" for name, direction in METRICS.items()
    ]
    return "\n".join(rows)


def _meaning(metric: str) -> str:
    if metric in LOCALIZATION_METRICS:
        return f"localization: {LOCALIZATION_MEANINGS[metric]}"
    return field_comment(TrainResult, metric)


LOCALIZATION_MEANINGS = {
    "average_mAP": "detection mAP averaged over the protocol's tIoU thresholds",
    "mAP_50": "detection mAP at tIoU 0.5",
}


def _costs() -> str:
    rows = ["| name | unit | measured by | what |", "|---|---|---|---|"]
    rows += [f"| `{c.name}` | {c.unit} | {c.method} | {c.description} |" for c in COSTS.values()]
    return "\n".join(rows)


def create_space_reference() -> str:
    """The text of docs/space-reference.md."""
    schema = create_space_schema()
    defs = {**schema["$defs"], "SearchSpace": schema}
    models: dict[str, type[BaseModel]] = {**list_models(SearchSpace), "TrainConfig": TrainConfig}
    pruner = SearchSpace.model_fields["pruner"].annotation
    pruners = _bullets(PRUNERS, list(get_args(pruner)), "pruners", indent="  ")
    samplers = _bullets(SAMPLERS, list_samplers(), "samplers")
    distributions = render_models(["CategoricalParam", "IntParam", "FloatParam"], models, defs)
    fidelity = render_models(["FidelitySpec", "HalvingSpec"], models, defs)
    backbone = render_models(["BackboneTrainingSpec"], models, defs)
    return "\n".join(
        [
            INTRO.format(note=GENERATED_NOTE),
            "## Top-level keys\n\n" + render_model(SearchSpace, defs),
            f"{PARAMS}\n{distributions}",
            CONDITIONS,
            OBJECTIVES.format(metrics=_metrics(), costs=_costs(), trained=TRAINED),
            f"{PRUNING.format(pruners=pruners)}\n{fidelity}",
            SAMPLERS_PROSE.format(samplers=samplers),
            TRAIN + render_model(TrainConfig, defs, skip=["seed"]),
            LOCALIZATION + backbone,
        ]
    )
