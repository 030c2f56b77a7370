"""Loading specs: YAML -> inheritance and overrides -> validated :class:`ModelSpec`.

A spec may name a ``base`` (a zoo name or a file path relative to itself) and override
any of its keys. Mappings merge key by key; a mapping with integer keys patches the items
of a list (``stages: {2: {depth: 4}}``); anything else replaces. A node whose ``type``
turns it into another kind (another block, stem or head) is replaced whole, and
``published`` figures are never inherited.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from harness.errors import Location, SpecError, shorten
from harness.spec._errors import error_message, error_path
from harness.spec._yaml import Document, KeyPath, load_yaml_file
from harness.spec.blocks import BlockSpec  # noqa: F401  (documents the union used below)
from harness.spec.schema import ModelSpec, check_references
from harness.zoo import zoo_path

__all__ = [
    "apply_overrides",
    "is_own_key",
    "load_document",
    "load_spec",
    "locate",
    "spec_from_document",
]

MAX_BASE_CHAIN = 16


def _is_file_ref(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml")) or "/" in ref or "\\" in ref


def _resolve(ref: str | Path, relative_to: Path | None) -> Path:
    if isinstance(ref, Path) or _is_file_ref(ref):
        path = Path(ref)
        if not path.is_absolute() and relative_to is not None:
            path = relative_to / path
        return path
    return zoo_path(ref)


def _kind_changes(base: dict[str, Any], child: dict[str, Any]) -> bool:
    """Whether ``child`` turns ``base`` into another kind of node (another block, stem...).

    A ``type`` that picks another model of a discriminated union replaces the node whole;
    another value of the same model's ``type`` (a lateral's kind) merges key by key.
    """
    old, new = base.get("type"), child.get("type")
    if "type" not in child or old == new or not isinstance(new, str):
        return False
    if not isinstance(old, str):
        return True
    return not (_models_of_type(old) & _models_of_type(new))


def _merge(base: Any, child: Any, path: KeyPath = ()) -> Any:
    """``child`` merged into ``base``; ``path`` is where they are (for errors).

    Raises:
        SpecError: a patch of a list names an item the list does not have.
    """
    if isinstance(base, dict) and isinstance(child, dict):
        if _kind_changes(base, child):
            return child
        merged = dict(base)
        for key, value in child.items():
            merged[key] = _merge(base[key], value, (*path, key)) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(child, dict):
        return _patch(base, child, path)
    return child


def _patch(base: list[Any], child: dict[Any, Any], path: KeyPath) -> list[Any]:
    """``base`` with the items ``child`` names by index (``{2: {depth: 4}}``) merged in."""
    patched = list(base)
    for index, value in child.items():
        if not isinstance(index, int) or not 0 <= index < len(base):
            raise SpecError(_not_an_index(index, len(base)), path=(*path, index))
        patched[index] = _merge(base[index], value, (*path, index))
    return patched


def _not_an_index(key: Any, count: int) -> str:
    indices = f"0 to {count - 1}" if count else "none: the list is empty"
    if not isinstance(key, int):
        return (
            f"'{shorten(str(key))}' is not a list index: the keys of a mapping that patches a "
            f"list are item indices ({indices})"
        )
    return f"list index {key} is out of range: the base has {count} items (indices {indices})"


def _merge_documents(base: Document, child: Document) -> Document:
    base_data = {k: v for k, v in base.data.items() if k != "published"}
    try:
        data = _merge(base_data, child.data)
    except SpecError as exc:
        raise child.error(exc.message, exc.path) from None
    locations = {**base.locations, **child.locations}
    return Document(data=data, file=child.file, locations=locations)


def _real(path: Path) -> Path:
    """``path`` with every symbolic link resolved."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # NOTE: Python 3.11 raises RuntimeError for a link loop
        raise SpecError(
            "cannot follow the path (a loop of symbolic links?)", file=str(path)
        ) from None


