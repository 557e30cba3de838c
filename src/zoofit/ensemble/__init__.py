"""Ensembles: greedy, budget-aware selection over finished trials, and the finished ensemble as a classifier."""

from zoofit.ensemble.classifier import EnsembleClassifier, member_entry
from zoofit.ensemble.greedy import Selection, average, greedy_select

__all__ = ["EnsembleClassifier", "Selection", "average", "greedy_select", "member_entry"]
