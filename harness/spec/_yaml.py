"""Safe YAML loading that remembers where every key came from.

PyYAML's ``SafeLoader`` composes the node graph; we turn it into plain Python data while
recording the (file, line, column) of every key path, so that validation errors can point
at the offending line. Only the JSON-like core tags are accepted: a tag that would build
an object (``!!python/object``) is an error, never executed. Aliases are followed with a
budget, so an alias bomb ("billion laughs") is rejected instead of exhausting memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import Location, SpecError

__all__ = ["Document", "KeyPath", "load_yaml_file", "load_yaml_text"]

KeyPath = tuple[str | int, ...]

MAX_NODES = 100_000  # nodes built, aliases expanded; real specs have a few hundred
MAX_DEPTH = 64  # nesting depth of mappings and sequences
MAX_BYTES = 2_000_000  # size of one spec or search-space file

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_TAG}{t}" for t in ("null", "bool", "int", "float", "str")}
_TIMESTAMP = f"{_TAG}timestamp"


@dataclass
class Document:
    """Plain data loaded from YAML plus the source location of each key path."""

    data: Any
    file: str
    locations: dict[KeyPath, Location] = field(default_factory=dict)

    def locate(self, path: KeyPath) -> Location | None:
        """Location of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            loc = self.locations.get(tuple(path[:end]))
            if loc is not None:
                return loc
        return None

    def error(self, message: str, path: KeyPath) -> SpecError:
        """A SpecError pointing at ``path`` in this document."""
        return SpecError(message, path=path, location=self.locate(path), file=self.file)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing nesting deeper than :data:`MAX_DEPTH` as it composes.

    NOTE: the composer recurses once per level, so 20 000 brackets would exhaust Python's
    stack before any check of the built data, and a RecursionError has no line to name.
    """

    def __init__(self, text: str, file: str) -> None:
        super().__init__(text)
        self.file = file
        self.depth = 0  # nesting depth of the node being composed
        self.top: KeyPath = ()  # the top-level key whose value is being composed

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.depth == 1:  # a value of the top-level node: a key's scalar or an index
            scalar = isinstance(index, yaml.ScalarNode)
            self.top = (index.value,) if scalar else (index,) if isinstance(index, int) else ()
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH + 1:  # NOTE: the document itself is level 0
                mark = self.peek_event().start_mark
                location = Location(self.file, mark.line + 1, mark.column + 1)
                message = f"nesting deeper than {MAX_DEPTH} levels"
                raise SpecError(message, path=self.top, location=location)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _compose(text: str, file: str) -> yaml.Node | None:
    loader = _Loader(text, file)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _reader_error(exc: yaml.reader.ReaderError, text: str, file: str) -> SpecError:
    """A character YAML does not allow (a control character), at its line and column."""
    line = text.count("\n", 0, exc.position) + 1
    column = exc.position - text.rfind("\n", 0, exc.position)
    code = exc.character if isinstance(exc.character, int) else ord(exc.character)
    return SpecError(
        f"YAML error: character #x{code:04x} is not allowed ({exc.reason})",
        location=Location(file, line, column),
    )


class _Builder:
    """Turns a composed node graph into plain data, recording locations."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.nodes = 0
        self.locations: dict[KeyPath, Location] = {}
        self._scalars = yaml.SafeLoader("")  # only its scalar constructors are used

    def loc(self, node: yaml.Node) -> Location:
        return Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def fail(self, message: str, node: yaml.Node, path: KeyPath) -> SpecError:
        return SpecError(message, path=path, location=self.loc(node))

    def build(self, node: yaml.Node, path: KeyPath, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(
                f"document expands to more than {MAX_NODES} nodes (alias bomb?)", node, path
            )
        if depth > MAX_DEPTH:
            raise self.fail(f"nesting deeper than {MAX_DEPTH} levels", node, path)
        self.locations.setdefault(path, self.loc(node))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != f"{_TAG}seq":
                raise self.fail(f"tag '{node.tag}' is not allowed", node, path)
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: KeyPath) -> Any:
        if node.tag == _TIMESTAMP:
            return node.value  # dates stay text: specs have no date fields
        if node.tag not in _SCALAR_TAGS:
            raise self.fail(f"tag '{node.tag}' is not allowed (specs hold plain data)", node, path)
        try:
            return self._scalars.construct_object(node)
        except (ValueError, yaml.YAMLError) as exc:  # an integer of 5000 digits, say
            reason = str(exc).split(":")[0]
            raise self.fail(f"cannot read the value ({reason})", node, path) from None

    def _mapping(self, node: yaml.MappingNode, path: KeyPath, depth: int) -> dict[Any, Any]:
        if node.tag != f"{_TAG}map":
            raise self.fail(f"tag '{node.tag}' is not allowed", node, path)
        out: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == f"{_TAG}merge":
                merged.update(self._merge_source(value_node, path, depth))
                continue
            key = self._scalar(key_node, path)
            if not isinstance(key, str | int) or isinstance(key, bool):
                raise self.fail(f"key {key!r} must be a name or an index", key_node, path)
            if key in out:
                raise self.fail(f"duplicate key '{key}'", key_node, (*path, key))
            self.locations[(*path, key)] = self.loc(key_node)
            out[key] = self.build(value_node, (*path, key), depth + 1)
        return {**merged, **out}

    def _merge_source(self, node: yaml.Node, path: KeyPath, depth: int) -> dict[Any, Any]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[Any, Any] = {}
        for source in reversed(sources):
            value = self.build(source, path, depth + 1)
            if not isinstance(value, dict):
                raise self.fail("a '<<' merge needs a mapping", source, path)
            merged.update(value)
        return merged


def load_yaml_text(text: str, file: str = "<string>") -> Document:
    """Parse YAML text safely into a :class:`Document`.

    Raises:
        SpecError: on a syntax error, a forbidden tag, duplicate keys or an oversized document.
    """
    if len(text) > MAX_BYTES:
        raise SpecError(f"file is larger than {MAX_BYTES} bytes", file=file)
    try:
        node = _compose(text, file)
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, file) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(f"YAML syntax error: {problem}", location=loc, file=file) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {' '.join(str(exc).split())}", file=file) from None
    except RecursionError:
        raise SpecError(f"nesting deeper than {MAX_DEPTH} levels", file=file) from None
    if node is None:
        return Document(data={}, file=file)
    builder = _Builder(file)
    try:
        data = builder.build(node, ())
    except RecursionError:
        raise SpecError(f"nesting deeper than {MAX_DEPTH} levels", file=file) from None
    return Document(data=data, file=file, locations=builder.locations)


def load_yaml_file(path: str | Path) -> Document:
    """Read and parse a YAML file; unreadable files are SpecErrors too."""
    path = Path(path)
    try:
        if not path.is_file():  # NOTE: a device or a pipe (/dev/zero) would never end
            message = "no such file" if not path.exists() else "not a regular file"
            raise SpecError(message, file=str(path))
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise SpecError(f"file is larger than {MAX_BYTES} bytes", file=str(path))
        text = data.decode("utf-8")
    except OSError as exc:  # NOTE: its text repeats the path, which may be 1 MB long
        raise SpecError(f"cannot read file: {exc.strerror or exc}", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"cannot read file: {exc}", file=str(path)) from None
    return load_yaml_text(text, str(path))
