"""The shape of a data source: how its string is recognised, checked and read, and what it tells the protocol."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

from zoofit.data.dataset import SourceData
from zoofit.errors import ZoofitError
from zoofit.progress import Progress


class Source(ABC):
    """One kind of data. A string ``SCHEME:LOCATION`` names it (``SCHEME`` alone where it is ``bare``: its
    default location, an empty string); without a scheme, an existing path it :meth:`recognises` does."""

    #: The prefix that names this source (``csv`` for ``csv:PATH``); None where only a path can name it.
    scheme: str | None = None
    #: How a user writes it (``csv:PATH or *.csv``), and what it is, in one line: the ``--data`` help and the
    #: message for a path that does not exist read them.
    form: str
    help: str
    #: Whether the scheme alone names the source at its default location.
    bare: bool = False
    #: Training images per class the protocol draws where the user asks for no size (None: all of them).
    default_train_per_class: int | None = None

    @property
    def name(self) -> str:
        """Its name in :data:`~zoofit.data.sources.SOURCES`: its scheme, else its class's name."""
        return self.scheme or type(self).__name__

    def named_by(self, source: str) -> str | None:
        """The location ``source`` gives where it names this source by its scheme, else None."""
        if self.scheme is None:
            return None
        if self.bare and source == self.scheme:
            return ""
        prefix = f"{self.scheme}:"
        return source[len(prefix) :] if source.startswith(prefix) else None

    def recognises(self, path: Path) -> bool:
        """Whether the existing ``path``, given without a scheme, is this kind of data."""
        return False

    def resolved(self, location: str, base: Path) -> str:
        """``location`` as seen from the folder ``base`` (a suite file's): a relative path that exists there is
        joined to it; anything else is left as it is."""
        return joined(base, location)

    @abstractmethod
    def check(self, location: str) -> None:
        """Fail at once, before any image is read, where ``location`` names nothing there is to read."""

    @abstractmethod
    def load(self, location: str, *, max_side: int, progress: Progress | None) -> SourceData:
        """The data at ``location``, images no larger than ``max_side`` pixels where the source decodes files."""


class PathSource(Source):
    """A source read from one file or folder, recognised by its suffix; messages call it ``noun``."""

    noun: str
    suffixes: tuple[str, ...] = ()

    def recognises(self, path: Path) -> bool:
        return path.suffix.lower() in self.suffixes

    def check(self, location: str) -> None:
        if not Path(location).exists():
            raise ZoofitError(f"{self.noun} '{location}' does not exist")


def joined(base: Path, location: str) -> str:
    """``base / location`` where ``location`` is a relative path that exists under ``base``, else ``location``."""
    if location and not Path(location).is_absolute() and (base / location).exists():
        return str(base / location)
    return location
