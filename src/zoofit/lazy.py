"""Names of a package imported on first use (PEP 562), so that importing the package loads neither torch nor timm."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_names(namespace: dict[str, Any], homes: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list]]:
    """The ``__getattr__`` and ``__dir__`` of the package whose ``globals()`` is ``namespace``: each name of
    ``homes`` is imported from its module there on first use, and kept."""

    def __getattr__(name: str) -> object:
        if name not in homes:
            raise AttributeError(f"module '{namespace['__name__']}' has no attribute '{name}'")
        value = namespace[name] = getattr(import_module(homes[name]), name)
        return value

    def __dir__() -> list[str]:
        return sorted([*namespace, *homes])

    return __getattr__, __dir__
