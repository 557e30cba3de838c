"""zoofit: the best classifier a budget allows, from a small labelled dataset and a zoo of pre-trained models.

>>> import zoofit
>>> splits = zoofit.load_data("fashion-mnist")                           # doctest: +SKIP
>>> ranker = zoofit.Ranker("demo", image_size=64).fit(splits)            # doctest: +SKIP
>>> [(row.model, round(row.score, 3)) for row in ranker.ranking_]       # kNN accuracy  # doctest: +SKIP
>>> logme = zoofit.Ranker("demo", image_size=64, proxy="logme").fit(splits)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoofit.lazy import lazy_exports

__version__ = "0.1.0"

# Imported on first use, so that ``import zoofit`` (and ``zoofit --help``) does not load torch and timm.
_HOMES = {
    "Bench": "zoofit.bench.runner",
    "BenchResult": "zoofit.bench.result",
    "DataConfig": "zoofit.data",
    "ImageSet": "zoofit.data",
    "Splits": "zoofit.data",
    "load_data": "zoofit.data",
    "EnsembleClassifier": "zoofit.ensemble",
    "Machine": "zoofit.estimator",
    "ZooSelection": "zoofit.estimator",
    "clone": "zoofit.estimator",
    "ModelError": "zoofit.errors",
    "ZoofitError": "zoofit.errors",
    "ZooFit": "zoofit.pipeline",
    "distill": "zoofit.distillation",
    "RunConfig": "zoofit.replay",
    "RunResult": "zoofit.result",
    "SweepConfig": "zoofit.sweep_config",
    "preset": "zoofit.sweep_config",
    "RankConfig": "zoofit.rank",
    "RankedModel": "zoofit.rank",
    "Ranker": "zoofit.rank",
    "ModelSpec": "zoofit.zoo",
    "Preprocessing": "zoofit.zoo",
    "Zoo": "zoofit.zoo",
    "load_model": "zoofit.zoo",
    "load_zoo": "zoofit.zoo",
    "suggest": "zoofit.labelling",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

if TYPE_CHECKING:  # the same names, for type checkers and editors
    from zoofit.bench.result import BenchResult  # noqa: F401
    from zoofit.bench.runner import Bench  # noqa: F401
    from zoofit.data import DataConfig, ImageSet, Splits, load_data  # noqa: F401
    from zoofit.distillation import distill  # noqa: F401
    from zoofit.ensemble import EnsembleClassifier  # noqa: F401
    from zoofit.errors import ModelError, ZoofitError  # noqa: F401
    from zoofit.estimator import Machine, ZooSelection, clone  # noqa: F401
    from zoofit.labelling import suggest  # noqa: F401
    from zoofit.pipeline import ZooFit  # noqa: F401
    from zoofit.rank import RankConfig, RankedModel, Ranker  # noqa: F401
    from zoofit.replay import RunConfig  # noqa: F401
    from zoofit.result import RunResult  # noqa: F401
    from zoofit.sweep_config import SweepConfig, preset  # noqa: F401
    from zoofit.zoo import ModelSpec, Preprocessing, Zoo, load_model, load_zoo  # noqa: F401
