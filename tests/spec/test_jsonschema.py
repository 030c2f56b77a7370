"""The JSON Schemas accept what the loaders accept, and refuse what they refuse.

Files are read with harness's own YAML loader (anchors, aliases and ``<<`` merges resolved)
and passed through JSON, so that integer keys become strings, as an editor sees them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from harness.errors import SpecError
from harness.search import load_space
from harness.search._jsonschema import create_space_schema
from harness.spec import load_spec, load_yaml_file, load_yaml_text
from harness.spec._jsonschema import create_spec_schema
from harness.zoo import ZOO_DIR

REPO = Path(__file__).resolve().parents[2]
ZOO_FILES = sorted(ZOO_DIR.glob("*.yaml"))
SPACE_FILES = sorted((REPO / "search_spaces").glob("*.yaml"))

TINY = """\
clip: {frames: 8, size: 32}
stem: {type: conv, width: 16, kernel: [1, 3, 3]}
stages:
  - {block: {type: basic, temporal_kernel: 1}, depth: 1, width: 16}
  - {block: {type: basic}, depth: 1, width: 32, spatial_stride: 2}
head: {type: classifier}
"""


@pytest.fixture(scope="module")
def spec_schema() -> Draft202012Validator:
    return Draft202012Validator(create_spec_schema())


@pytest.fixture(scope="module")
def space_schema() -> Draft202012Validator:
    return Draft202012Validator(create_space_schema())


def _errors(validator: Draft202012Validator, data: Any) -> list[str]:
    """Schema errors of plain data as JSON holds it (YAML integer keys become strings)."""
    errors = validator.iter_errors(json.loads(json.dumps(data)))
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in errors]


def test_the_schemas_are_draft_2020_12() -> None:
    for schema in (create_spec_schema(), create_space_schema()):
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", ZOO_FILES, ids=lambda p: p.stem)
def test_every_zoo_file_validates(path: Path, spec_schema: Draft202012Validator) -> None:
    assert _errors(spec_schema, load_yaml_file(path).data) == []


@pytest.mark.parametrize("path", SPACE_FILES, ids=lambda p: p.stem)
def test_every_shipped_space_validates(path: Path, space_schema: Draft202012Validator) -> None:
    assert _errors(space_schema, load_yaml_file(path).data) == []


def test_every_file_is_checked() -> None:
    assert len(ZOO_FILES) >= 26 and len(SPACE_FILES) >= 6


# -- specs -----------------------------------------------------------------------------------
ACCEPTED = {
    "whole_spec": TINY,
    "anchors_aliases_merges": """\
clip: {frames: 8, size: 32}
stem: &stem {type: conv, width: 16, kernel: 3, stride: [1, 2, 2]}
stages:
  - &stage {block: {type: basic, temporal_kernel: [1, 3]}, depth: 2, width: 16}
  - {<<: *stage, width: 32, spatial_stride: 2}
head: {type: classifier}
""",
    "attention_scope_string": """\
clip: {frames: 8, size: 32}
stem: {type: patch, width: 32, patch: [1, 8, 8]}
stages:
  - {block: {type: transformer, heads: 2, attention: joint}, depth: 1, width: 32}
head: {type: tokens}
""",
    "stage_patch": "base: r3d_18\nstages: {2: {depth: 4}}\n",
    "nested_patch": """\
base: slowfast_r50_4x16
pathways: {0: {frame_stride: 4}, 1: {stages: {0: {depth: 2}}}}
laterals: {0: {kernel: 7}}
""",
    "scalar_list_patch": "base: r3d_18\nstem: {kernel: {0: 5}}\n",
    "kind_change": "base: r3d_18\nstages: {0: {block: {type: r2plus1d}}}\n",
    "expansion_symbols": "base: x2d\nexpansion: {gamma_w: 1.5, bottleneck: 2.25, gamma_d: 2.2}\n",
    "attention_layout": "base: timesformer_base\nstages: {0: {block: {attention: divided}}}\n",
    "attention_list": "base: timesformer_base\nstages: {0: {block: {attention: [space, time]}}}\n",
    "lateral_field_names": (
        "base: slowfast_r50_4x16\nlaterals: [{source: fast, target: slow, after: [stem, 0]}]\n"
    ),
    "lateral_single_position": "base: slowfast_r50_4x16\nlaterals: {0: {after: stem}}\n",
    "input_string": "base: i3d_r50_two_stream\npathways: {1: {input: [flow, rgb]}}\n",
    "base_only": "base: x3d_m\n",
}

REFUSED = {
    "unknown_key": TINY + "colour: red\n",
    "unknown_nested_key": TINY.replace("depth: 1, width: 16", "depth: 1, widht: 16"),
    "wrong_type": TINY.replace("frames: 8", "frames: eight"),
    "unknown_block_type": TINY.replace("type: basic, temporal_kernel: 1", "type: resnet"),
    "block_without_type": TINY.replace("type: basic, temporal_kernel: 1", "temporal_kernel: 1"),
    "even_kernel": TINY.replace("kernel: [1, 3, 3]", "kernel: [1, 4, 4]"),
    "missing_head": TINY.replace("head: {type: classifier}\n", ""),
    "patch_without_base": TINY.replace(
        "  - {block: {type: basic}, depth: 1, width: 32, spatial_stride: 2}\n", ""
    ).replace("stages:\n  - ", "stages:\n  0: "),
    "unknown_attention": "base: timesformer_base\nstages: {0: {block: {attention: diagonal}}}\n",
    "factor_named_twice": "base: x2d\nexpansion: {width: 2.0, gamma_w: 2.0}\n",
    "unknown_key_under_base": "base: r3d_18\nstages: {0: {widht: 3}}\n",
    "unknown_type_under_base": "base: r3d_18\nstages: {0: {block: {type: resnet}}}\n",
    "wrong_type_under_base": "base: r3d_18\nclip: {frames: many}\n",
    "lateral_names_twice": """\
