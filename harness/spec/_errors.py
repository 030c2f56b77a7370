"""pydantic's validation errors in the user's terms: the key path and a message.

pydantic names where an error is by its own location (with the tags of discriminated unions
and the names of validators in it) and says what is wrong in its own words; the loaders of
specs, search spaces and data sets turn the first error into a :class:`SpecError` at the key
path of the raw data, with the words below::

    ('stages', 1, 'block', 'bottleneck', 'grups')  ->  stages.1.block.grups:
        unknown key 'grups' (did you mean 'groups'?)
    ('stages', 1, 'temporal_kernel')  ->  stages.1.temporal_kernel:
        unknown key 'temporal_kernel'; it belongs in the block (stages.1.block.temporal_kernel)
"""

from __future__ import annotations

import difflib
import math
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from harness.spec._yaml import KeyPath

__all__ = ["error_message", "error_path", "field_keys"]

# Parts of a pydantic location that are no keys; ``kind:`` starts the tags of the unions
# whose members a function picks (harness.spec.audio).
_SKIPPED = ("function-", "tagged-union", "kind:")
_BOUNDS = {
    "greater_than": ("gt", "above"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "below"),
    "less_than_equal": ("le", "at most"),
}


def error_path(data: Any, loc: tuple[Any, ...]) -> KeyPath:
    """A pydantic error location as the key path of the raw data it was validated from.

    Pydantic inserts the discriminator value (``'bottleneck'``) and validator names into
    locations; those parts are not keys of the data and are dropped. A missing key is kept
    (it is where the mistake is); the path stops at the first part the data does not have.
    """
    path: list[str | int] = []
    node = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str):
            if node.get("type") == part or part.startswith(_SKIPPED):
                continue
            path.append(part)  # a missing key: point at it, keep going
            node = None
        else:
            break
    return tuple(path)


# -- messages ------------------------------------------------------------------------------
def _bound(error: ErrorDetails) -> str:
    """``must be at least 1, got 0``; ``must be a finite number above 0, got nan`` for a
    comparison that NaN or an infinity failed (pydantic's "greater than 0" would hide it)."""
    key, words = _BOUNDS[error["type"]]
    value = error["input"]
    limit = (error.get("ctx") or {}).get(key)
    shown = f"{limit:g}" if isinstance(limit, int | float) else limit
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number {words} {shown}, got {value}"
    return f"must be {words} {shown}, got {value}"


def _tag(error: ErrorDetails) -> str:
    ctx = error.get("ctx") or {}
    return f"unknown type '{ctx.get('tag')}'; known types: {ctx.get('expected_tags')}"


def _sequence(error: ErrorDetails) -> str:
    got = error["input"]
    if isinstance(got, dict) and got and all(isinstance(k, int) for k in got):
        return "must be a list (a mapping of list indices patches only a list the base has)"
    return f"must be a list, got {_kind(got)}"


