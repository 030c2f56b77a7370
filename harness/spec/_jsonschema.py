"""JSON Schemas of the YAML files harness reads, generated from the typed models.

pydantic writes the schema of what a model validates; the loaders accept a little more
before validating, and the schema says so too::

    model --model_json_schema--> what the model validates, plus
        a description on every property (``Field(description=...)``, else the field's comment)
        every key a field goes by (``width`` or ``gamma_w``, ``from`` or ``source``), one at a time
        the ``type`` of a discriminated union's node required (pydantic needs it to choose)
    --create_spec_schema--> what ``load_spec`` accepts:
        ``name`` optional (the file stem);
        with ``base:``, partial nodes and lists patched by integer keys (``stages: {2: ...}``)

:func:`create_spec_schema` is what ``harness schema`` prints; the search-space schema
(:mod:`harness.search._jsonschema`) is built with the same tools.
"""

from __future__ import annotations

import ast
import copy
import functools
import inspect
import io
import itertools
import json
import textwrap
import tokenize
from typing import Any, get_args

from pydantic import AliasChoices, BaseModel
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from harness.spec.schema import ModelSpec

__all__ = [
    "BASE",
    "DRAFT",
    "INDEX_KEY",
    "PARTIAL",
    "Schema",
    "create_model_defs",
    "create_spec_schema",
    "dump_schema",
    "field_comment",
    "field_names",
    "list_models",
]

Schema = dict[str, Any]
DRAFT = "https://json-schema.org/draft/2020-12/schema"
INDEX_KEY = "^[0-9]+$"  # a list index, 0 to n - 1, as the key of a patch (``stages: {2: ...}``)
PARTIAL = "Partial"  # prefix of the $defs of nodes given under ``base:`` (no key required)
_META = ("title", "description", "default")  # keys that describe a node rather than type it
_NOT_MEANING = ("NOTE:", "noqa", "type:", "pragma", "fmt:")  # comments that say something else

BASE: Schema = {
    "type": "string",
    "minLength": 1,
    "description": (
        "A zoo name or a YAML path (relative to this file) to inherit from: this file then "
        "gives only what it changes. Mappings merge key by key, a mapping with integer keys "
        "patches the items of a list, anything else replaces; a node whose 'type' picks "
        "another kind is replaced whole; 'published' is never inherited."
    ),
}


