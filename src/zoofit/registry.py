"""One registry helper for zoofit's extension points (proxies, weight schemes, executors, export formats, data
sources, presets, ensemble selections): entries by name in the order they were added, each with its own one-line
``form`` (how a user writes it) and ``help``, which the CLI's help and the messages read; and one message for a
name it does not hold.

>>> colours = Registry("colour")
>>> colours.add("red", "#f00", help="the colour of stop signs")
'#f00'
>>> colours.get("red"), colours.names()
('#f00', ['red'])
>>> colours.describe()
'red: the colour of stop signs.'
>>> colours.get("blue")
Traceback (most recent call last):
zoofit.errors.ParameterError: colour must be one of red, not 'blue'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from zoofit.errors import ParameterError

T = TypeVar("T")


@dataclass(frozen=True)
class About:
    """What a registry says of one entry: how a user writes it (``csv:PATH or a .csv file``) and what it is."""

    form: str
    help: str


class Registry(Generic[T]):
    """Entries of one kind by name. ``parameter`` is the setting that names one (``proxy``, ``format``): the
    one-line error for an unknown name names it. Reads like a mapping (``name in registry``, ``registry[name]``,
    iteration over the names in order)."""

    def __init__(self, parameter: str, entries: Iterable[tuple[str, T]] = ()) -> None:
        self.parameter = parameter
        self._entries: dict[str, T] = {}
        self._about: dict[str, About] = {}
        for name, entry in entries:
            self.add(name, entry)

    def add(self, name: str, entry: T, *, help: str | None = None, form: str | None = None) -> T:
        """Add ``entry`` under ``name``, with its one-line ``help`` and ``form`` (default: the entry's own
        ``help`` and ``form`` attributes, a class's say; the form defaults to the name). An entry without help,
        or a second entry of one name, is a programming error."""
        if name in self._entries:
            raise ValueError(f"{self.parameter} '{name}' is registered twice")
        help = help or getattr(entry, "help", None)
        if not isinstance(help, str) or not help:
            raise ValueError(f"{self.parameter} '{name}' has no help: give it a one-line 'help'")
        self._entries[name] = entry
        self._about[name] = About(form or getattr(entry, "form", None) or name, help.rstrip("."))
        return entry

    def register(self, name_of: Callable[[T], str]) -> Callable[[T], T]:
        """A decorator adding its argument under ``name_of(argument)``: ``@PROXIES.register(lambda p: p.name)``."""
        return lambda entry: self.add(name_of(entry), entry)

    def get(self, name: str) -> T:
        """The entry ``name``; an unknown name is a :class:`ParameterError` listing the names there are."""
        if name not in self._entries:
            raise ParameterError.of(self.parameter, f"must be one of {', '.join(self._entries)}, not '{name}'")
        return self._entries[name]

    def about(self, name: str) -> About:
        """The entry ``name``'s form and help."""
        self.get(name)
        return self._about[name]

    def describe(self) -> str:
        """Every entry's form and help, one sentence: a front end's help for the option that names one."""
        return "; ".join(f"{about.form}: {about.help}" for about in self._about.values()) + "."

    def forms(self) -> list[str]:
        """How each entry is written, in order: a message's list of what a user may give."""
        return [about.form for about in self._about.values()]

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
