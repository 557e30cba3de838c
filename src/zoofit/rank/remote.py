"""Ranking through an executor (worker processes, a Ray cluster): a unit per model loads it and extracts its
features wherever it runs; the driver caches them and scores them, so resume and the cache work as here."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace

import numpy as np

from zoofit.data import ImageSet
from zoofit.device import resolve_device, resolve_precision
from zoofit.errors import ModelError
from zoofit.estimator import Machine
from zoofit.execute import Executor
from zoofit.progress import Progress
from zoofit.rank.config import RankConfig
from zoofit.rank.features import extract_features, feature_rows, held_rows, rows_key, stored_rows
from zoofit.rank.models import RankedModel, inputs_of_size, loaded_for_ranking
from zoofit.rank.proxies import Proxy
from zoofit.store import Cache
from zoofit.store.rows import first_missing
from zoofit.zoo import ModelSpec


@dataclass(frozen=True)
class FeatureJob:
    """What every model's unit shares: the ranking's settings, where and how it computes, the images with their
    content digests, and per model key which images' features the driver's cache already holds (those are not
    extracted; the driver reads its own)."""

    config: RankConfig
    machine: Machine
    images: ImageSet
    digests: np.ndarray
    held: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelFeatures:
    """A model's unit's result: the features (``values``) of the images at ``positions`` (those the driver did
    not hold, each image once), the key of the cache's rows, and facts."""

    key: str
    positions: np.ndarray
    values: np.ndarray
    seconds: float  # extraction
    gflops: float
    input_size: int


def features_of(job: FeatureJob, spec: ModelSpec, progress: Progress) -> ModelFeatures | ModelError:
    """The unit of work of a ranking: load ``spec`` and extract its features of the images the driver lacks; a
    model that cannot be used is returned as its :class:`ModelError` (the ranking skips it and goes on)."""
    device = resolve_device(job.machine.device)
    try:
        cache = Cache(job.machine.cache_path)  # this node's cache
        loaded, prep = loaded_for_ranking(spec, cache, device, job.config)
        key = rows_key(spec, prep, resolve_precision(job.machine.precision, device))
        positions = first_missing(job.digests, job.held.get(key, np.zeros(len(job.digests), dtype=bool)))
        values, seconds = np.zeros((0, 0), dtype=np.float32), 0.0
        if len(positions):
            with inputs_of_size(loaded, prep.input_size):
                features = extract_features(
                    loaded, job.images.subset(positions), prep=prep, batch_size=job.config.feature_batch_size,
                    device=device, precision=job.machine.precision, progress=progress,
                )  # fmt: skip
            values, seconds = features.values, features.seconds
        return ModelFeatures(key, positions, values, seconds, loaded.gflops_at(prep.input_size), prep.input_size)
    except Exception as error:  # noqa: BLE001 - any model's own failure skips it (ModelError.failed)
        return ModelError.failed(spec.id, error)


def ranked_on(
    executor: Executor, job: FeatureJob, specs: Sequence[ModelSpec], proxy: Proxy, cache: Cache, progress: Progress
) -> Iterator[tuple[ModelSpec, Future[RankedModel]]]:
    """Each of ``specs`` with the (done) future of its row, as the executor's units finish: its features stored in
    ``cache`` here, and scored here by ``proxy``."""
    images = job.images
    for index, output in executor.map(features_of, replace(job, held=held_rows(cache, job.digests)), specs, progress):
        spec, row = specs[index], Future[RankedModel]()
        if isinstance(output, ModelError):
            row.set_exception(output)
            yield spec, row
            continue
        start = time.perf_counter()
        with feature_rows(cache, output.key).locked() as store:
            store.append(job.digests[output.positions], output.values)
            values = stored_rows(store, job.digests, spec.id)
        extracted = len(output.positions)
        row.set_result(
            RankedModel(
                model=spec.id,
                proxy=proxy.name,
                score=proxy.score(values, images.labels),
                feature_dim=values.shape[1],
                seconds=output.seconds + time.perf_counter() - start,
                images_per_second=extracted / max(output.seconds, 1e-9) if extracted else None,
                images_extracted=extracted,
                gflops=output.gflops,
                input_size=output.input_size,
                arch=spec.arch,
                weights=spec.weights,
            )
        )
        yield spec, row
