"""Ranking: frozen features of every model, scored by a proxy (leave-one-out kNN accuracy by default, or LogME).

Its names are imported on first use, so that the proxies' names (``zoofit.rank.proxies``) load no torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoofit.lazy import lazy_names

_HOMES = {
    "Features": "zoofit.rank.features",
    "extract_features": "zoofit.rank.features",
    "METRICS": "zoofit.rank.knn",
    "loo_knn_accuracy": "zoofit.rank.knn",
    "loo_knn_predict": "zoofit.rank.knn",
    "PROXIES": "zoofit.rank.proxies",
    "Proxy": "zoofit.rank.proxies",
    "make_proxy": "zoofit.rank.proxies",
    "RankedModel": "zoofit.rank.ranker",
    "Ranker": "zoofit.rank.ranker",
}
__all__ = sorted(_HOMES)

if TYPE_CHECKING:  # the same names, for type checkers and editors
    from zoofit.rank.features import Features, extract_features  # noqa: F401
    from zoofit.rank.knn import METRICS, loo_knn_accuracy, loo_knn_predict  # noqa: F401
    from zoofit.rank.proxies import PROXIES, Proxy, make_proxy  # noqa: F401
    from zoofit.rank.ranker import RankedModel, Ranker  # noqa: F401

__getattr__, __dir__ = lazy_names(globals(), _HOMES)
