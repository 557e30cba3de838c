"""The content-addressed cache shared by all runs: converted weights, downloads, features."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from zoofit.store.atomic import write_tensors

CACHE_ENV = "ZOOFIT_CACHE_DIR"


def cache_root() -> Path:
    """``$ZOOFIT_CACHE_DIR``, else ``~/.cache/zoofit``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "zoofit")


def content_key(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable inputs: the identity of a unit of work."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class Cache:
    """Files under one root, in one folder per kind (``weights``, ``downloads``, ``features``)."""

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
