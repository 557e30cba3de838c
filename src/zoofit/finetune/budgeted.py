"""A run within ``--time-limit``: the cost model measured at run time, and the sweep cut to the plan.

Throughput is measured on the first batches: the zoo's first model trains a few steps at the sweep's batch and
size (at each of its fine-tuning depths), then predicts a batch of validation images (:func:`probe`); every other model's costs are these scaled by
its GFLOPs (before the ranking those its spec gives, where it gives them; after it, those the ranking counted). :mod:`zoofit.budget` plans from them; the trials of the plan then run on
any executor. Trials the run folder holds cost nothing. Robustness, the last stage, takes only the images the time
left affords (:func:`affordable_shift_images`), which absorbs what the estimates missed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import torch

from zoofit.budget import ROBUSTNESS_CONDITIONS, CostModel, ModelCost, Plan, Price, StoredTrial, Sweep, plan
from zoofit.errors import ModelError, ParameterError, ZoofitError
from zoofit.finetune.sweep import Job, Placement, TrialContext, plan_trials
from zoofit.finetune.trial import train_trial
from zoofit.progress import Progress
from zoofit.result import PlanResult
from zoofit.store import Cache, RunStore
from zoofit.sweep_config import SweepConfig, TrialConfig
from zoofit.zoo import ModelSpec, Zoo, load_model

log = logging.getLogger("zoofit")

PROBE_STEPS = 4  # training steps of the probe; the first (warm-up) is not timed
PROBE_IMAGES = 64  # validation images the probe predicts
#: Kept free of the plan: the share of the limit, and seconds, for what the estimates miss and the outputs.
RESERVE_SHARE, RESERVE_SECONDS = 0.05, 3.0


@dataclass(frozen=True)
class Throughput:
    """Seconds per image of one ``model`` to train (at the sweep's first depth) and to predict, the seconds to load
    it and run its first step, and each depth's training seconds as a share of the first's; other models' costs
    are these in proportion to their GFLOPs."""

    model: str
    train_seconds_per_image: float
    predict_seconds_per_image: float
    overhead: float
    depth_shares: dict[int, float] = field(default_factory=dict)

    def scaled(self, model: str, ratio: float, rank_seconds: float = 0.0) -> ModelCost:
        """The costs of a model of ``ratio`` times this one's GFLOPs per image."""
        return ModelCost(
            model, rank_seconds, self.train_seconds_per_image * ratio, self.predict_seconds_per_image * ratio
        )


class _Clock:
    """A :class:`~zoofit.progress.Progress` that notes when each training step ends."""

    def __init__(self) -> None:
        self.times: list[float] = []

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[_Clock]:
        yield self

    def advance(self, amount: int = 1) -> None:
        self.times.append(time.perf_counter())

    def describe(self, description: str) -> None:
        pass


def probe(spec: ModelSpec, config: SweepConfig, size: int | None, context: TrialContext) -> Throughput:
    """Train ``spec`` for :data:`PROBE_STEPS` steps of the sweep's first trial at ``size`` (``None``: its own) and
    predict :data:`PROBE_IMAGES` validation images, timing each; then as many steps at each other depth of the
    sweep, timing their training (nothing is stored)."""
    first, *others = dict.fromkeys(config.search.freeze_stride)
    trial = replace(config.trials(image_size=size)[0], steps=PROBE_STEPS, freeze_stride=first)
    measured = _probed(spec, trial, context)
    shares = {
        stride: _probed(spec, replace(trial, freeze_stride=stride), context).train_seconds_per_image
        / max(measured.train_seconds_per_image, 1e-12)
        for stride in others
    }
    return replace(measured, depth_shares={first: 1.0, **shares})


def _probed(spec: ModelSpec, trial: TrialConfig, context: TrialContext) -> Throughput:
    """The throughput of ``trial`` (a few steps) of ``spec`` loaded afresh, as :func:`probe` measures it."""

    def train(small: TrialContext, clock: Progress) -> None:
        train_trial(
            load_model(spec, Cache(small.cache_root)), small.splits, trial, device=torch.device(small.device),
            precision=small.precision, eval_precision=small.eval_precision, eval_batch_size=small.eval_batch_size,
            progress=clock,
        )  # fmt: skip

    return measured(spec.id, train, context, trial.batch_size)


def measured(
    model: str, train: Callable[[TrialContext, Progress], object], context: TrialContext, batch_size: int
) -> Throughput:
    """The throughput of ``train``, a unit that loads ``model``, trains a few steps of ``batch_size`` images
    (reporting each to its progress) and predicts the validation split: run on ``context`` with
    :data:`PROBE_IMAGES` validation images and no test split, timed (nothing is stored)."""
    start = time.perf_counter()
    val = context.splits.val
    splits = replace(context.splits, val=val.subset(range(min(PROBE_IMAGES, len(val)))), test=None)
    clock = _Clock()
    train(replace(context, splits=splits), clock)
    end = time.perf_counter()
    step = (clock.times[-1] - clock.times[0]) / (len(clock.times) - 1)
    return Throughput(
        model, train_seconds_per_image=step / batch_size,
        predict_seconds_per_image=(end - clock.times[-1]) / len(splits.val), overhead=clock.times[0] - start,
    )  # fmt: skip


def budget_left(limit: float, started: float) -> float:
    """Seconds of ``limit`` left since ``started`` (a ``time.perf_counter()``), less the reserve."""
    return limit * (1 - RESERVE_SHARE) - RESERVE_SECONDS - (time.perf_counter() - started)


def plan_run(
    config: SweepConfig,
    throughput: Throughput,
    models: Sequence[tuple[str, float, float]],
    stored: frozenset[StoredTrial],
    predicted_images: int,
    started: float,
    prices: Sequence[Price] = (),
) -> Plan:
    """The plan of the run's remaining work within its time limit (counted from ``started``): ``models`` are
    ``(id, GFLOPs per image, seconds to rank it)`` in the order they would be fine-tuned; ``stored`` the trials the
    run folder holds; ``prices`` those of the pool's other kinds of member."""
    limit = config.budget.time_limit
    assert limit is not None
    reference = next((gflops for model, gflops, _ in models if model == throughput.model), 0.0)
    costs = CostModel(
        tuple(throughput.scaled(model, gflops / reference if reference > 0 else 1.0, rank)
              for model, gflops, rank in models),
        predicted_images, throughput.overhead, 0.0, stored, throughput.depth_shares, tuple(prices),
    )  # fmt: skip
    return plan(Sweep(config), costs, budget_left(limit, started))


def affordable_shift_images(config: SweepConfig, throughput: Throughput, classifiers: int, started: float) -> int:
    """The robustness images the time left affords ``classifiers`` models of the probe's speed (none under 50)."""
    limit = config.budget.time_limit
    assert limit is not None
    per_image = ROBUSTNESS_CONDITIONS * classifiers * throughput.predict_seconds_per_image
    images = min(config.evaluation.shift_images, int(max(0.0, budget_left(limit, started)) / max(per_image, 1e-9)))
    return images if images >= 50 else 0


def scaled_gflops(size: int | None, spec: ModelSpec) -> float:
    """A model's GFLOPs per image at ``size`` from those its spec gives at its own input size, by area; 0 where
    the spec gives none (then it is priced as the probe's model: counting them would build every model of a
    large zoo before its ranking, which counts them anyway)."""
    own = spec.preprocessing.input_size if spec.preprocessing else None
    return (spec.gflops or 0.0) * ((size / own) ** 2 if size and own else 1.0)


def _ratios(gflops: Sequence[float]) -> list[float]:
    """Each of ``gflops`` in proportion to the first (the probe's model); 1 where either is unknown."""
    return [g / gflops[0] if g > 0 and gflops[0] > 0 else 1.0 for g in gflops]


class Budget:
    """A run's time limit, step by step: :meth:`zoo` before the ranking (the probe, and the models that fit),
    :meth:`sweep` after it (the sweep that fits), :meth:`robustness` before the last stage; each cut is logged in
    one line and kept for :meth:`result`."""

    def __init__(
        self, config: SweepConfig, size: int | None, context: TrialContext, started: float, prices: Sequence[Price] = ()
    ) -> None:
        assert config.budget.time_limit is not None
        self.config, self.size, self.context, self.started, self.prices = config, size, context, started, prices
        self.limit = config.budget.time_limit
        self.cuts: list[str] = []
        self.planned = 0.0
        self.throughput: Throughput | None = None

    def zoo(self, zoo: Zoo, ranking_images: int, store: RunStore, seed: int, cached: set[str]) -> list[str]:
        """The ids of the models of ``zoo`` to rank: all, unless ranking them all leaves too little for the
        smallest plan (trials ``store`` holds cost nothing, and so does ranking the ``cached`` models, whose
        features the cache holds). Measures the throughput first (on the zoo's first model)."""
        self.throughput = throughput = self._probe(zoo)
        size = self.size
        specs = sorted(zoo.models, key=lambda spec: spec.id != throughput.model)  # the probe's model first
        gflops = [scaled_gflops(size, spec) for spec in specs]
        models = [
            (spec.id, flops, 0.0 if spec.id in cached else
             throughput.overhead + ranking_images * throughput.predict_seconds_per_image * ratio)
            for spec, flops, ratio in zip(specs, gflops, _ratios(gflops), strict=True)
        ]  # fmt: skip
        jobs = [(spec, trial) for spec in zoo.models for trial in self.config.trials(seed, size)]
        try:
            result = plan_run(
                self.config,
                throughput,
                models,
                self._stored(jobs, store),
                self.context_images(),
                self.started,
                self.prices,
            )
        except ParameterError:  # features a cache holds rank for free: the plan after the ranking decides
            return [spec.id for spec in zoo.models]
        kept = list(result.sweep.ranked) if result.sweep.ranked is not None else [spec.id for spec in zoo.models]
        self.note([cut for cut in result.cuts if cut.startswith("zoo")])
        return kept

    def sweep(self, ranked: Sequence[Placement], store: RunStore, seed: int) -> SweepConfig:
        """The sweep that fits the time left after the ranking (the ``ranked`` models, best first); the trials
        ``store`` holds of the sweep as it was cost nothing."""
        assert self.throughput is not None
        models = [(model.spec.id, model.gflops, 0.0) for model in ranked]
        stored = self._stored(plan_trials(ranked, self.config, seed)[0], store)
        result = plan_run(
            self.config, self.throughput, models, stored, self.context_images(), self.started, self.prices
        )
        self.planned = time.perf_counter() - self.started + result.seconds
        log.info(result.describe(self.limit))
        self.cuts += list(result.cuts)
        self.config = result.sweep.config
        return self.config

    def robustness(self, classifiers: int) -> SweepConfig:
        """The sweep with the robustness images the time left affords ``classifiers`` models."""
        assert self.throughput is not None
        images = affordable_shift_images(self.config, self.throughput, classifiers, self.started)
        if images < (before := self.config.evaluation.shift_images):
            self.note([f"robustness images {before} -> {images} (the time left)"])
            self.config = self.config.override(shift_images=images)
        return self.config

    def result(self) -> PlanResult:
        return PlanResult(self.limit, round(self.planned, 1), list(self.cuts))

    def context_images(self) -> int:
        """The images each trial predicts: validation and test."""
        splits = self.context.splits
        return len(splits.val) + (len(splits.test) if splits.test is not None else 0)

    def _probe(self, zoo: Zoo) -> Throughput:
        """The throughput of the first model of ``zoo`` that loads (the ranking skips the others too)."""
        for spec in zoo.models:
            try:
                return probe(spec, self.config, self.size, self.context)
            except ModelError as error:
                log.info("time limit: %s cannot be measured (%s); the next model is", spec.id, error)
        raise ZoofitError("no model of the zoo loads, so the time limit cannot be planned; check the zoo")

    def _stored(self, jobs: Sequence[Job], store: RunStore) -> frozenset[StoredTrial]:
        """Which of ``jobs``, of their other seeds (:meth:`SweepConfig.other_seeds`) and of the refits of both
        ``store`` holds, as :data:`~zoofit.budget.StoredTrial`."""
        return frozenset(
            (spec.id, trial.lr, trial.steps, trial.freeze_stride, refit, seed)
            for spec, trial in jobs
            for seed in range(self.config.other_seeds() + 1)
            for refit in (False, True)
            if store.has_trial(self.context.key(spec, replace(trial, seed=trial.seed + seed, refit=refit)))
        )

    def note(self, cuts: list[str]) -> None:
        """Record ``cuts`` made to fit the limit (each logged)."""
        if cuts:
            log.info("time limit %.0f s: cut %s", self.limit, ", ".join(cuts))
            self.cuts += cuts
