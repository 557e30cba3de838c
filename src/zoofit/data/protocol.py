"""The low-data protocol: a stratified, seeded training subset, then a stratified train/validation split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoofit.data.dataset import ImageSet, SourceData, Splits
from zoofit.data.decode import DEFAULT_MAX_SIDE
from zoofit.data.skips import happened
from zoofit.data.sources import check_source, load_source
from zoofit.errors import ParameterError, ZoofitError
from zoofit.progress import Progress
from zoofit.settings import at_least, between_0_and_1, check_settings, setting

#: A number of training images to draw: at least 1, or None (all).
_COUNT = (at_least(1, none=True)[0], "must be a positive number")
_PIXELS = (at_least(16)[0], "must be at least 16 pixels")


@dataclass(frozen=True)
class DataConfig:
    """How to read the data and cut it into splits.

    ``train_per_class`` / ``train_size`` draw a stratified subset of the training data (at most one of
    them); ``val_fraction`` of it becomes the validation split unless the source gives one. Where the source
    has no test split, ``test_fraction`` of the training data (before subsetting) is held out as one.
    """

    source: str
    train_per_class: int | None = setting(None, "Draw this many training images per class.", *_COUNT)
    train_size: int | None = setting(None, "Draw this many training images (stratified).", *_COUNT)
    val_fraction: float = setting(0.2, "Share of the training data held out for validation.", *between_0_and_1())
    seed: int = setting(0, "Seed of the data draws.", option=False)  # a run's seed seeds its trials too
    max_side: int = setting(DEFAULT_MAX_SIDE, "Largest side of a decoded image.", *_PIXELS, option=False)
    test_fraction: float | None = setting(
        None, "Hold out this share as the test split where the data has none.", *between_0_and_1(none=True)
    )

    def validate(self) -> None:
        """Check the settings, and that the source names something to read (no image is read)."""
        if self.train_per_class is not None and self.train_size is not None:
            raise ParameterError("give {train_per_class} or {train_size}, not both")
        check_settings(self)
        check_source(self.source)


def load_data(
    source: str | DataConfig,
    *,
    train_per_class: int | None = None,
    train_size: int | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    test_fraction: float | None = None,
    progress: Progress | None = None,
) -> Splits:
    """Read a data source and apply the low-data protocol.

    Examples
    --------
    >>> splits = load_data("fashion-mnist")            # doctest: +SKIP
    >>> splits.describe()                              # doctest: +SKIP
    'fashion-mnist: 10 classes, 800 train, 200 validation, 10000 test'
    """
    config = (
        source
        if isinstance(source, DataConfig)
        else DataConfig(source, train_per_class, train_size, val_fraction, seed, test_fraction=test_fraction)
    )
    config.validate()
    data = load_source(config.source, max_side=config.max_side, progress=progress)
    return make_splits(data, config, progress=progress)


def make_splits(data: SourceData, config: DataConfig, *, progress: Progress | None = None) -> Splits:
    """Subsample the training data, then split off validation (deterministic for a given seed); a source that
    read its labels first has only the images kept decoded now."""
    present = np.flatnonzero(data.train.class_counts())
    if len(present) < 2:
        found = ", ".join(f"'{data.train.class_names[i]}'" for i in present) or "none"
        raise ZoofitError(f"'{data.name}' has fewer than 2 classes with training images (found {found}); add more")
    rng = np.random.default_rng(config.seed)
    test = data.test
    pool = data.train
    if test is None and config.test_fraction is not None:
        test_mask = stratified_holdout(pool.labels, config.test_fraction, rng)
        pool, test = pool.subset(np.flatnonzero(~test_mask)), pool.subset(np.flatnonzero(test_mask))
    per_class = config.train_per_class
    if per_class is None and config.train_size is None:
        per_class = data.default_train_per_class
    if per_class is not None:
        pool = pool.subset(stratified_per_class(pool, per_class, rng))
    elif config.train_size is not None:
        pool = pool.subset(stratified_sample(pool, config.train_size, rng))
    if data.val is not None:
        train, val = pool, data.val
    else:
        val_mask = stratified_holdout(pool.labels, config.val_fraction, rng)
        train, val = pool.subset(np.flatnonzero(~val_mask)), pool.subset(np.flatnonzero(val_mask))

    named = {"train": train, "validation": val, **({"test": test} if test is not None else {})}
    decoded = {split: images.decoded(split, config.max_side, progress) for split, images in named.items()}
    unreadable = happened(*(skip for _, skip in decoded.values()))
    test_set = decoded["test"][0] if test is not None else None
    return Splits(data.name, decoded["train"][0], decoded["validation"][0], test_set, (*data.skipped, *unreadable))


def stratified_per_class(images: ImageSet, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``per_class`` random images of every class present, in dataset order."""
    chosen = []
    for label, count in enumerate(images.class_counts()):
        if count == 0:
            continue
        if count < per_class:
            raise ParameterError.of(
                "train_per_class",
                f"{per_class} is larger than class '{images.class_names[label]}' ({count} images); lower it",
            )
        chosen.append(rng.permutation(np.flatnonzero(images.labels == label))[:per_class])
    return np.sort(np.concatenate(chosen))


def stratified_sample(images: ImageSet, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``size`` images with class proportions kept (largest-remainder rounding)."""
    counts = images.class_counts()
    if size > len(images):
        raise ParameterError.of("train_size", f"{size} is larger than the training data ({len(images)} images)")
    exact = counts * size / counts.sum()
    take = np.floor(exact).astype(int)
    shortfall = size - take.sum()
    take[np.argsort(-(exact - take), kind="stable")[:shortfall]] += 1
    chosen = [rng.permutation(np.flatnonzero(images.labels == c))[:n] for c, n in enumerate(take) if n]
    return np.sort(np.concatenate(chosen))


def stratified_holdout(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask holding out ``fraction`` of each class (at least one image of every class with two
    or more, never its last one)."""
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue
        held = min(max(1, round(len(members) * fraction)), len(members) - 1)
        mask[rng.permutation(members)[:held]] = True
    return mask
