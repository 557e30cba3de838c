"""Ranking a zoo by a proxy score (leave-one-out kNN accuracy by default) of each model's frozen features."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch

from zoofit.data import ImageSet, Splits
from zoofit.device import resolve_device, resolve_precision, threads_per_batch
from zoofit.errors import ModelError, ZoofitError
from zoofit.estimator import Estimator, Machine, ZooSelection, shared_settings
from zoofit.execute import Executor, InProcess, named
from zoofit.execute.base import torch_threads
from zoofit.layout import RANKING, RANKING_CSV
from zoofit.progress import Progress, SilentProgress
from zoofit.rank.config import RankConfig
from zoofit.rank.features import extract_features, note_features, noted, ranking_note
from zoofit.rank.models import RankedModel, SkippedModel, inputs_of_size, loaded_for_ranking
from zoofit.rank.proxies import Proxy
from zoofit.rank.remote import FeatureJob, ranked_on
from zoofit.store import Cache, write_csv, write_json
from zoofit.zoo import LoadedModel, ModelSpec, Preprocessing, Zoo, filtered, load_zoo
from zoofit.zoo.schemes import prefetch_weights

log = logging.getLogger("zoofit")
Loaded = TypeVar("Loaded")  # what a ranking loader hands to its ranker


class Ranker(Estimator):
    """Rank the models of a zoo by a proxy score of their frozen features: how well they suit the labels.

    Parameters
    ----------
    zoo : str, Path or Zoo
        A preset name (``"demo"``), a YAML zoo file, ``"timm:<name>,..."``, or a :class:`Zoo`.
    config : RankConfig, optional
        The proxy (leave-one-out kNN accuracy, the paper's, or LogME) and its settings, the resolution, the
        feature passes' batch size, the models ranked at once.
    selection : ZooSelection, optional
        Which of the zoo's models to rank (``models``, ``exclude``, ``licenses``; default: all).
    machine : Machine, optional
        Where and how the features are computed (``device``, ``precision``: ``"auto"`` is CUDA when present, bf16
        where the device computes it natively) and ``cache_dir``.
    executor : str or Executor
        Where the models are ranked: ``"local"`` (here, in threads), another name of
        :data:`zoofit.execute.EXECUTORS` (``"ray"``), or an :class:`~zoofit.execute.Executor`: then a unit per
        model extracts its features there, and they are cached and scored here.
    **settings
        By keyword, settings of the selection, the machine, ``config`` or its proxy, replacing theirs:
        ``Ranker("demo", device="cpu", models=["a", "b"], proxy="knn", k=5)``.

    Attributes
    ----------
    ranking_ : list of RankedModel
        The models, best (highest score) first.
    proxy_ : Proxy
        The proxy that scored them.
    zoo_ : Zoo
        The zoo that was ranked (after ``models`` selection).
    skipped_ : list of SkippedModel
        The models that could not be used, each with its ``reason``.

    Examples
    --------
    >>> from zoofit import Ranker, load_data
    >>> ranker = Ranker("demo", image_size=64).fit(load_data("fashion-mnist"))  # doctest: +SKIP
    >>> ranker.ranking_[0].model                                                 # doctest: +SKIP
    'efficientnet_lite0'
    """

    def __init__(
        self,
        zoo: str | Path | Zoo = "demo",
        config: RankConfig | None = None,
        *,
        selection: ZooSelection | None = None,
        machine: Machine | None = None,
        executor: str | Executor = "local",
        **settings: Any,
    ) -> None:
        self.selection, self.machine, settings = shared_settings(selection, machine, settings)
        self.zoo = zoo
        self.config = (config or RankConfig()).override(**settings)
        self.executor = executor

    def check(self) -> Zoo:
        """Check the settings, device and precision, before any data is read; the zoo with the chosen models."""
        self.config.validate()
        resolve_precision(self.machine.precision, resolve_device(self.machine.device))
        self._executor().check()  # a cluster that does not answer, before any data is read
        zoo = self.zoo if isinstance(self.zoo, Zoo) else load_zoo(self.zoo)
        chosen = self.selection
        return filtered(zoo.select(chosen.models), exclude=chosen.exclude, licenses=chosen.licenses)

    def fit(self, data: Splits | ImageSet, *, progress: Progress | None = None) -> Ranker:
        """Rank every model on ``data`` (all training images of :class:`Splits`: train + validation)."""
        images = data.ranking_set if isinstance(data, Splits) else data
        zoo = self.zoo_ = self.check()
        proxy = self.proxy_ = self.config.make_proxy()
        proxy.check(len(images))
        device = resolve_device(self.machine.device)
        cache = Cache(self.machine.cache_path)
        progress = progress or SilentProgress()
        ranking: list[RankedModel] = []
        self.skipped_: list[SkippedModel] = []
        load = partial(self._load, cache=cache, device=device)
        rank = partial(
            self._rank_one, proxy=proxy, images=images, device=device, cache=cache, progress=SilentProgress()
        )  # one bar over the models, not one per model
        lanes = Lanes.on(device, self.config.models_at_once)
        executor = self._executor()
        if isinstance(executor, InProcess):
            outcomes = loaded_and_ranked(zoo.models, load, rank, lanes, prefetch=prefetch_weights)
        else:
            job = FeatureJob(self.config, self.machine, images, images.digests())
            outcomes = ranked_on(executor, job, zoo.models, proxy, cache, progress)
        title = f"ranking {len(zoo)} models"
        with progress.task(title, total=len(zoo)) as bar:
            for spec, ranked in outcomes:
                try:
                    ranking.append(ranked.result())
                except Exception as error:  # noqa: BLE001 - any model's own failure skips it (ModelError.failed)
                    failure = ModelError.failed(spec.id, error)
                    log.warning("skipping %s", failure)
                    log.debug("%s failed", spec.id, exc_info=error)
                    self.skipped_.append(SkippedModel(spec.id, str(failure)))
                    bar.describe(f"{title}, {len(self.skipped_)} failed")
                bar.advance()
        if not ranking:
            raise ZoofitError(f"none of the {len(zoo)} models of zoo '{zoo.name}' could be used (see warnings)")
        self.ranking_ = sorted(ranking, key=lambda row: (-row.score, row.model))
        return self

    def cached(self, images: ImageSet) -> set[str]:
        """The ids of the zoo's models whose features of every one of ``images`` the cache holds, as a ranking in
        this process noted them (ranking them costs their loading alone)."""
        cache, device = Cache(self.machine.cache_path), resolve_device(self.machine.device)
        return {spec.id for spec in self.check().models if noted(cache, self._note(spec, device), images)}

    def _note(self, spec: ModelSpec, device: torch.device) -> str:
        config, precision = self.config, resolve_precision(self.machine.precision, device)
        return ranking_note(spec, config.image_size, config.own_size_if_needed, precision)

    def _executor(self) -> Executor:
        return named(self.executor) if isinstance(self.executor, str) else self.executor

    def _load(self, spec: ModelSpec, cache: Cache, device: torch.device) -> tuple[LoadedModel, Preprocessing]:
        return loaded_for_ranking(spec, cache, device, self.config)

    def _rank_one(
        self,
        loaded_with: tuple[LoadedModel, Preprocessing],
        proxy: Proxy,
        images: ImageSet,
        device: torch.device,
        cache: Cache,
        progress: Progress,
    ) -> RankedModel:
        start = time.perf_counter()
        loaded, prep = loaded_with
        spec = loaded.spec
        with inputs_of_size(loaded, prep.input_size):  # the count passed on the meta device, which skips checks
            features = extract_features(
                loaded,
                images,
                prep=prep,
                batch_size=self.config.feature_batch_size,
                device=device,
                precision=self.machine.precision,
                cache=cache,
                progress=progress,
            )
        note_features(cache, self._note(spec, device), features.key)
        return RankedModel(
            model=spec.id,
            proxy=proxy.name,
            score=proxy.score(features.values, images.labels),
            feature_dim=features.values.shape[1],
            seconds=time.perf_counter() - start,
            images_per_second=None if features.cached else features.extracted / max(features.seconds, 1e-9),
            images_extracted=features.extracted,
            gflops=loaded.gflops_at(prep.input_size),
            input_size=prep.input_size,
            arch=spec.arch,
            weights=spec.weights,
        )

    def save(self, out: str | Path) -> Path:
        """Write ``ranking.json`` (``{"ranked": rows best first, "failed": [{"model", "reason"}]}``) and
        ``ranking.csv`` (the ranked rows) to the folder ``out``."""
        out = Path(out)
        rows = [asdict(row) for row in self.ranking_]
        write_json(out / RANKING, {"ranked": rows, "failed": [asdict(skipped) for skipped in self.skipped_]})
        write_csv(out / RANKING_CSV, rows)
        return out


@dataclass(frozen=True)
class Lanes:
    """How a ranking runs its models: ``count`` at the same time, each in a thread of its own that loads it and
    then ranks it; on a CPU, its ``cores`` shared out among the lanes (:class:`SharedCores`; ``None``:
    torch's threads as they are); where ``load_ahead``, one more thread loads the next model meanwhile."""

    count: int = 1
    cores: int | None = None
    load_ahead: bool = True

    @classmethod
    def on(cls, device: torch.device, count: int | None = None) -> Lanes:
        """The lanes for ``device`` (``count`` models at once where given).

        On a GPU, up to 4 models at once (one per 8 GiB of its memory), so that each model's host-bound first use
        (cuDNN set-up, kernel loading, Python) overlaps the others' work, and the next model loads meanwhile on
        the host, which is otherwise idle. On a CPU, up to 4 models at once with the cores shared out among them,
        and no loader beside them: models side by side on a core or two each compute faster than one model at a
        time on all cores (small models' passes use many cores poorly), a load in one lane overlaps the other
        lanes' passes, and a loader thread of its own would take a core from them
        (``benchmarks/results/notes-ranking-lanes-cpu.md``)."""
        if device.type == "cuda":
            memory = torch.cuda.get_device_properties(device).total_memory
            return cls(count or max(1, min(4, memory // 2**33)))
        cores = torch.get_num_threads()
        return cls(count or max(1, min(4, cores)), cores=cores, load_ahead=False)


class SharedCores:
    """A CPU's ``cores`` shared out among ``lanes``, and at the end of a ranking, when fewer than ``lanes`` of its
    ``models`` are left, among those: a lane takes its share before each batch, so the last models compute on
    the cores of the lanes that have nothing left to do."""

    def __init__(self, cores: int, lanes: int, models: int) -> None:
        self.cores = cores
        self.lanes = lanes
        self._left = models
        self._count = threading.Lock()

    @contextmanager
    def model(self) -> Iterator[None]:
        """Within: this thread works on a model, on its share of the cores (torch's count restored after)."""
        try:
            with torch_threads(self.share()), threads_per_batch(self.share):
                yield
        finally:
            with self._count:
                self._left -= 1

    def share(self) -> int:
        return max(1, self.cores // max(1, min(self.lanes, self._left)))


def loaded_and_ranked(
    specs: Sequence[ModelSpec],
    load: Callable[[ModelSpec], Loaded],
    rank: Callable[[Loaded], RankedModel],
    lanes: Lanes = Lanes(),
    prefetch: Callable[[ModelSpec], object] | None = None,
    ahead: int = 4,
) -> Iterator[tuple[ModelSpec, Future[RankedModel]]]:
    """Each model with the future of its ``rank(load(spec))``, in the order of ``specs``. Up to
    ``lanes.count`` models are ranked at the same time, each in its own thread; where ``lanes.load_ahead``,
    one more thread starts loading the next, so that reading, converting and instantiating overlap the forward
    passes. Loads, too, run at most ``lanes.count`` at a time, and at most ``lanes.count`` models (one more
    where loading ahead) are held at once. A model's error is raised by its ``result()``; models not yet
    started when the caller stops are not started.

    ``prefetch(spec)`` (fetching a model's weights, say) runs in two threads of its own for the ``ahead`` models
    after the one that starts loading, so that their downloads overlap the work before them; its errors are
    ignored (the model's load reports them)."""
    loading, ranking = threading.Semaphore(lanes.count), threading.Semaphore(lanes.count)
    cores = SharedCores(lanes.cores, lanes.count, len(specs)) if lanes.cores else None  # torch: a count per thread
    fetcher = ThreadPoolExecutor(2, thread_name_prefix="zoofit-fetch")

    def fetch(index: int) -> None:
        if prefetch is not None and index < len(specs):
            fetcher.submit(prefetch, specs[index])

    def load_then_rank(index: int, spec: ModelSpec) -> RankedModel:
        fetch(index + ahead + 1)
        with cores.model() if cores else nullcontext():
            with loading:
                loaded = load(spec)
            with ranking:
                return rank(loaded)

    for index in range(1, ahead + 1):
        fetch(index)
    pool = ThreadPoolExecutor(lanes.count + lanes.load_ahead, thread_name_prefix="zoofit-rank")
    try:
        futures = deque(pool.submit(load_then_rank, index, spec) for index, spec in enumerate(specs))
        for spec in specs:
            yield spec, futures.popleft()  # not kept here: a failed model's error (and the model) can go
    finally:
        pool.shutdown(cancel_futures=True)
        fetcher.shutdown(wait=False, cancel_futures=True)
