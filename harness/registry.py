"""Small registries keyed by the YAML ``type`` string.

Each extension point (blocks, stems, heads, norms, activations, ...) owns one
:class:`Registry`. Builders are looked up by name; an unknown name raises a
:class:`~harness.errors.SpecError` that lists the known names. Names are never resolved
through import paths, so a spec can only reach code that registered itself.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from harness.errors import SpecError

__all__ = ["Registry", "suggest"]

T = TypeVar("T")


def suggest(name: str, known: list[str]) -> str:
    """A ``did you mean`` hint for a misspelt name, or an empty string."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry(Generic[T]):
    """A named table of builders for one extension point.

    Args:
        kind: what the entries are, used in error messages ("block", "head").
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers ``fn`` under ``name``."""

        def decorate(fn: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = fn
            return fn

        return decorate

    def get(self, name: str) -> T:
        """The entry registered as ``name``; a SpecError listing the known names otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            known = self.names()
            raise SpecError(
                f"unknown {self.kind} type '{name}'{suggest(name, known)}; "
                f"known: {', '.join(known)}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
