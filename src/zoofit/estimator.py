"""What zoofit's estimators share, declared once: which of a zoo's models they use (:class:`ZooSelection`) and where
and how those compute (:class:`Machine`), each setting with its help (the CLI's option groups read them); and
scikit-learn's parameter protocol (``get_params``, ``set_params``, :func:`clone`), so that an estimator is copied
with other parameters instead of edited.

>>> ZooSelection(models="resnet18, vit_small", licenses=["mit"])
ZooSelection(models=('resnet18', 'vit_small'), exclude=None, licenses=('mit',))
>>> shared_settings(None, None, {"device": "cpu", "proxy": "logme"})
(ZooSelection(models=None, exclude=None, licenses=None), Machine(device='cpu', precision='auto', cache_dir=None), \
{'proxy': 'logme'})

This module imports no torch.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from zoofit.settings import setting

E = TypeVar("E", bound="Estimator")


def _names(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...] | None:
    """Names given as a list or as comma-separated text, as a tuple (None where there are none)."""
    names = value.split(",") if isinstance(value, str) else (value or ())
    kept = tuple(name.strip() for name in names if name.strip())
    return kept or None


@dataclass(frozen=True)
class ZooSelection:
    """Which of a zoo's models: ``models`` by id (None: all), without those whose id matches a shell pattern of
    ``exclude``, and only those under one of ``licenses`` (None: any); each a list or comma-separated text."""

    models: tuple[str, ...] | None = setting(None, "Comma-separated model ids of the zoo (default: all).")
    exclude: tuple[str, ...] | None = setting(
        None, "Comma-separated shell patterns of model ids to leave out of the zoo."
    )
    licenses: tuple[str, ...] | None = setting(
        None, "Keep only models under these comma-separated licences (e.g. apache-2.0,mit,bsd-3-clause)."
    )

    def __post_init__(self) -> None:
        for item in fields(self):
            object.__setattr__(self, item.name, _names(getattr(self, item.name)))


@dataclass(frozen=True)
class Machine:
    """Where and how the models compute: the ``device``, the ``precision`` and the ``cache_dir`` of features and
    converted weights (None: ``$ZOOFIT_CACHE_DIR`` or ``~/.cache/zoofit``)."""

    device: str = setting("auto", "auto, cpu, cuda or cuda:N.")
    precision: str = setting("auto", "auto (bf16 where the device has it natively), fp32 or bf16.")
    cache_dir: Path | None = setting(None, "Cache folder (default $ZOOFIT_CACHE_DIR or ~/.cache/zoofit).")

    @property
    def cache_path(self) -> Path | None:
        """The cache folder as a path (None: the default)."""
        return Path(self.cache_dir) if self.cache_dir else None


def shared_settings(
    selection: ZooSelection | None, machine: Machine | None, settings: dict[str, Any]
) -> tuple[ZooSelection, Machine, dict[str, Any]]:
    """An estimator's ``selection`` and ``machine`` with those of the keyword ``settings`` that are theirs
    (``device="cpu"``, ``models=[...]``) put in, and the ``settings`` left."""
    groups = [selection or ZooSelection(), machine or Machine()]
    for index, group in enumerate(groups):
        own = {item.name for item in fields(group)}
        groups[index] = replace(group, **{name: settings[name] for name in own & settings.keys()})
    taken = {item.name for group in groups for item in fields(group)}
    return groups[0], groups[1], {name: value for name, value in settings.items() if name not in taken}


class Estimator:
    """scikit-learn's parameter protocol: ``__init__`` stores each of its parameters under its own name."""

    @classmethod
    def parameter_names(cls) -> list[str]:
        """The parameters of ``__init__``, in order (not its ``**settings``)."""
        parameters = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in parameters if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD]

    def get_params(self) -> dict[str, Any]:
        """The parameters this estimator was made with (what :func:`clone` passes on)."""
        return {name: getattr(self, name) for name in self.parameter_names()}

    def set_params(self: E, **params: Any) -> E:
        """This estimator with the given parameters (or settings ``__init__`` takes by keyword) replaced; what
        it learned stays."""
        vars(self).update(vars(clone(self, **params)))
        return self


def clone(estimator: E, **params: Any) -> E:
    """A new estimator of ``estimator``'s kind and parameters, unfitted, with the given ``params`` (or settings
    its ``__init__`` takes by keyword, such as ``device``) replaced: scikit-learn's ``clone`` and ``set_params``."""
    return type(estimator)(**{**estimator.get_params(), **params})