# -- descriptions from the fields' comments --------------------------------------------------
@functools.cache
def _class_comments(cls: type) -> dict[str, str]:
    """The comment of each annotated attribute in the body of ``cls``.

    NOTE: the project writes what a field means as a comment beside it or on the lines right
    above it (timm, nanoGPT); read from the source as pydantic reads attribute docstrings, so
    that the comment stays the one place to write it.
    """
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    comments = {
        token.start[0]: token.string.lstrip("#").strip()
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    out: dict[str, str] = {}
    for stmt in body.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        above: list[str] = []
        line = stmt.lineno - 1
        while line >= 1 and lines[line - 1].lstrip().startswith("#"):
            above.insert(0, comments[line])
            line -= 1
        # NOTE: a note (and the lines that continue it) explains the code, not the field
        above = list(itertools.takewhile(lambda text: not text.startswith(_NOT_MEANING), above))
        end = stmt.end_lineno or stmt.lineno
        beside = [comments[n] for n in range(stmt.lineno, end + 1) if n in comments]
        beside = [text for text in beside if not text.startswith(_NOT_MEANING)]
        out[stmt.target.id] = " ".join(above + beside)
    return out


def field_comment(model: type[BaseModel], name: str) -> str:
    """The comment of field ``name`` where it is declared (``model`` or a base class)."""
    for cls in model.__mro__:
        if name in vars(cls).get("__annotations__", {}):
            return _class_comments(cls).get(name, "")
    return ""


def field_names(model: type[BaseModel], name: str, field: FieldInfo) -> list[str]:
    """Every key that gives field ``name`` in a file; the first is the schema's property."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        names = [choice for choice in alias.choices if isinstance(choice, str)]
    elif isinstance(alias, str):
        names = [alias]
    else:
        names = [field.alias or name]
    config = model.model_config
    if (config.get("populate_by_name") or config.get("validate_by_name")) and name not in names:
        names.append(name)
    return names


def _empty_default(field: FieldInfo) -> Any:
    """The default of a field made by ``dict``, ``list`` or ``tuple`` (pydantic omits it)."""
    factory = field.default_factory
    return factory() if factory in (dict, list, tuple) else None


def _describe_model(json_schema: Schema, model: type[BaseModel]) -> None:
    """Descriptions, defaults and alternative keys of ``model``'s properties, in place."""
    properties = json_schema["properties"]
    required = json_schema.get("required", [])
    constraints: list[Schema] = []
    for name, field in model.model_fields.items():
        names = field_names(model, name, field)
        node = properties[names[0]]
        comment = field_comment(model, name)
        if "description" not in node and comment:
            node["description"] = comment
        if "default" not in node and _empty_default(field) is not None:
            node["default"] = _empty_default(field)
        for other in names[1:]:
            properties[other] = {**copy.deepcopy(node), "title": other}
        if len(names) > 1:
            # NOTE: two keys of one field are an error ("extra" or "name the same factor").
            constraints += [
                {"not": {"required": [a, b]}} for i, a in enumerate(names) for b in names[i + 1 :]
            ]
            if names[0] in required:
                required.remove(names[0])
                constraints.append({"anyOf": [{"required": [n]} for n in names]})
    if constraints:
        json_schema["allOf"] = constraints


class _Generator(GenerateJsonSchema):
    """pydantic's schema generator, describing every model's fields as it goes."""

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        if "properties" in json_schema:
            _describe_model(json_schema, schema["cls"])
        return json_schema


def _require_tags(defs: dict[str, Schema], node: Any) -> None:
    """Require the ``type`` of every discriminated union member (and describe it)."""
    if isinstance(node, list):
        for item in node:
            _require_tags(defs, item)
    if not isinstance(node, dict):
        return
    discriminator = node.get("discriminator")
    if isinstance(discriminator, dict):
        tag = discriminator["propertyName"]
        for value, ref in discriminator["mapping"].items():
            member = defs[ref.rsplit("/", 1)[-1]]
            if tag not in member.setdefault("required", []):
                member["required"].insert(0, tag)
            summary = member.get("description", "selects this kind of node")
            summary = summary.split("\n\n")[0].replace("\n", " ").rstrip(":")
            member["properties"][tag].setdefault("description", f"`{value}`: {summary}")
    for value in node.values():
        _require_tags(defs, value)


def list_models(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """``model`` and every model its fields hold, by class name (as the schema's $defs)."""
    found: dict[str, type[BaseModel]] = {}
    stack: list[Any] = [model]
    while stack:
        item = stack.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item.__name__ not in found:
                found[item.__name__] = item
                stack.extend(field.annotation for field in item.model_fields.values())
        else:
            stack.extend(get_args(item))
    return found


def create_model_defs(model: type[BaseModel]) -> dict[str, Schema]:
    """The JSON Schema of ``model`` and of every model it holds, by class name.

    Every property is described, every key a field goes by is a property, and the ``type``
    of a node of a discriminated union is required.
    """
    schema = model.model_json_schema(mode="validation", schema_generator=_Generator)
    defs: dict[str, Schema] = schema.pop("$defs", {})
    defs[model.__name__] = schema
    _require_tags(defs, defs)
    return defs


# -- partial nodes, under ``base:`` ------------------------------------------------------------
def _patch(array: Schema, defs: dict[str, Schema]) -> Schema:
    """``array``, or a mapping from list indices to partial items that patches the base's."""
    item = array.get("items")
    if item is None:
        item = {"anyOf": array.get("prefixItems", [])}
    meta = {k: array[k] for k in _META if k in array}
    whole = {k: v for k, v in array.items() if k not in _META}
    patch = {
        "type": "object",
        "patternProperties": {INDEX_KEY: _partial(item, defs)},
        "additionalProperties": False,
    }
    return {**meta, "anyOf": [whole, patch]}


def _partial(node: Any, defs: dict[str, Schema]) -> Any:
    """``node`` as a child spec may give it under ``base:``: no key required, lists patchable.

    A list a child gives replaces the base's whole, so its items stay complete.
    """
    if isinstance(node, list):
        return [_partial(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        _add_partial(name, defs)
        return {**node, "$ref": f"#/$defs/{PARTIAL}{name}"}
    if node.get("type") == "array":
        return _patch(node, defs)
    out: Schema = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {k: _partial(v, defs) for k, v in value.items()}
        elif key in ("anyOf", "allOf", "additionalProperties"):
            out[key] = _partial(value, defs)
        elif key == "oneOf":  # NOTE: several partial members may match a node without 'type'
            out["anyOf"] = _partial(value, defs)
        elif key not in ("required", "discriminator"):
            out[key] = value
    return out


def _add_partial(name: str, defs: dict[str, Schema]) -> None:
    partial = f"{PARTIAL}{name}"
    if partial not in defs:
        defs[partial] = {}  # NOTE: taken before recursing, for nodes that hold themselves
        defs[partial] = _partial(defs[name], defs)


# -- the spec file ---------------------------------------------------------------------------
def create_spec_schema() -> Schema:
    """The JSON Schema (draft 2020-12) of a spec file, as :func:`harness.spec.load_spec`
    reads it: a whole spec, or with ``base:`` only what changes."""
    defs = create_model_defs(ModelSpec)
    full = defs[ModelSpec.__name__]
    full["required"].remove("name")  # the loader takes the file stem
    root = _partial(full, defs)
    root["properties"]["base"] = BASE
    root.pop("title", None)
    return {
        "$schema": DRAFT,
        "title": "harness spec",
        **root,
        "if": {"required": ["base"]},
        "else": {"$ref": f"#/$defs/{ModelSpec.__name__}"},
        "$defs": dict(sorted(defs.items())),
    }


def dump_schema(schema: Schema) -> str:
    """The text of a schema file: indented JSON, one trailing newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
