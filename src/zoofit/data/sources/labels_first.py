"""Sources that read labels first: every split's labels at once, its images only where the protocol keeps them.

A dataset library's splits (``train``, ``validation``, ``test``, ...) map to zoofit's by :func:`zoofit_split`;
:func:`lazy_source_data` turns each split's labels and its way of reading images into :class:`SourceData` whose
images are :class:`~zoofit.data.dataset.LazyImages`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from zoofit.data.dataset import ImageSet, LazyImages, SourceData, encode_labels
from zoofit.data.decode import ImageFile
from zoofit.data.skips import Skipped
from zoofit.errors import ZoofitError

log = logging.getLogger("zoofit")

#: A dataset's split names, as zoofit calls them.
SPLIT_NAMES = {"train": "train", "validation": "val", "val": "val", "valid": "val", "test": "test"}


@dataclass(frozen=True)
class LabelledSplit:
    """One split: each image's class name, ``fetch(indices)``, which reads the images at those positions
    (nothing decoded), and the items it left out (a sample without a label or an image)."""

    labels: list[str]
    fetch: Callable[[np.ndarray], list[ImageFile]]
    skipped: tuple[Skipped, ...] = ()


def require(module: str, form: str) -> ModuleType:
    """The library ``module`` that the data form ``form`` reads with; a one-line error where it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ZoofitError(f"{form} data needs the {module} library: pip install 'zoofit[hub]'") from error


def zoofit_split(name: str) -> str | None:
    """``train``, ``val`` or ``test`` for a dataset's split ``name``; None for a split zoofit does not use."""
    return SPLIT_NAMES.get(name.lower())


def mapped_splits(names: Sequence[str], where: str) -> dict[str, str]:
    """zoofit's split for each of the dataset's split ``names`` that maps to one (``{dataset: zoofit}``), one
    each; a one-line error naming ``where`` when none does."""
    mapped: dict[str, str] = {}
    for name in names:
        split = zoofit_split(name)
        if split is None:
            log.info("%s: not using split '%s' (zoofit reads train, validation/val/valid and test)", where, name)
        elif split in mapped.values():
            log.warning("%s: not using split '%s': another split is zoofit's %s split", where, name, split)
        else:
            mapped[name] = split
    if not mapped:
        raise ZoofitError(
            f"{where} has no split zoofit reads (it has {', '.join(names) or 'none'}); "
            "name them train, validation (or val, valid) and test"
        )
    return mapped


def lazy_source_data(
    name: str, splits: dict[str, LabelledSplit], where: str, declared: Sequence[str] | None = None
) -> SourceData:
    """The ``splits`` (by zoofit's names) as :class:`SourceData` with lazy images. Classes are those of the
    training split (of all splits where there is none, as for a test set alone), in the ``declared`` order where
    given; a split that is empty is a one-line error naming ``where``, and one whose every item was skipped (a
    test set without labels) is left out, its skip recorded."""
    skipped = tuple(skip for labelled in splits.values() for skip in labelled.skipped)
    for split, labelled in splits.items():
        if not labelled.labels and not labelled.skipped:
            raise ZoofitError(f"{where}: its {split} split is empty; give labelled images in every split")
        if not labelled.labels:
            log.warning("%s: not using its %s split: it has no labelled items", where, split)
    splits = {split: labelled for split, labelled in splits.items() if labelled.labels}
    if not splits:
        raise ZoofitError(f"{where} has no labelled items; give a label to every image")
    known = splits["train"].labels if "train" in splits else [label for s in splits.values() for label in s.labels]
    others = {split: splits[split].labels if split in splits else None for split in ("val", "test")}
    class_names, train_labels, encoded = encode_labels(known, order=declared, **others)

    def image_set(split: str, labels: np.ndarray | None) -> ImageSet | None:
        if labels is None:
            return None
        return ImageSet(LazyImages(splits[split].fetch, np.arange(len(labels))), labels, class_names)

    if "train" in splits:
        train = image_set("train", train_labels)
    else:  # a test set alone: no training images, which the protocol refuses and a shifted domain does not need
        train = ImageSet(LazyImages(lambda indices: [], np.zeros(0, dtype=np.int64)), np.zeros(0), class_names)
    return SourceData(
        name, train, image_set("val", encoded["val"]), image_set("test", encoded["test"]), skipped=skipped
    )
