"""Rows keyed by image content: one vector per image (a model's features of it), stored once whichever image sets
it was made for, so that a grown set reads back the rows of the images seen before and makes only the new ones.

A store is a folder of shards. Each shard is one safetensors file holding ``digests`` (K x 16 uint8: the images'
:func:`~zoofit.data.dataset.pixel_digest`) and ``rows`` (K x D float32), with the store's key in its metadata,
named by a hash of its digests and written atomically (temporary name, then rename): a shard is whole or absent.
Each call that makes rows appends one shard; no row is copied per set. A shard is checked when read against what
it says it holds: the store's key, its name against its digests, as many rows as digests, each digest once, the
store's width (safetensors itself refuses a file cut short or grown). One that fails is left out with a warning
and, within :meth:`RowStore.locked`, removed: its images count as missing, so their rows are made again, never
used. Whoever decides what to make reads and appends within :meth:`RowStore.locked` (a file lock beside the
folder), so that across processes a row is made once."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from zoofit.errors import first_line
from zoofit.store.atomic import write_tensors
from zoofit.store.locks import lock_beside, waiting_for

log = logging.getLogger("zoofit")

DIGESTS, ROWS = "digests", "rows"
DIGEST_BYTES = 16
SUFFIX = ".safetensors"


class BadShard(ValueError):
    """A shard that does not hold what it says it holds."""


class RowStore:
    """The rows of one producer (a model at one preprocessing and precision), under ``key``, in ``folder``."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = Path(folder)
        self.key = key
        self._locked = False

    @contextmanager
    def locked(self) -> Iterator[RowStore]:
        """Within: this process alone reads to decide, appends and removes bad shards (others wait)."""
        with waiting_for(lock_beside(self.folder), f"the cached rows {self.folder.name}"):
            self._locked = True
            try:
                yield self
            finally:
                self._locked = False

    def held(self, digests: np.ndarray) -> np.ndarray:
        """Whether each of ``digests`` (N x 16) has a row here (a look: the shards' digests are read, not rows)."""
        index = self._index()
        return np.array([bytes(digest) in index for digest in digests], dtype=bool)

    def read(self, digests: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Which of ``digests`` have a row here (N bools), and the rows (N x D float32, zeros where missing;
        ``None`` where none has one)."""
        index = self._index()
        by_shard: dict[Path, tuple[list[int], list[int]]] = {}
        for position, digest in enumerate(digests):
            if (found := index.get(bytes(digest))) is not None:
                positions, rows = by_shard.setdefault(found[0], ([], []))
                positions.append(position)
                rows.append(found[1])
        held = np.zeros(len(digests), dtype=bool)
        values: np.ndarray | None = None
        for path, (positions, rows) in by_shard.items():
            with safe_open(str(path), framework="pt") as handle:
                read = handle.get_slice(ROWS)[rows].numpy()
            if values is None:
                values = np.zeros((len(digests), read.shape[1]), dtype=np.float32)
            values[positions] = read
            held[positions] = True
        return held, values

    def append(self, digests: np.ndarray, rows: np.ndarray) -> None:
        """Add ``rows`` (N x D) of the images of ``digests`` (N x 16, each once) as one shard (atomic)."""
        if len(digests) != len(rows) or len(np.unique(_as_keys(digests))) != len(digests):
            raise ValueError(f"{len(digests)} digests (each once) for {len(rows)} rows")
        if len(digests):
            tensors = {DIGESTS: torch.from_numpy(np.ascontiguousarray(digests, dtype=np.uint8)),
                       ROWS: torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))}  # fmt: skip
            write_tensors(self.folder / shard_name(digests), tensors, {"key": self.key})

    def _index(self) -> dict[bytes, tuple[Path, int]]:
        """Each digest's (shard, row), over the shards that pass their checks (the first shard of a digest wins)."""
        index: dict[bytes, tuple[Path, int]] = {}
        width: int | None = None
        for path in sorted(self.folder.glob(f"*{SUFFIX}")):
            try:
                digests, width = self._checked(path, width)
            except FileNotFoundError:  # removed as bad by another process meanwhile
                continue
            except (BadShard, SafetensorError) as problem:
                if self._locked:  # only a look where not locked: the locked reader repairs
                    log.warning("cache: %s is damaged (%s); its rows are made again", path, first_line(problem))
                    path.unlink(missing_ok=True)
                continue
            for row, digest in enumerate(digests):
                index.setdefault(bytes(digest), (path, row))
        return index

    def _checked(self, path: Path, width: int | None) -> tuple[np.ndarray, int]:
        """The digests of the shard at ``path`` and its rows' width, after checking it against what it says."""
        with safe_open(str(path), framework="pt") as handle:
            key = (handle.metadata() or {}).get("key")
            if key != self.key or set(handle.keys()) != {DIGESTS, ROWS}:
                raise BadShard(f"it holds {sorted(handle.keys())} for {key!r}, not digests and rows for {self.key!r}")
            digests = handle.get_tensor(DIGESTS).numpy()
            rows = handle.get_slice(ROWS)
            shape, dtype = rows.get_shape(), rows.get_dtype()
        if digests.dtype != np.uint8 or digests.ndim != 2 or digests.shape[1] != DIGEST_BYTES:
            raise BadShard(f"its digests are {digests.dtype} {list(digests.shape)}, not uint8 N x {DIGEST_BYTES}")
        if dtype != "F32" or len(shape) != 2 or shape[0] != len(digests) or width not in (None, shape[1]):
            raise BadShard(f"its rows are {dtype} {shape}, not F32 {len(digests)} x {width or 'D'}")
        if shard_name(digests) != path.name:
            raise BadShard("its name is not its digests' hash")
        if len(np.unique(_as_keys(digests))) != len(digests):
            raise BadShard("a digest appears twice")
        return digests, shape[1]


def shard_name(digests: np.ndarray) -> str:
    """A shard's file name: a hash of its digests (the same rows appended twice land in one file)."""
    return hashlib.blake2b(np.ascontiguousarray(digests, dtype=np.uint8).tobytes(), digest_size=10).hexdigest() + SUFFIX


def first_missing(digests: np.ndarray, held: np.ndarray) -> np.ndarray:
    """The positions of the images of ``digests`` (N x 16) not ``held``, each image once (the first of identical
    ones), in order."""
    _, first = np.unique(_as_keys(digests), return_index=True)
    first = np.sort(first)
    return first[~held[first]]


def _as_keys(digests: np.ndarray) -> np.ndarray:
    """``digests`` (N x 16) as N comparable items."""
    return np.ascontiguousarray(digests, dtype=np.uint8).reshape(-1, DIGEST_BYTES).view(f"V{DIGEST_BYTES}").ravel()
