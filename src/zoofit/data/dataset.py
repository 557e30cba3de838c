"""The one dataset type every source becomes: decoded images, integer labels, class names."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from zoofit.data.decode import ImageFile, decode_many
from zoofit.data.skips import Skipped
from zoofit.errors import ZoofitError
from zoofit.progress import Progress


@dataclass(frozen=True, eq=False)
class LazyImages:
    """Images not decoded yet: positions ``indices`` of a source's encoded images, which ``fetch(indices)`` reads
    (files or bytes, in that order, nothing decoded). The protocol narrows them with :meth:`take`, and only the
    images it keeps are decoded (:meth:`ImageSet.decoded`)."""

    fetch: Callable[[np.ndarray], list[ImageFile]]
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    def take(self, positions: np.ndarray) -> LazyImages:
        return LazyImages(self.fetch, self.indices[np.asarray(positions, dtype=np.int64)])


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Decoded images with labels.

    ``images`` is either one uint8 array ``N x H x W x C`` (all images the same size) or a list of
    uint8 arrays ``H x W x C``; ``C`` is 1 (grey) or 3 (RGB). ``labels[i]`` indexes ``class_names``. A source
    that reads labels first gives :class:`LazyImages` instead, which :meth:`decoded` decodes.
    """

    images: np.ndarray | Sequence[np.ndarray] | LazyImages
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", np.asarray(self.labels, dtype=np.int64))
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def largest_area(self) -> int:
        """Pixels (height x width) of the largest image."""
        if isinstance(self.images, np.ndarray):
            return int(self.images.shape[1] * self.images.shape[2])
        return max((int(image.shape[0] * image.shape[1]) for image in self.images), default=0)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    def subset(self, indices: np.ndarray) -> ImageSet:
        indices = np.asarray(indices, dtype=np.int64)
        if isinstance(self.images, LazyImages):
            images: np.ndarray | list[np.ndarray] | LazyImages = self.images.take(indices)
        elif isinstance(self.images, np.ndarray):
            images = self.images[indices]
        else:
            images = [self.images[i] for i in indices]
        return ImageSet(images, self.labels[indices], self.class_names)

    def decoded(self, split: str, max_side: int, progress: Progress | None = None) -> tuple[ImageSet, Skipped | None]:
        """This set with its :class:`LazyImages` decoded, no larger than ``max_side`` (itself where they are
        decoded already), and the unreadable images left out (each also a warning naming it)."""
        if not isinstance(self.images, LazyImages):
            return self, None
        files = self.images.fetch(self.images.indices)
        images = decode_many(files, max_side=max_side, progress=progress, description=f"decoding {split} images")
        kept = np.array([image is not None for image in images], dtype=bool)
        if len(kept) and not kept.any():
            raise ZoofitError(f"none of the {len(kept)} {split} images could be read (see the warnings)")
        unreadable = Skipped.of(
            f"the {split} split", "unreadable images", [str(f) for f, k in zip(files, kept, strict=True) if not k]
        )
        return ImageSet(
            stack_if_uniform([i for i in images if i is not None]), self.labels[kept], self.class_names
        ), unreadable

    def batch(self, indices: Sequence[int]) -> np.ndarray | list[np.ndarray]:
        """The images at ``indices``: one stacked array where the set is uniform, else a list."""
        if isinstance(self.images, np.ndarray):
            return self.images[np.asarray(indices)]
        return [self.images[i] for i in indices]

    @cached_property
    def fingerprint(self) -> str:
        """A content hash of pixels, labels and class names (stable across runs and machines)."""
        if isinstance(self.images, LazyImages):
            raise ValueError("decode the images (ImageSet.decoded) before taking their fingerprint")
        digest = hashlib.sha256()
        digest.update("\x1f".join(self.class_names).encode())
        digest.update(self.labels.tobytes())
        if isinstance(self.images, np.ndarray):
            digest.update(str(self.images.shape).encode())
            digest.update(np.ascontiguousarray(self.images).tobytes())
        else:
            for image in self.images:
                digest.update(str(image.shape).encode())
                digest.update(np.ascontiguousarray(image).tobytes())
        return digest.hexdigest()[:16]

    def digests(self) -> np.ndarray:
        """Each image's :func:`pixel_digest`, ``N x 16`` uint8 (how a run tells which images it holds)."""
        if isinstance(self.images, LazyImages):
            raise ValueError("decode the images (ImageSet.decoded) before taking their digests")
        return np.array([np.frombuffer(pixel_digest(image), np.uint8) for image in self.images]).reshape(-1, 16)

    @staticmethod
    def concat(first: ImageSet, second: ImageSet) -> ImageSet:
        if first.class_names != second.class_names:
            raise ValueError("cannot concatenate image sets with different class names")
        uniform = isinstance(first.images, np.ndarray) and isinstance(second.images, np.ndarray)
        if uniform and first.images.shape[1:] == second.images.shape[1:]:
            images: np.ndarray | list[np.ndarray] = np.concatenate([first.images, second.images])
        else:
            images = list(first.images) + list(second.images)
        return ImageSet(images, np.concatenate([first.labels, second.labels]), first.class_names)


