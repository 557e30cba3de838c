"""Ranking proxies: how well a model's frozen features suit the downstream labels, as one score (higher = better).

A proxy is a small frozen dataclass in :data:`PROXIES`: its ``name`` (``--proxy``), a display ``label`` (the
column of the ranking), its one-line ``help``, its own settings as fields declared with
:func:`~zoofit.settings.setting` (each an option of ``zoofit rank``, ``run`` and ``bench``, with its help, default and
check), ``check`` (what the settings' own checks cannot see: the number of images, where known) and
``score(features, labels)``. It runs on a model's cached features, so switching proxy extracts nothing again.
This module imports no torch (the CLI lists the names before torch loads): the kNN imports it when it runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Protocol

import numpy as np

from zoofit.errors import ParameterError
from zoofit.rank.knn import METRICS
from zoofit.rank.logme import logme
from zoofit.registry import Registry
from zoofit.settings import at_least, check_settings, option_fields, setting


class Proxy(Protocol):
    name: ClassVar[str]
    label: ClassVar[str]
    help: ClassVar[str]

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
    """Add ``proxy`` to :data:`PROXIES` under its ``name``, with its ``help``."""
    return PROXIES.add(proxy.name, proxy)


def make_proxy(name: str, **settings: Any) -> Proxy:
    """The proxy called ``name`` with the given ``settings`` of its own (``None`` values keep its defaults),
    checked; a setting it does not have is a :class:`ParameterError` naming the ones it has."""
    kind = PROXIES.get(name)
    given = {setting: value for setting, value in settings.items() if value is not None}
    unknown = sorted(set(given) - {f.name for f in fields(kind)})
    if unknown:
        raise ParameterError.of(unknown[0], f"is not a setting of the {name} proxy ({settings_of(kind)})")
    proxy = kind(**given)
    check_settings(proxy)
    proxy.check()
    return proxy


def settings_of(kind: type[Proxy]) -> str:
    """The settings the proxy class ``kind`` has, for a message."""
    names = [name for name, _ in option_fields(kind)]
    return f"its settings: {', '.join(names)}" if names else "it has no settings"


def describe(proxy: Proxy) -> dict[str, Any]:
    """``proxy``'s name, label and settings, as a run's summary records them."""
    return {"name": proxy.name, "label": proxy.label, "settings": asdict(proxy)}


@register
@dataclass(frozen=True)
class KnnAccuracy:
    """Leave-one-out k-nearest-neighbour accuracy, the paper's proxy (Mustafa et al., 2020)."""

    name: ClassVar[str] = "knn"
    label: ClassVar[str] = "kNN accuracy"
    help: ClassVar[str] = "leave-one-out k-nearest-neighbour accuracy, the paper's (Mustafa et al., 2020)"
    k: int = setting(1, "Neighbours in the leave-one-out kNN.", *at_least(1))
    metric: str = setting(
        "cosine",
        f"kNN similarity: {' or '.join(METRICS)}.",
        METRICS.__contains__,
        f"must be one of {', '.join(METRICS)}",
    )

    @property
    def title(self) -> str:
        return f"leave-one-out {self.k}-NN ({self.metric}) accuracy"

    def check(self, images: int | None = None) -> None:
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
    help: ClassVar[str] = "the evidence of a Bayesian linear model of each class on the features (You et al., 2021)"

    @property
    def title(self) -> str:
        return "LogME (log evidence of a linear model per class, over N)"

    def check(self, images: int | None = None) -> None:
        pass  # no settings; any number of images will do

    def score(self, features: np.ndarray, labels: np.ndarray) -> float:
        return logme(features, labels)
