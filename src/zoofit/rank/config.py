"""How a zoo is ranked: the proxy and its settings, the resolution and the batches of the feature passes, each
declared once with :func:`~zoofit.settings.setting` (the CLI's options, help, defaults and checks derive from it).

This module imports no torch: the CLI builds its options from it before torch loads.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from zoofit.rank.proxies import PROXIES, Proxy, make_proxy
from zoofit.settings import at_least, changed, check_settings, setting

_KNN = {f.name: f.default for f in fields(PROXIES.get("knn"))}  # the kNN proxy's own defaults, declared there
_PIXELS = (at_least(16, none=True)[0], "must be at least 16 pixels")
_POSITIVE = (at_least(1, none=True)[0], "must be positive")


@dataclass(frozen=True)
class RankConfig:
    """How to rank. ``k`` and ``metric`` set the kNN proxy (``None``: its defaults); other proxies ignore them.
    ``image_size`` ``None`` ranks each model at its own resolution; where ``own_size_if_needed``, a model that
    cannot take ``image_size`` (a fixed-size ViT) is ranked at its own instead of being skipped."""

    proxy: str = setting(
        "knn", f"Ranking proxy: {', '.join(f'{name} ({kind.label})' for name, kind in PROXIES.items())}."
    )
    k: int | None = setting(
        None, f"Neighbours in the leave-one-out kNN (proxy knn; default {_KNN['k']}).", *at_least(1, none=True)
    )
    metric: str | None = setting(None, f"kNN similarity (proxy knn): cosine or euclidean (default {_KNN['metric']}).")
    image_size: int | None = setting(None, "Input resolution of every model (default: each model's own).", *_PIXELS)
    own_size_if_needed: bool = setting(False, "Rank a model that cannot take image_size at its own.", option=False)
    feature_batch_size: int | None = setting(
        None, "Images per forward pass of the features (default: 16 on CPU, 256 on GPU).", *_POSITIVE
    )
    models_at_once: int | None = setting(
        None, "Models ranked at the same time (default: up to 4, fewer on a small GPU or a CPU of fewer cores).",
        *at_least(1, none=True),
    )  # fmt: skip

    def validate(self) -> RankConfig:
        """This config, where every setting passes its check and the proxy takes its settings; else a
        :class:`~zoofit.errors.ParameterError` naming the first that does not."""
        check_settings(self)
        self.make_proxy()
        return self

    def make_proxy(self) -> Proxy:
        """The proxy this config names, with its settings, checked."""
        return make_proxy(self.proxy, k=self.k, metric=self.metric)

    def override(self, **values: Any) -> RankConfig:
        """This config with the given values replaced (``None`` values are ignored), unchecked."""
        return changed(self, "ranking", **values)
