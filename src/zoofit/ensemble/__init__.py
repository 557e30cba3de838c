"""Ensembles: greedy, budget-aware selection over finished trials, and the finished ensemble as a classifier."""

from zoofit.ensemble.classifier import EnsembleClassifier, member_entry
from zoofit.ensemble.greedy import SELECTIONS, Selection, average, bagged_select, greedy_select

__all__ = [
    "SELECTIONS",
    "EnsembleClassifier",
    "Selection",
    "average",
    "bagged_select",
    "greedy_select",
    "member_entry",
]
