"""Ranking through an executor (worker processes, a Ray cluster): a unit per model loads it and extracts its
features wherever it runs; the driver caches them and scores them, so resume and the cache work as here."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace

import numpy as np
import torch

from zoofit.data import ImageSet
from zoofit.device import resolve_device, resolve_precision
from zoofit.errors import ModelError, ZoofitError
from zoofit.estimator import Machine
from zoofit.execute import Executor
from zoofit.progress import Progress
from zoofit.rank.config import RankConfig
from zoofit.rank.features import extract_features, feature_key
from zoofit.rank.models import RankedModel, inputs_of_size, loaded_for_ranking
from zoofit.rank.proxies import Proxy
from zoofit.store import Cache
from zoofit.zoo import ModelSpec

FEATURES = "features"  # the cache's kind


@dataclass(frozen=True)
class FeatureJob:
    """What every model's unit shares: the ranking's settings, where and how it computes, the images, and the
    feature keys the driver's cache already holds (those units return no features; the driver reads its own)."""

    config: RankConfig
    machine: Machine
    images: ImageSet
    known: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ModelFeatures:
    """A model's unit's result: its features (``None``: the driver holds them under ``key``) and facts."""

    key: str
    values: np.ndarray | None
    seconds: float  # extraction
    gflops: float
    input_size: int


def features_of(job: FeatureJob, spec: ModelSpec, progress: Progress) -> ModelFeatures | ModelError:
    """The unit of work of a ranking: load ``spec`` and extract its features; a model that cannot be used is
    returned as its :class:`ModelError` (the ranking skips it and goes on)."""
    device = resolve_device(job.machine.device)
    try:
        cache = Cache(job.machine.cache_path)  # this node's cache
        loaded, prep = loaded_for_ranking(spec, cache, device, job.config)
        key = feature_key(loaded, prep, resolve_precision(job.machine.precision, device), job.images)
        values, seconds = None, 0.0
        if key not in job.known:
            with inputs_of_size(loaded, prep.input_size):
                features = extract_features(
                    loaded, job.images, prep=prep, batch_size=job.config.feature_batch_size, device=device,
                    precision=job.machine.precision, progress=progress,
                )  # fmt: skip
            values, seconds = features.values, features.seconds
        return ModelFeatures(key, values, seconds, loaded.gflops_at(prep.input_size), prep.input_size)
    except Exception as error:  # noqa: BLE001 - any model's own failure skips it (ModelError.failed)
        return ModelError.failed(spec.id, error)


def ranked_on(
    executor: Executor, job: FeatureJob, specs: Sequence[ModelSpec], proxy: Proxy, cache: Cache, progress: Progress
) -> Iterator[tuple[ModelSpec, Future[RankedModel]]]:
    """Each of ``specs`` with the (done) future of its row, as the executor's units finish: its features stored in
    ``cache`` here, and scored here by ``proxy``."""
    images = job.images
    known = frozenset(path.name.split(".")[0] for path in cache.path(FEATURES, "").glob("*.safetensors"))
    for index, output in executor.map(features_of, replace(job, known=known), specs, progress):
        spec, row = specs[index], Future[RankedModel]()
        if isinstance(output, ModelError):
            row.set_exception(output)
            yield spec, row
            continue
        start = time.perf_counter()
        values = output.values if output.values is not None else _stored(cache, output.key, spec)
        if output.values is not None:
            cache.save_tensors(FEATURES, output.key, {FEATURES: torch.from_numpy(output.values)})
        row.set_result(
            RankedModel(
                model=spec.id,
                proxy=proxy.name,
                score=proxy.score(values, images.labels),
                feature_dim=values.shape[1],
                seconds=output.seconds + time.perf_counter() - start,
                images_per_second=None if output.values is None else len(images) / max(output.seconds, 1e-9),
                gflops=output.gflops,
                input_size=output.input_size,
                arch=spec.arch,
                weights=spec.weights,
            )
        )
        yield spec, row


def _stored(cache: Cache, key: str, spec: ModelSpec) -> np.ndarray:
    stored = cache.load_tensors(FEATURES, key)
    if stored is None:
        raise ZoofitError(f"the cached features of model '{spec.id}' went missing during the ranking; rerun it")
    return stored[FEATURES].numpy()
