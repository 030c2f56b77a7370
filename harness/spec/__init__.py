"""The spec language: load, validate, expand and hash architecture specs."""

from harness.spec._errors import error_message, error_path
from harness.spec._types import Integer, NotBool, Number
from harness.spec._yaml import Document, load_yaml_file, load_yaml_text
from harness.spec.expand import expand, realise, round_repeats, round_width
from harness.spec.hashing import canonical_json, spec_hash
from harness.spec.limits import check_limits
from harness.spec.load import apply_overrides, load_spec, locate
from harness.spec.schema import ExpansionSpec, ModelSpec, StageSpec, parse_figure

__all__ = [
    "Document",
    "ExpansionSpec",
    "Integer",
    "ModelSpec",
    "NotBool",
    "Number",
    "StageSpec",
    "apply_overrides",
    "canonical_json",
    "check_limits",
    "error_message",
    "error_path",
    "expand",
    "load_spec",
    "load_yaml_file",
    "load_yaml_text",
    "locate",
    "parse_figure",
    "realise",
    "round_repeats",
    "round_width",
    "spec_hash",
]
