"""Ranking proxies: how well a model's frozen features suit the downstream labels, as one score (higher = better).

A proxy is a small frozen dataclass in :data:`PROXIES`: its ``name`` (``--proxy``), a display ``label`` (the
column of the ranking), its own settings as fields, ``check`` (the settings, and the number of images where known)
and ``score(features, labels)``. It runs on a model's cached features, so switching proxy extracts nothing again.
This module imports no torch (the CLI lists the names before torch loads): the kNN imports it when it runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Protocol

import numpy as np

from zoofit.errors import ParameterError
from zoofit.rank.logme import logme
from zoofit.registry import Registry


class Proxy(Protocol):
    name: ClassVar[str]
    label: ClassVar[str]

    @property
    def title(self) -> str:
        """What the ranking is by, with the settings: a table's title."""

    def check(self, images: int | None = None) -> None:
        """Raise :class:`ParameterError` for a setting that cannot score (``images`` images, where given)."""

    def score(self, features: np.ndarray, labels: np.ndarray) -> float:
        """The score of ``features`` (N x D) for the class ``labels`` (N): higher = better."""


#: The registered proxies by name; the first is the default (the paper's).
PROXIES: Registry[type[Proxy]] = Registry("proxy")


def register(proxy: type[Proxy]) -> type[Proxy]:
    """Add ``proxy`` to :data:`PROXIES` under its ``name``."""
    return PROXIES.add(proxy.name, proxy)


def make_proxy(name: str, **settings: Any) -> Proxy:
    """The proxy called ``name`` with the ``settings`` among its fields (the others, for other proxies, and
    ``None`` values, which keep the proxy's default, are ignored), checked."""
    kind = PROXIES.get(name)
    proxy = kind(**{f.name: settings[f.name] for f in fields(kind) if settings.get(f.name) is not None})
    proxy.check()
    return proxy


def describe(proxy: Proxy) -> dict[str, Any]:
    """``proxy``'s name, label and settings, as a run's summary records them."""
    return {"name": proxy.name, "label": proxy.label, "settings": asdict(proxy)}


@register
@dataclass(frozen=True)
class KnnAccuracy:
    """Leave-one-out k-nearest-neighbour accuracy, the paper's proxy (Mustafa et al., 2020)."""

    name: ClassVar[str] = "knn"
    label: ClassVar[str] = "kNN accuracy"
    k: int = 1
    metric: str = "cosine"

    @property
    def title(self) -> str:
        return f"leave-one-out {self.k}-NN ({self.metric}) accuracy"

    def check(self, images: int | None = None) -> None:
        from zoofit.rank.knn import METRICS

        if self.metric not in METRICS:
            raise ParameterError.of("metric", f"must be one of {', '.join(METRICS)}, not '{self.metric}'")
        if self.k < 1:
            raise ParameterError.of("k", f"must be at least 1, not {self.k}")
        if images is not None and self.k >= images:
            raise ParameterError.of("k", f"must lie between 1 and {images - 1} (images - 1), not {self.k}")

    def score(self, features: np.ndarray, labels: np.ndarray) -> float:
        from zoofit.rank.knn import loo_knn_accuracy

        return loo_knn_accuracy(features, labels, k=self.k, metric=self.metric)


@register
@dataclass(frozen=True)
class LogME:
    """The evidence of a Bayesian linear model of each class on the features (You et al., 2021)."""

    name: ClassVar[str] = "logme"
    label: ClassVar[str] = "LogME"

    @property
    def title(self) -> str:
        return "LogME (log evidence of a linear model per class, over N)"

    def check(self, images: int | None = None) -> None:
        pass  # no settings; any number of images will do

    def score(self, features: np.ndarray, labels: np.ndarray) -> float:
        return logme(features, labels)
