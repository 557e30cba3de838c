"""Ensembles: greedy, budget-aware selection over finished trials with its safeguard, and the finished ensemble as a
classifier.

Its names are imported on first use, so that the selections' names (``zoofit.ensemble.greedy``) load no torch."""

from __future__ import annotations

from zoofit.lazy import lazy_exports

_MODULES = {
    "classifier": ("EnsembleClassifier", "member_entry"),
    "greedy": ("SELECTIONS", "Safeguard", "Selection", "average", "bagged_select", "greedy_select"),
    "safeguard": ("guarded",),
}
_HOMES = {name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
