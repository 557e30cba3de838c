"""One registry helper for zoofit's extension points (proxies, weight schemes, executors, export formats, data
sources, presets): entries by name in the order they were added, and one message for a name it does not hold.

>>> colours = Registry("colour")
>>> colours.add("red", "#f00")
'#f00'
>>> colours.get("red"), colours.names()
('#f00', ['red'])
>>> colours.get("blue")
Traceback (most recent call last):
zoofit.errors.ParameterError: colour must be one of red, not 'blue'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from zoofit.errors import ParameterError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one kind by name. ``parameter`` is the setting that names one (``proxy``, ``format``): the
    one-line error for an unknown name names it. Reads like a mapping (``name in registry``, ``registry[name]``,
    iteration over the names in order)."""

    def __init__(self, parameter: str, entries: Iterable[tuple[str, T]] = ()) -> None:
        self.parameter = parameter
        self._entries: dict[str, T] = {}
        for name, entry in entries:
            self.add(name, entry)

    def add(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name`` (a second entry of one name is a programming error)."""
        if name in self._entries:
            raise ValueError(f"{self.parameter} '{name}' is registered twice")
        self._entries[name] = entry
        return entry

    def register(self, name_of: Callable[[T], str]) -> Callable[[T], T]:
        """A decorator adding its argument under ``name_of(argument)``: ``@PROXIES.register(lambda p: p.name)``."""
        return lambda entry: self.add(name_of(entry), entry)

    def get(self, name: str) -> T:
        """The entry ``name``; an unknown name is a :class:`ParameterError` listing the names there are."""
        if name not in self._entries:
            raise ParameterError.of(self.parameter, f"must be one of {', '.join(self._entries)}, not '{name}'")
        return self._entries[name]

    def names(self) -> list[str]:
        """The names, in the order they were added."""
        return list(self._entries)

    def values(self) -> list[T]:
        return list(self._entries.values())

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
