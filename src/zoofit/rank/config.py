"""How a zoo is ranked: the proxy and its settings, the resolution and the batches of the feature passes, each
declared once with :func:`~zoofit.settings.setting` (the CLI's options, help, defaults and checks derive from it).

This module imports no torch: the CLI builds its options from it before torch loads.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from zoofit.errors import ParameterError
from zoofit.rank.proxies import PROXIES, Proxy, make_proxy, settings_of
from zoofit.settings import at_least, changed, check_settings, option_fields, parse_size, setting

_PIXELS = (at_least(16, none=True)[0], "must be at least 16 pixels")
_POSITIVE = (at_least(1, none=True)[0], "must be positive")


@dataclass(frozen=True)
class RankConfig:
    """How to rank. ``proxy`` names one of :data:`~zoofit.rank.proxies.PROXIES`, and ``proxy_settings`` gives
    settings of its own (``{"k": 5}`` for the kNN; ``None``: its defaults). ``image_size`` ``None`` ranks each
    model at its own resolution; where ``own_size_if_needed``, a model that cannot take ``image_size`` (a
    fixed-size ViT) is ranked at its own instead of being skipped.

    >>> RankConfig().override(proxy="knn", k=5).make_proxy().title
    'leave-one-out 5-NN (cosine) accuracy'
    """

    proxy: str = setting("knn", "Ranking proxy.", PROXIES.get)
    proxy_settings: dict[str, Any] | None = setting(
        None, "The proxy's own settings (None: its defaults).", option=False
    )
    image_size: int | None = setting(
        None, "Input resolution of every model, or own (default: each model's own).", *_PIXELS, parse=parse_size
    )
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
        return make_proxy(self.proxy, **(self.proxy_settings or {}))

    def override(self, **values: Any) -> RankConfig:
        """This config with the given values replaced (``None`` values are ignored), unchecked; a name that is not
        a ranking setting is one of the proxy's (``k=5``)."""
        own = {f.name for f in fields(self)}
        config = changed(self, "ranking", **{name: value for name, value in values.items() if name in own})
        given = {name: value for name, value in values.items() if name not in own and value is not None}
        if not given:
            return config
        kind = PROXIES.get(config.proxy)
        unknown = sorted(set(given) - {name for name, _ in option_fields(kind)})
        if unknown:
            ranking = ", ".join(name for name, _ in option_fields(RankConfig))
            raise ParameterError.of(
                unknown[0], f"is neither a ranking setting ({ranking}) nor one of the {config.proxy} proxy's "
                f"({settings_of(kind)})",
            )  # fmt: skip
        return replace(config, proxy_settings={**(config.proxy_settings or {}), **given})