def pixel_digest(image: np.ndarray) -> bytes:
    """A 16-byte hash of a decoded image's size and pixels, a grey image hashed as its RGB form (so an image reads
    the same from a built-in's grey arrays and from a PNG file of it)."""
    if image.ndim == 2 or image.shape[2] == 1:
        image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)
    digest = hashlib.blake2b(str(image.shape).encode(), digest_size=16)
    digest.update(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
    return digest.digest()


def stack_if_uniform(images: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """One array when every image has the same shape (faster batching), else the list itself."""
    if images and all(image.shape == images[0].shape for image in images):
        return np.stack(images)
    return images


@dataclass(frozen=True)
class SourceData:
    """What a source yields: all labelled training data, plus validation and test splits where given, the
    training images per class its protocol draws where the user asks for no size (None: all of them), and what
    it left out."""

    name: str
    train: ImageSet
    val: ImageSet | None = None
    test: ImageSet | None = None
    default_train_per_class: int | None = None
    skipped: tuple[Skipped, ...] = ()


@dataclass(frozen=True)
class Splits:
    """The protocol's splits: ``train`` and ``val`` for fitting and selection, ``test`` for evaluation; and the
    items the source and the decoding left out (which the fingerprint does not hold: the images do)."""

    name: str
    train: ImageSet
    val: ImageSet
    test: ImageSet | None
    skipped: tuple[Skipped, ...] = ()

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names

    @cached_property
    def ranking_set(self) -> ImageSet:
        """All training images (train + validation), which the kNN ranking uses, as in the paper."""
        return ImageSet.concat(self.train, self.val)

    @cached_property
    def fingerprint(self) -> str:
        """A content hash of the three splits (which images train, validate and test)."""
        parts = (self.train.fingerprint, self.val.fingerprint, self.test.fingerprint if self.test else "")
        return hashlib.sha256("/".join(parts).encode()).hexdigest()[:16]

    def describe(self) -> str:
        test = f", {len(self.test)} test" if self.test is not None else ""
        return (
            f"{self.name}: {len(self.class_names)} classes, {len(self.train)} train, {len(self.val)} validation{test}"
        )


def encode_labels(
    train_labels: Sequence[str], *, order: Sequence[str] | None = None, **other_splits: Sequence[str] | None
) -> tuple[tuple[str, ...], np.ndarray, dict[str, np.ndarray | None]]:
    """Map string labels to indices of the training classes, sorted, or in the ``order`` the data declares them
    (the classes it declares but never trains on left out); other splits must use known classes."""
    present = set(train_labels)
    declared = [name for name in dict.fromkeys(order or ()) if name in present]
    class_names = (*declared, *sorted(present.difference(declared), key=_natural_key))
    index = {name: i for i, name in enumerate(class_names)}
    encoded: dict[str, np.ndarray | None] = {}
    for split, labels in other_splits.items():
        if labels is None:
            encoded[split] = None
            continue
        unknown = sorted(set(labels) - index.keys())
        if unknown:
            raise ZoofitError(
                f"the {split} split has classes that the training data lacks: {', '.join(unknown[:5])}; "
                "every class needs training images"
            )
        encoded[split] = np.array([index[label] for label in labels], dtype=np.int64)
    return class_names, np.array([index[label] for label in train_labels], dtype=np.int64), encoded


def _natural_key(name: str) -> tuple[int, int | str]:
    """Sort numeric class names numerically ("2" before "10") and the rest alphabetically."""
    return (0, int(name)) if name.isdigit() else (1, name)
