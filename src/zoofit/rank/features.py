"""Frozen pre-logit features of one model for a set of images: batched, no-grad, cached on disk per image.

The cache keeps a :class:`~zoofit.store.rows.RowStore` per model key (:func:`rows_key`: the network's identity,
its preprocessing, the precision, the extraction's version; not the images): each image's row under its content
digest. A set whose images were seen before, in any set (a grown data set, the ranking's images again for the
linear probe, a split drawn anew), reads their rows back, and only the others go through the network. They go
through it in full batches (the last one padded), so that an image's row does not depend on the images beside it:
the rows equal, bit for bit, those of one extraction of the whole set at the same batch size and thread count."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from zoofit.data import ImageSet
from zoofit.device import default_batch_size, resolve_device, resolve_precision, to_device
from zoofit.errors import ModelError, ZoofitError
from zoofit.progress import Progress, SilentProgress
from zoofit.store import Cache, content_key, write_text
from zoofit.store.rows import RowStore, first_missing
from zoofit.zoo import LoadedModel, ModelSpec, Preprocessing
from zoofit.zoo.inference import fold_batch_norms, forward_batches, pre_logits

log = logging.getLogger("zoofit")

FEATURES_VERSION = 2  # bump when extraction changes, so stale cache entries are not reused
#: The cache's kind of row stores: one folder per :func:`rows_key`.
ROWS = "feature-rows"
#: The cache's kind of notes that say, before a model is loaded, under which key its ranking's features lie.
NOTES = "ranked"
#: The cache's kind of the whole-set entries zoofit wrote before features were kept per image (read and moved).
WHOLE_SETS = "features"


@dataclass(frozen=True)
class Features:
    values: np.ndarray  # N x D float32
    seconds: float  # extraction time (0 where nothing was extracted)
    extracted: int  # images that went through the network (the others' rows came from the cache)
    key: str = ""  # of the cache's rows (:func:`rows_key`)

    @property
    def cached(self) -> bool:
        """Whether every row came from the cache."""
        return self.extracted == 0


def rows_key(spec: ModelSpec, prep: Preprocessing, precision: str) -> str:
    """The key of ``spec``'s features at ``prep`` and ``precision``, whatever the images."""
    return content_key(ROWS, FEATURES_VERSION, spec.identity(), prep, precision)


def feature_rows(cache: Cache, key: str) -> RowStore:
    """The cache's rows under ``key``."""
    return RowStore(cache.path(ROWS, key), key)


def ranking_note(spec: ModelSpec, image_size: int | None, own_size_if_needed: bool, precision: str) -> str:
    """The key of the note of ``spec``'s features, from what is known before loading it (the ranking's resolution
    and ``precision`` as resolved), which decides its preprocessing and so its features' key."""
    return content_key(NOTES, FEATURES_VERSION, spec.identity(), image_size, own_size_if_needed, precision)


def note_features(cache: Cache, note: str, key: str) -> None:
    """Note in ``cache`` that the features of the ranking ``note`` lie under ``key``."""
    write_text(cache.path(NOTES, f"{note}.txt"), key)


def noted(cache: Cache, note: str, images: ImageSet) -> bool:
    """Whether ``cache`` holds the features of every one of ``images`` for the ranking ``note``."""
    path = cache.path(NOTES, f"{note}.txt")
    return path.is_file() and bool(feature_rows(cache, path.read_text().strip()).held(images.digests()).all())


def held_rows(cache: Cache, digests: np.ndarray) -> dict[str, np.ndarray]:
    """For each model key whose rows ``cache`` holds for some of the images of ``digests``: which."""
    folder = cache.path(ROWS, "")
    stores = [feature_rows(cache, path.name) for path in folder.iterdir() if path.is_dir()] if folder.is_dir() else []
    return {store.key: held for store in stores if (held := store.held(digests)).any()}


def extract_features(
    loaded: LoadedModel,
    images: ImageSet,
    *,
    prep: Preprocessing | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "auto",
    precision: str = "auto",
    cache: Cache | None = None,
    progress: Progress | None = None,
) -> Features:
    """Pre-logit features of ``images``; with ``cache``, each image's row is read back where the same model,
    preprocessing and precision met the same image (by content) before, and only the others are extracted (each
    image once), then kept there. The model runs in the device's memory format (``device.memory_format``), under
    bf16 autocast where the device computes bf16 natively (``precision="auto"``); on a CPU, a copy of it runs,
    with its batch norms folded into its convolutions (``loaded.model``'s weights are left as they are)."""
    prep = prep or loaded.preprocessing
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    seconds: list[float] = []  # the extraction's time, where this call extracts

    def extract(subset: ImageSet) -> np.ndarray:
        model = fold_batch_norms(to_device(loaded.model, device).eval(), prep.input_size)
        start = time.perf_counter()
        with (progress or SilentProgress()).task(loaded.spec.id, total=len(subset)) as task:
            values = forward_batches(
                model, subset.images, prep, pre_logits, device=device, precision=precision,
                batch_size=batch_size or default_batch_size(device), full_batches=True, task=task,
            )  # fmt: skip
        seconds.append(time.perf_counter() - start)
        finite = torch.isfinite(values).all(dim=1)
        if not finite.all():  # not cached: a rerun tries again
            raise ModelError(
                f"model '{loaded.spec.id}' gave non-finite features for {int((~finite).sum())} of {len(finite)} "
                f"images at {prep.input_size} px"
            )
        return values.numpy()

    if cache is None:
        values = extract(images)
        return Features(values, sum(seconds), len(values))
    key, digests = rows_key(loaded.spec, prep, precision), images.digests()
    with feature_rows(cache, key).locked() as store:
        held = store.held(digests)
        if not held.all():
            held = _whole_set_moved(cache, store, whole_set_key(loaded.spec, prep, precision, images), digests, held)
        wanted = first_missing(digests, held)
        if len(wanted):
            store.append(digests[wanted], extract(images.subset(wanted)))
        values = stored_rows(store, digests, loaded.spec.id)
    return Features(values, sum(seconds), len(wanted), key)


def stored_rows(store: RowStore, digests: np.ndarray, model: str) -> np.ndarray:
    """The rows of ``digests``, all of which ``store`` holds."""
    held, values = store.read(digests)
    if values is None or not held.all():
        raise ZoofitError(f"the cached features of model '{model}' went missing during the ranking; rerun it")
    return values


def whole_set_key(spec: ModelSpec, prep: Preprocessing, precision: str, images: ImageSet) -> str:
    """The key under which zoofit kept the features of the whole set ``images`` before it kept rows per image."""
    return content_key(WHOLE_SETS, FEATURES_VERSION, spec.identity(), prep, precision, images.fingerprint)


def _whole_set_moved(
    cache: Cache, store: RowStore, whole_key: str, digests: np.ndarray, held: np.ndarray
) -> np.ndarray:
    """Which of ``digests`` ``store`` holds (``held``), after adding the rows it misses from an earlier zoofit's
    entry of these very images under ``whole_key``, where one is found with a row per image (the entry itself
    is left as it is, for that zoofit)."""
    entry = cache.load_tensors(WHOLE_SETS, whole_key)
    values = None if entry is None else entry.get(WHOLE_SETS)
    if values is None or values.ndim != 2 or len(values) != len(digests):
        return held
    wanted = first_missing(digests, held)
    store.append(digests[wanted], values.numpy()[wanted])
    log.info("cache: moved the rows of %s into %s", whole_key, store.folder)
    return np.ones_like(held)