def _kind(value: Any) -> str:
    kinds = {dict: "a mapping", str: "text", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number" if isinstance(value, int | float) else "a value")


_WORDS: dict[str, Callable[[ErrorDetails], str]] = {
    **dict.fromkeys(_BOUNDS, _bound),
    "extra_forbidden": lambda e: f"unknown key '{e['loc'][-1]}'",
    "union_tag_invalid": _tag,
    "union_tag_not_found": lambda e: "missing key 'type'",
    "missing": lambda e: f"missing required key '{e['loc'][-1]}'",
    "finite_number": lambda e: f"must be a finite number, got {e['input']}",
    "tuple_type": _sequence,
    "list_type": _sequence,
}


def error_message(error: ErrorDetails, root: Any = None) -> str:
    """What ``error`` says, in our words.

    Args:
        error: one of ``ValidationError.errors()``.
        root: the type validated (a model, or a union of models); with it, an unknown key
            is told where it belongs (:func:`unknown_key_hint`).
    """
    words = _WORDS.get(error["type"])
    message = words(error) if words else str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden" and root is not None:
        message += unknown_key_hint(root, tuple(error["loc"]))
    return message


# -- where an unknown key belongs -----------------------------------------------------------
@dataclass(frozen=True)
class _Node:
    """A model met on the way down a pydantic location."""

    model: type[BaseModel]
    path: KeyPath  # its key path in the data
    kinds: tuple[type[BaseModel], ...]  # the union it was chosen from (itself if none)


def _members(annotation: Any) -> list[Any]:
    """The types ``annotation`` may be: Annotated and None stripped, unions split."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [] if annotation is type(None) else [annotation]


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _items(kind: Any) -> tuple[Any, str] | None:
    """The item type of a list, tuple or dict type, and how an item is named in a path."""
    origin, args = get_origin(kind), get_args(kind)
    if origin is dict and len(args) == 2:
        return args[1], "NAME"
    if origin in (tuple, list) and args:
        return args[0], "N"
    return None


def _tags(model: type[BaseModel]) -> tuple[Any, ...]:
    field = model.model_fields.get("type")
    return get_args(field.annotation) if field is not None else ()


def field_keys(model: type[BaseModel]) -> set[str]:
    """Every key that gives a field of ``model`` in a file (names, aliases, alternatives)."""
    names = set(model.model_fields)
    for field in model.model_fields.values():
        names.update(getattr(field.validation_alias, "choices", []))
        if field.alias:
            names.add(field.alias)
    return {n for n in names if isinstance(n, str)}


def _field(model: type[BaseModel], key: Any) -> Any:
    """The annotation of the field that ``key`` gives, or None."""
    for name, field in model.model_fields.items():
        choices = getattr(field.validation_alias, "choices", ())
        if key in (name, field.alias, *choices):
            return field.annotation
    return None


def _walk(root: Any, loc: tuple[Any, ...]) -> list[_Node]:
    """The models met from ``root`` down to the node holding ``loc``'s last part (empty
    where the walk cannot follow the location)."""
    parts = [p for p in loc[:-1] if not (isinstance(p, str) and p.startswith(_SKIPPED))]
    nodes: list[_Node] = []
    kinds: list[Any] = _members(root)
    union: tuple[Any, ...] = ()  # the union the next model is chosen from
    path: KeyPath = ()
    for part in [*parts, None]:
        models = [k for k in kinds if _is_model(k)]
        if len(models) > 1:  # a discriminated union: the part is the tag
            kinds, union = [m for m in models if part in _tags(m)], tuple(models)
            if len(kinds) != 1:
                return []
            continue
        if models:
            nodes.append(_Node(models[0], path, union or (models[0],)))
            annotation = _field(models[0], part)
        else:
            annotation = next((i[0] for k in kinds if (i := _items(k)) is not None), None)
        if part is None:
            return nodes
        if annotation is None:
            return []
        kinds, union, path = _members(annotation), (), (*path, part)
    return nodes


def _dotted(path: KeyPath) -> str:
    return ".".join(str(p) for p in path)


def _noun(word: str, many: bool) -> str:
    """``stage`` -> ``a stage`` (one of many) or ``the stage``."""
    if not many:
        return f"the {word}"
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _word(path: KeyPath) -> str:
    """``('stages', 1)`` -> ``stage``, ``('stem',)`` -> ``stem``: the node at ``path``."""
    names = [p for p in path if isinstance(p, str)]
    if not names:
        return "top level"
    return names[-1].removesuffix("s") if path[-1] != names[-1] else names[-1]


def _below(node: _Node, key: str) -> Iterator[str]:
    """Where ``key`` is a key of a node one level below ``node``."""
    seen: list[set[type[BaseModel]]] = []
    for name, field in node.model.model_fields.items():
        kinds = _members(field.annotation)
        index: tuple[str, ...] = ()  # N or NAME: the node is one item of a list or mapping
        items = next((i for k in kinds if (i := _items(k)) is not None), None)
        if items is not None:
            kinds, index = _members(items[0]), (items[1],)
        models = {k for k in kinds if _is_model(k)}
        if models in seen or not any(key in field_keys(m) for m in models):
            continue
        seen.append(models)
        key_name = field.alias or name
        word = key_name.removesuffix("s") if index else key_name
        yield f"{_noun(word, bool(index))} ({_dotted((*node.path, key_name, *index, key))})"


def _above(nodes: list[_Node], key: str) -> Iterator[str]:
    """Where ``key`` is a key of the node holding this one."""
    if len(nodes) > 1 and key in field_keys(nodes[-2].model):
        parent = nodes[-2].path
        yield f"{_noun(_word(parent), False)} ({_dotted((*parent, key))})"


def _kinds(node: _Node, key: str) -> Iterator[str]:
    """Where ``key`` is a key of another kind of this node (another block type)."""
    others = [m for m in node.kinds if m is not node.model and key in field_keys(m)]
    tags = " or ".join(f"'{t}'" for m in others for t in _tags(m))
    if tags:
        own = " or ".join(f"'{t}'" for t in _tags(node.model))
        yield f"{_noun(_word(node.path), True)} of type {tags} (this one is {own})"


def unknown_key_hint(root: Any, loc: tuple[Any, ...]) -> str:
    """``; it belongs in a stage (stages.N.depth)`` (followed by ``(or did you mean
    'head'?)`` where a key of this node is close), `` (did you mean 'head'?)`` or
    ``; known keys here: ...``, for the unknown key at pydantic location ``loc``.

    The places are the nodes one level below and above, and the other kinds of the node
    (block types); close matches come from the keys of the node itself, never the key as
    written.
    """
    key = str(loc[-1])
    nodes = _walk(root, loc)
    if not nodes:
        return ""
    node = nodes[-1]
    own = sorted(field_keys(node.model) - {key})
    close = difflib.get_close_matches(key, own, n=1, cutoff=0.6)
    places = [*_below(node, key), *_above(nodes, key), *_kinds(node, key)]
    if places:
        # NOTE: a near-miss of this node's own key is likely too ('heads' for 'head')
        also = f" (or did you mean '{close[0]}'?)" if close else ""
        return f"; it belongs in {' or in '.join(places)}{also}"
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f"; known keys here: {', '.join(own)}"
