"""Ranking: frozen features of every model, scored by a proxy (leave-one-out kNN accuracy by default, or LogME).

Its names are imported on first use, so that the proxies' names (``zoofit.rank.proxies``) load no torch."""

from __future__ import annotations

from zoofit.lazy import lazy_exports

_MODULES = {
    "features": ("Features", "extract_features"),
    "knn": ("METRICS", "loo_knn_accuracy", "loo_knn_predict"),
    "config": ("RankConfig",),
    "proxies": ("PROXIES", "Proxy", "make_proxy"),
    "models": ("RankedModel", "SkippedModel"),
    "ranker": ("Ranker",),
}
_HOMES = {name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