base: slowfast_r50_4x16
laterals: [{from: fast, source: fast, to: slow, after: 0}]
""",
    "base_not_a_name": "base: 3\n",
    # NOTE: a patch names items by their index 0 to n - 1 (no counting from the end)
    "negative_index_patch": "base: r3d_18\nstages: {-1: {width: 256}}\n",
    "name_as_patch_index": "base: r3d_18\nstages: {two: {width: 256}}\n",
}


@pytest.mark.parametrize("text", ACCEPTED.values(), ids=ACCEPTED)
def test_what_the_loader_accepts_the_schema_accepts(
    text: str, write_yaml: Any, spec_schema: Draft202012Validator
) -> None:
    load_spec(write_yaml(text))
    assert _errors(spec_schema, load_yaml_text(text).data) == []


@pytest.mark.parametrize("text", REFUSED.values(), ids=REFUSED)
def test_what_the_loader_refuses_the_schema_refuses(
    text: str, write_yaml: Any, spec_schema: Draft202012Validator
) -> None:
    with pytest.raises(SpecError):
        load_spec(write_yaml(text))
    assert _errors(spec_schema, load_yaml_text(text).data) != []


# -- search spaces ----------------------------------------------------------------------------
SPACE = """\
base: tiny_c2d
objectives: {top1: maximize, gflops: minimize}
params:
  stages.0.block.type: [basic, r2plus1d]
  stages.1.width: {type: int, low: 16, high: 64, step: 16}
"""

SPACES_ACCEPTED = {
    "plain": SPACE,
    "budget_strings": SPACE + 'budgets: ["gflops <= 0.1", "trained.train_memory_mb=300"]\n',
    "budget_mapping": SPACE + "budgets: {gflops: 0.1, trained.params: 1000000}\n",
    "objective_list": SPACE.replace(
        "{top1: maximize, gflops: minimize}", "[top1, {params: minimize}]"
    ),
    "conditions_and_ties": SPACE
    + """\
  stages.0.block.temporal_kernel:
    {type: categorical, choices: [1, 3], when: {stages.0.block.type: basic}}
tied: {stages.2.block.type: stages.0.block.type}
""",
    "everything_else": SPACE
    + """\
fidelity: {epochs: 4, subset: 0.5, frames: 4, size: 16}
halving: {min_epochs: 1, eta: 2}
pruner: none
sampler: random
sampler_options: {}
seed: 3
train: {batch_size: 8, lr: 0.01, optimizer: sgd, views: [2, 3], precision: fp32}
""",
}

SPACES_REFUSED = {
    "unknown_key": SPACE + "budget: {gflops: 1}\n",
    "no_base": SPACE.replace("base: tiny_c2d\n", ""),
    "unknown_objective": SPACE.replace("gflops: minimize", "flops: minimize"),
    "unknown_budget_cost": SPACE + "budgets: {flops: 1.0}\n",
    "budget_not_positive": SPACE + "budgets: {gflops: 0}\n",
    "budget_string": SPACE + 'budgets: ["gflops < 1"]\n',
    "unknown_distribution": SPACE.replace("type: int", "type: integer"),
    "unknown_sampler": SPACE + "sampler: bayes\n",
    "unknown_pruner": SPACE + "pruner: asha\n",
    "unknown_train_key": SPACE + "train: {epochs: 3}\n",
    "train_seed": SPACE + "train: {seed: 3}\n",
    "wrong_type": SPACE + "seed: first\n",
}


@pytest.mark.parametrize("text", SPACES_ACCEPTED.values(), ids=SPACES_ACCEPTED)
def test_what_load_space_accepts_the_schema_accepts(
    text: str, write_yaml: Any, space_schema: Draft202012Validator
) -> None:
    load_space(write_yaml(text, "space.yaml"))
    assert _errors(space_schema, load_yaml_text(text).data) == []


@pytest.mark.parametrize("text", SPACES_REFUSED.values(), ids=SPACES_REFUSED)
def test_what_load_space_refuses_the_schema_refuses(
    text: str, write_yaml: Any, space_schema: Draft202012Validator
) -> None:
    with pytest.raises(SpecError):
        load_space(write_yaml(text, "space.yaml"))
    assert _errors(space_schema, load_yaml_text(text).data) != []


# -- descriptions -----------------------------------------------------------------------------
def _undescribed(node: Any, path: str = "#") -> list[str]:
    """The properties (at any depth) without a description."""
    if isinstance(node, list):
        return [m for i, item in enumerate(node) for m in _undescribed(item, f"{path}/{i}")]
    if not isinstance(node, dict):
        return []
    missing = [
        f"{path}/properties/{key}"
        for key, value in node.get("properties", {}).items()
        if not (isinstance(value, dict) and value.get("description", "").strip())
    ]
    return missing + [m for k, v in node.items() for m in _undescribed(v, f"{path}/{k}")]


@pytest.mark.parametrize("create", [create_spec_schema, create_space_schema])
def test_every_property_has_a_description(create: Any) -> None:
    schema = create()
    assert _undescribed(schema) == []
    assert schema["properties"]  # NOTE: guards the walk against passing vacuously
