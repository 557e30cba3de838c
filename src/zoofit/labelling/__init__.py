"""Which unlabelled images to label next: a finished run's ensemble scores a pool, a strategy chooses.

:mod:`~zoofit.labelling.strategies` loads no torch (the CLI lists the strategies before torch loads); the rest is
imported on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoofit.lazy import lazy_exports

_HOMES = {
    "CSV_COLUMNS": "zoofit.labelling.choose",
    "DEFAULT_STRATEGY": "zoofit.labelling.choose",
    "NEAR_DUPLICATE": "zoofit.labelling.choose",
    "Suggestion": "zoofit.labelling.choose",
    "Suggestions": "zoofit.labelling.choose",
    "suggest": "zoofit.labelling.choose",
    "record_labelled": "zoofit.labelling.labelled",
    "STRATEGIES": "zoofit.labelling.strategies",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

if TYPE_CHECKING:
    from zoofit.labelling.choose import CSV_COLUMNS, DEFAULT_STRATEGY, NEAR_DUPLICATE, Suggestion, Suggestions, suggest  # noqa: F401
    from zoofit.labelling.labelled import record_labelled  # noqa: F401
    from zoofit.labelling.strategies import STRATEGIES  # noqa: F401
