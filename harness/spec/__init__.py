"""The spec language: load, validate, expand and hash architecture specs."""

from harness.spec.expand import expand, realise, round_repeats, round_width
from harness.spec.hashing import canonical_json, spec_hash
from harness.spec.load import apply_overrides, load_spec, locate
from harness.spec.schema import ExpansionSpec, ModelSpec, StageSpec, parse_figure

__all__ = [
    "ExpansionSpec",
    "ModelSpec",
    "StageSpec",
    "apply_overrides",
    "canonical_json",
    "expand",
    "load_spec",
    "locate",
    "parse_figure",
    "realise",
    "round_repeats",
    "round_width",
    "spec_hash",
]
