"""Ranking: frozen features of every model, scored by leave-one-out kNN accuracy."""

from zoofit.rank.features import Features, extract_features
from zoofit.rank.knn import METRICS, loo_knn_accuracy, loo_knn_predict
from zoofit.rank.ranker import RankedModel, Ranker

__all__ = [
    "METRICS",
    "Features",
    "RankedModel",
    "Ranker",
    "extract_features",
    "loo_knn_accuracy",
    "loo_knn_predict",
]
