"""zoofit: the best classifier a budget allows, from a small labelled dataset and a zoo of pre-trained models.

>>> import zoofit
>>> splits = zoofit.load_data("fashion-mnist")                           # doctest: +SKIP
>>> ranker = zoofit.Ranker("demo", image_size=64).fit(splits)            # doctest: +SKIP
>>> [(row.model, round(row.knn_accuracy, 3)) for row in ranker.ranking_]  # doctest: +SKIP
"""

from zoofit.data import DataConfig, ImageSet, Splits, load_data
from zoofit.ensemble import EnsembleClassifier
from zoofit.errors import ModelError, ZoofitError
from zoofit.pipeline import ZooFit
from zoofit.rank import RankedModel, Ranker
from zoofit.zoo import ModelSpec, Preprocessing, Zoo, load_model, load_zoo

__version__ = "0.1.0"

__all__ = [
    "EnsembleClassifier",
    "ZooFit",
    "DataConfig",
    "ImageSet",
    "ModelError",
    "ModelSpec",
    "Preprocessing",
    "RankedModel",
    "Ranker",
    "Splits",
    "Zoo",
    "ZoofitError",
    "load_data",
    "load_model",
    "load_zoo",
]
