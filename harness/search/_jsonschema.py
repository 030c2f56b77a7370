"""The JSON Schema of a search-space file, generated from :class:`SearchSpace`.

Built with the spec schema's tools (:mod:`harness.spec._jsonschema`), plus what
:func:`harness.search.load_space` accepts before validating or checks after it:

    params:      a YAML list is a categorical distribution (its choices)
    budgets:     a mapping cost -> limit, or a list of "COST<=LIMIT" strings
    objectives:  a mapping name -> direction, or a list of names (and one-key mappings)
    train:       the keys of TrainConfig, without seed (the search seeds every trial)
    sampler:     a registered sampler; objective and budget names from the cost table
"""

from __future__ import annotations

import re

from harness.costs import list_costs
from harness.search.samplers import list_samplers
from harness.search.space import METRICS, SearchSpace
from harness.spec._jsonschema import DRAFT, Schema, create_model_defs
from harness.train.config import TrainConfig

__all__ = ["create_space_schema"]

_NUMBER = r"\+?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_META = ("title", "description", "default")


def _meta(node: Schema) -> Schema:
    return {key: node[key] for key in _META if key in node}


def _objectives(node: Schema, names: list[str]) -> Schema:
    direction = node["additionalProperties"]
    mapping = {**node, "propertyNames": {"enum": names}}
    mapping = {k: v for k, v in mapping.items() if k not in _META}
    item = {
        "anyOf": [
            {"enum": names},
            {
                "type": "object",
                "propertyNames": {"enum": names},
                "additionalProperties": direction,
                "minProperties": 1,
                "maxProperties": 1,
            },
        ]
    }
    listed = {"type": "array", "items": item, "minItems": 1}
    return {**_meta(node), "anyOf": [mapping, listed]}


def _budgets(node: Schema, costs: list[str]) -> Schema:
    names = "|".join(re.escape(cost) for cost in costs)
    mapping = {
        "type": "object",
        "propertyNames": {"enum": costs},
        "additionalProperties": {**node["additionalProperties"], "exclusiveMinimum": 0},
    }
    text = {"type": "string", "pattern": rf"^\s*(?:{names})\s*<?=\s*{_NUMBER}\s*$"}
    return {**_meta(node), "anyOf": [mapping, {"type": "array", "items": text}]}


def _params(node: Schema, categorical: Schema) -> Schema:
    choices = {k: v for k, v in categorical["properties"]["choices"].items() if k not in _META}
    distribution = node["additionalProperties"]
    return {**node, "additionalProperties": {"anyOf": [choices, distribution]}}


def create_space_schema() -> Schema:
    """The JSON Schema (draft 2020-12) of a search-space file, as ``load_space`` reads it."""
    defs = create_model_defs(SearchSpace)
    train = create_model_defs(TrainConfig)[TrainConfig.__name__]
    del train["properties"]["seed"]  # NOTE: the search seeds every trial from the space's seed
    defs[TrainConfig.__name__] = train
    root = defs.pop(SearchSpace.__name__)
    root.pop("title", None)
    root["required"].remove("name")  # the loader takes the file stem
    properties = root["properties"]
    properties["params"] = _params(properties["params"], defs["CategoricalParam"])
    properties["budgets"] = _budgets(properties["budgets"], list_costs())
    properties["objectives"] = _objectives(properties["objectives"], [*METRICS, *list_costs()])
    properties["train"] = {**_meta(properties["train"]), "$ref": "#/$defs/TrainConfig"}
    properties["sampler"]["enum"] = list_samplers()
    return {
        "$schema": DRAFT,
        "title": "harness search space",
        **root,
        "$defs": dict(sorted(defs.items())),
    }