def load_document(ref: str | Path, *, _chain: tuple[Path, ...] = ()) -> Document:
    """Load a spec file or zoo entry with its ``base`` chain merged in (not yet validated)."""
    path = _resolve(ref, _chain[-1].parent if _chain else None)
    if _real(path) in (_real(p) for p in _chain) or len(_chain) > MAX_BASE_CHAIN:
        raise SpecError("'base' chain loops back on itself", path=("base",), file=str(path))
    doc = load_yaml_file(path)
    if not isinstance(doc.data, dict):
        raise doc.error("a spec must be a mapping of keys", ())
    doc.data.setdefault("name", path.stem)
    base_ref = doc.data.pop("base", None)
    if base_ref is None:
        return doc
    if not isinstance(base_ref, str):
        raise doc.error("'base' must be a zoo name or a file path", ("base",))
    try:
        base = load_document(base_ref, _chain=(*_chain, path))
    except SpecError as exc:
        if exc.location is not None:  # a mistake inside the base file: point at it there
            raise
        # NOTE: the base cannot be found or read (or loops): the mistake is this 'base' key.
        raise doc.error(f"'{shorten(base_ref)}': {exc.message}", ("base",)) from None
    return _merge_documents(base, doc)


_INDEX = re.compile(r"-?[0-9]{1,18}")  # a list index in a key path (ASCII digits only)


def _parse_key_path(key: str) -> KeyPath:
    parts: list[str | int] = []
    for part in key.replace("__", ".").split("."):
        parts.append(int(part) if _INDEX.fullmatch(part) else part)
    return tuple(parts)


def apply_overrides(data: Any, overrides: Mapping[str, Any]) -> Any:
    """Set ``{"stages.2.depth": 4, "clip__frames": 8}``-style key paths in plain data.

    Nested mappings as values merge like a child spec does.
    """
    for key, value in overrides.items():
        path = _parse_key_path(key)
        child: Any = value
        for part in reversed(path):
            child = {part: child}
        try:
            data = _merge(data, child)
        except SpecError as exc:
            raise SpecError(exc.message, path=path, file="<overrides>") from None
    return data


@functools.cache
def _spec_models() -> tuple[type[BaseModel], ...]:
    """Every pydantic model reachable from :class:`ModelSpec`."""
    seen: dict[str, type[BaseModel]] = {}
    stack: list[Any] = [ModelSpec]
    while stack:
        item = stack.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item.__name__ in seen:
                continue
            seen[item.__name__] = item
            stack.extend(field.annotation for field in item.model_fields.values())
        else:
            stack.extend(get_args(item))
    return tuple(seen.values())


@functools.cache
def _models_of_type(name: str) -> frozenset[str]:
    """Names of the spec models whose ``type`` field accepts ``name``."""
    return frozenset(
        model.__name__
        for model in _spec_models()
        if "type" in model.model_fields and name in get_args(model.model_fields["type"].annotation)
    )


def spec_from_document(doc: Document, overrides: Mapping[str, Any] | None = None) -> ModelSpec:
    """Validate merged data as a :class:`ModelSpec`, mapping errors onto file positions."""
    data = apply_overrides(doc.data, overrides) if overrides else doc.data
    try:
        spec = ModelSpec.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        path = error_path(data, error["loc"])
        raise doc.error(error_message(error, ModelSpec), path) from None
    try:
        check_references(spec)
    except SpecError as exc:
        raise doc.error(exc.message, exc.path) from None
    spec._origin = doc
    return spec


def load_spec(ref: str | Path | ModelSpec, **overrides: Any) -> ModelSpec:
    """Load and validate a spec.

    Args:
        ref: a zoo name (``"x3d_m"``), a YAML path, or an already loaded spec.
        **overrides: key paths to set, with ``__`` or ``.`` between keys
            (``load_spec("x3d_m", clip__frames=8)``, ``stages__2__depth=4``).

    Raises:
        SpecError: naming file, line, column and key path of the first problem.
    """
    if isinstance(ref, ModelSpec):
        if not overrides:
            return ref
        origin = ref._origin
        doc = Document(
            data=ref.model_dump(mode="json", round_trip=True),
            file=origin.file if origin else "<spec>",
            locations=origin.locations if origin else {},
        )
    else:
        doc = load_document(ref)
    return spec_from_document(doc, overrides)


def locate(spec: ModelSpec, error: SpecError) -> SpecError:
    """Attach the file position of ``error.path`` in ``spec``'s source, if it has none."""
    if error.location is not None or spec._origin is None:
        return error
    origin: Document = spec._origin
    location: Location | None = origin.locate(error.path)
    return SpecError(error.message, path=error.path, location=location, file=origin.file)


def is_own_key(spec: ModelSpec, path: KeyPath) -> bool:
    """Whether ``spec``'s own file sets the key at ``path`` (not a base it inherits it from,
    not a default)."""
    origin: Document | None = spec._origin
    if origin is None:
        return True
    location = origin.locations.get(tuple(path))
    return location is not None and location.file == origin.file
