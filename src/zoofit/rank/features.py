"""Frozen pre-logit features of one model for a set of images: batched, no-grad, cached on disk."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from zoofit.data import ImageSet
from zoofit.device import default_batch_size, resolve_device, resolve_precision, to_device
from zoofit.errors import ModelError
from zoofit.progress import Progress, SilentProgress
from zoofit.store import Cache, content_key, write_text
from zoofit.zoo import LoadedModel, ModelSpec, Preprocessing
from zoofit.zoo.inference import fold_batch_norms, forward_batches, pre_logits

FEATURES_VERSION = 2  # bump when extraction changes, so stale cache entries are not reused
#: The cache's kind of notes that say, before a model is loaded, under which key its ranking's features lie.
NOTES = "ranked"


@dataclass(frozen=True)
class Features:
    values: np.ndarray  # N x D float32
    seconds: float  # extraction time (0 where it came from the cache)
    cached: bool
    key: str = ""  # in the cache


def feature_key(loaded: LoadedModel, prep: Preprocessing, precision: str, images: ImageSet) -> str:
    return content_key("features", FEATURES_VERSION, loaded.spec.identity(), prep, precision, images.fingerprint)


def ranking_note(spec: ModelSpec, image_size: int | None, own_size_if_needed: bool, precision: str,
                 images: ImageSet) -> str:  # fmt: skip
    """The key of the note of ``spec``'s features for ``images``, from what is known before loading it (the
    ranking's resolution and ``precision`` as resolved), which decides its preprocessing and so its features' key."""
    return content_key(NOTES, FEATURES_VERSION, spec.identity(), image_size, own_size_if_needed, precision,
                       images.fingerprint)  # fmt: skip


def note_features(cache: Cache, note: str, key: str) -> None:
    """Note in ``cache`` that the features of the ranking ``note`` lie under ``key``."""
    write_text(cache.path(NOTES, f"{note}.txt"), key)


def noted(cache: Cache, note: str) -> bool:
    """Whether ``cache`` holds the features of the ranking ``note`` (its note, and the features it names)."""
    path = cache.path(NOTES, f"{note}.txt")
    return path.is_file() and cache.path("features", f"{path.read_text().strip()}.safetensors").is_file()


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
    """Pre-logit features of ``images``; reused from ``cache`` where the same model, preprocessing and
    images were seen before. The model runs in the device's memory format (``device.memory_format``), under
    bf16 autocast where the device computes bf16 natively (``precision="auto"``); on a CPU, a copy of it runs,
    with its batch norms folded into its convolutions (``loaded.model``'s weights are left as they are)."""
    prep = prep or loaded.preprocessing
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    seconds: list[float] = []  # the extraction's time, where this call extracts

    def extract() -> dict[str, torch.Tensor]:
        model = fold_batch_norms(to_device(loaded.model, device).eval(), prep.input_size)
        start = time.perf_counter()
        with (progress or SilentProgress()).task(loaded.spec.id, total=len(images)) as task:
            values = forward_batches(
                model, images.images, prep, pre_logits, device=device, precision=precision,
                batch_size=batch_size or default_batch_size(device), task=task,
            )  # fmt: skip
        seconds.append(time.perf_counter() - start)
        finite = torch.isfinite(values).all(dim=1)
        if not finite.all():  # not cached: a rerun tries again
            raise ModelError(
                f"model '{loaded.spec.id}' gave non-finite features for {int((~finite).sum())} of {len(finite)} "
                f"images at {prep.input_size} px"
            )
        return {"features": values}

    key = feature_key(loaded, prep, precision, images)
    values = extract() if cache is None else cache.tensors("features", key, extract)
    return Features(values["features"].numpy(), sum(seconds), not seconds, key)
