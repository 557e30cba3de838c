"""The content-addressed cache shared by all runs and processes: converted weights, features.

Each entry is made once: under a file lock beside it, by the first process that finds it missing; the others
wait, then read it. The maker writes it under a temporary name of its own and renames it into place."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from zoofit.store.atomic import write_tensors
from zoofit.store.locks import lock_beside, waiting_for

CACHE_ENV = "ZOOFIT_CACHE_DIR"
T = TypeVar("T")


def cache_root() -> Path:
    """``$ZOOFIT_CACHE_DIR``, else ``~/.cache/zoofit``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "zoofit")


def content_key(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable inputs: the identity of a unit of work."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class Cache:
    """Files under one root, in one folder per kind (``weights``, ``features``)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root()

    def path(self, kind: str, name: str) -> Path:
        return self.root / kind / name

    def load_tensors(self, kind: str, key: str) -> dict[str, torch.Tensor] | None:
        """The tensors stored under ``key``, or None where absent or unreadable (then recomputed)."""
        path = self.path(kind, f"{key}.safetensors")
        if not path.is_file():
            return None
        try:
            return load_file(str(path))
        except (SafetensorError, OSError):
            return None

    def save_tensors(self, kind: str, key: str, tensors: dict[str, torch.Tensor]) -> Path:
        path = self.path(kind, f"{key}.safetensors")
        write_tensors(path, tensors)
        return path

    def once(self, path: Path, find: Callable[[], T | None], make: Callable[[], T]) -> T:
        """What ``find`` finds of the entry at ``path``; where it finds nothing, what ``make`` returns after
        writing the entry atomically. Across processes the entry is made once: check, lock, check again, make."""
        if (found := find()) is not None:
            return found
        with waiting_for(lock_beside(path), f"making {path.name}"):
            if (found := find()) is not None:
                return found
            return make()

    def tensors(self, kind: str, key: str, make: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The tensors stored under ``key``; where absent, ``make()``'s, stored once (see :meth:`once`)."""

        def made() -> dict[str, torch.Tensor]:
            tensors = make()
            self.save_tensors(kind, key, tensors)
            return tensors

        return self.once(self.path(kind, f"{key}.safetensors"), lambda: self.load_tensors(kind, key), made)
