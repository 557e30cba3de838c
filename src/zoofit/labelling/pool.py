"""The unlabelled pool: images from a folder, a list of files, any ``--data`` form (its labels ignored) or an
:class:`ImageSet`, decoded a chunk at a time so that a pool of any size streams through the ensemble."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoofit.data import ImageSet, image_files, load_source
from zoofit.data.dataset import LazyImages
from zoofit.data.decode import DEFAULT_MAX_SIDE, decode_many
from zoofit.errors import ZoofitError

#: What a pool may be given as: a folder or ``--data`` string, image files, or images in memory.
PoolLike = str | Path | Sequence[str | Path] | ImageSet


@dataclass(frozen=True)
class Part:
    """Images of one split of a pool: files, or an :class:`ImageSet`; ``prefix`` names the images of a set."""

    prefix: str
    images: list[Path] | ImageSet

    def __len__(self) -> int:
        return len(self.images)

    def read(self, start: int, stop: int, max_side: int) -> list[np.ndarray | None]:
        """Images ``start:stop`` decoded (``None``: unreadable, with a warning naming it)."""
        images = self.images
        if isinstance(images, list):
            return decode_many(images[start:stop], max_side=max_side)
        if isinstance(images.images, LazyImages):
            lazy = images.images
            return decode_many(lazy.fetch(lazy.indices[start:stop]), max_side=max_side)
        return [images.images[i] for i in range(start, stop)]

    def name(self, index: int) -> str:
        """A file's path, else ``PREFIX/INDEX`` (or the encoded image's own name)."""
        images = self.images
        if isinstance(images, list):
            return str(images[index])
        if isinstance(images.images, LazyImages):
            (file,) = images.images.fetch(images.images.indices[index : index + 1])
            return str(file)
        return f"{self.prefix}/{index}"


class Pool:
    """The pool's images in order over its parts."""

    def __init__(self, parts: Sequence[Part], description: str, max_side: int = DEFAULT_MAX_SIDE) -> None:
        self.parts = [part for part in parts if len(part)]
        self.description = description
        self.max_side = max_side
        if not self.parts:
            raise ZoofitError(f"the pool {description} holds no images; give a folder or data with images to label")
        self.starts = np.cumsum([0, *(len(part) for part in self.parts)])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def chunks(self, size: int) -> Iterator[tuple[int, list[np.ndarray | None]]]:
        """The images decoded ``size`` at a time (within a part), in order, each chunk with its first index."""
        for first, part in zip(self.starts, self.parts, strict=False):
            for start in range(0, len(part), size):
                yield int(first) + start, part.read(start, min(start + size, len(part)), self.max_side)

    def name(self, index: int) -> str:
        which = int(np.searchsorted(self.starts, index, side="right") - 1)
        return self.parts[which].name(index - int(self.starts[which]))


def open_pool(pool: PoolLike) -> Pool:
    """``pool`` as a :class:`Pool`: a folder (every image beneath it, class folders or not), image files, any
    other ``--data`` form (all its splits, labels ignored) or an :class:`ImageSet`."""
    if isinstance(pool, ImageSet):
        return Pool([Part("pool", pool)], "given")
    if not isinstance(pool, str | Path):
        return Pool([Part("", image_files([Path(p) for p in pool]))], f"of {len(pool)} files")
    if Path(pool).is_dir():
        return Pool([Part("", image_files([Path(pool)]))], f"'{pool}'")
    data = load_source(str(pool))
    splits = {"train": data.train, "val": data.val, "test": data.test}
    return Pool([Part(f"{pool}#{name}", images) for name, images in splits.items() if images], f"'{pool}'")
