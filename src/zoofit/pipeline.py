"""The method end to end: rank -> fine-tune sweep -> greedy ensemble -> evaluate, as one estimator.

``ZooFit.fit`` tells the story; each stage is a function below that returns what the next one needs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoofit.data import Splits
from zoofit.data.domain import Domain
from zoofit.device import default_batch_size, resolve_device, resolve_precision
from zoofit.ensemble import SELECTIONS, Selection, average, member_entry
from zoofit.errors import ParameterError, ZoofitError
from zoofit.estimator import Estimator, Machine, ZooSelection, shared_settings
from zoofit.evaluate import accuracy, per_class_accuracy, reliability, summarize
from zoofit.execute import Executor, named
from zoofit.finetune import SweepConfig, TrialContext, TrialRecord, TrialRunner, resolve_workers
from zoofit.finetune.budgeted import Budget
from zoofit.finetune.config import default_preset, preset
from zoofit.finetune.refit import refit
from zoofit.finetune.soup import cook_soup
from zoofit.finetune.sweep import Job
from zoofit.labelling.labelled import record_labelled
from zoofit.layout import MANIFEST, TRIALS
from zoofit.progress import Progress, SilentProgress
from zoofit.rank import RankConfig, RankedModel, Ranker
from zoofit.rank.probe import Probe, linear_probe
from zoofit.rank.proxies import describe
from zoofit.result import (
    Baseline,
    DomainResult,
    EnsembleResult,
    GrowthStep,
    LinearProbeResult,
    Member,
    ProxyResult,
    ReliabilityBin,
    RunResult,
    Scores,
    SoupResult,
    StageTimer,
    Units,
)
from zoofit.robustness import TrialPredictions, classifiers, domain_result, robustness
from zoofit.store import RunStore
from zoofit.zoo import Zoo

log = logging.getLogger("zoofit")


class ZooFit(Estimator):
    """Rank a zoo by a proxy, fine-tune the top models with a small sweep, and ensemble them greedily.

    Parameters
    ----------
    zoo : str, Path or Zoo
        A preset name, a YAML zoo file, ``"timm:<name>,..."`` or a :class:`Zoo`.
    sweep : str or SweepConfig, optional
        A :class:`~zoofit.finetune.SweepConfig`, or the name of a preset (``"quick"`` for a CPU, ``"paper"`` for a
        GPU); ``None`` picks the preset by the device. Change a preset with ``preset("quick").override(...)``.
    ranking : RankConfig, optional
        The ranking's proxy (kNN accuracy by default, the paper's) and its settings; its resolution is the
        sweep's (``image_size``), and a model that cannot take it is ranked at its own.
    selection, machine : ZooSelection, Machine, optional
        Which of the zoo's models, and where and how they compute, as for :class:`~zoofit.Ranker`.
    seed : int
        Seeds every trial and the robustness evaluation's draw of test images.
    workers : int, optional
        Trials trained at once, one in this process and the others in ``workers - 1`` worker processes
        (``None``: 4 on a GPU; on a CPU one per core up to 4, or 1 where the trials would not split evenly
        across them - see :func:`~zoofit.finetune.resolve_workers`; 1 trains them one after another here).
        On another executor: units at once (``None``: its own default, for Ray as many as the cluster holds).
    executor : str or Executor
        Where the ranking's models and the trials run: ``"local"`` (this machine), ``"ray"`` (a Ray cluster: a
        unit per model and per trial, their results stored here), or an :class:`~zoofit.execute.Executor`
        (:class:`~zoofit.execute.RayCluster` with an address or per-unit resources, say).
    **settings
        By keyword, settings of the selection or the machine, replacing theirs (``device="cpu"``,
        ``models=[...]``).

    Attributes
    ----------
    ranker_ : Ranker
        The fitted ranking.
    trials_ : list of TrialRecord
        The sweep's trials.
    selection_ : Selection
        The greedy selection over ``trials_``.
    result_ : RunResult
        The result written to ``summary.json``.

    Examples
    --------
    >>> from zoofit import ZooFit, load_data
    >>> fit = ZooFit("demo", sweep="quick").fit(load_data("fashion-mnist"), "runs/fm")  # doctest: +SKIP
    >>> fit.result_.ensemble.test.accuracy                                             # doctest: +SKIP
    """

    def __init__(
        self,
        zoo: str | Path | Zoo = "demo",
        *,
        sweep: str | SweepConfig | None = None,
        ranking: RankConfig | None = None,
        selection: ZooSelection | None = None,
        machine: Machine | None = None,
        seed: int = 0,
        workers: int | None = None,
        executor: str | Executor = "local",
        **settings: Any,
    ) -> None:
        self.selection, self.machine, unknown = shared_settings(selection, machine, settings)
        if unknown:
            raise ParameterError.of(next(iter(unknown)), "is not a parameter of ZooFit")
        self.zoo = zoo
        self.sweep = sweep
        self.ranking = ranking or RankConfig()
        self.seed = seed
        self.workers = workers
        self.executor = executor

    def check(self) -> None:
        """Check every setting (the sweep, workers, device, precision, the zoo and its models) before any data
        is read."""
        device = resolve_device(self.machine.device)
        resolve_workers(self.workers, device)
        self._ranker(self.sweep_config(device), self.machine.precision, self.unit_executor()).check()

    def sweep_config(self, device: torch.device, largest_area: int | None = None) -> SweepConfig:
        """The sweep, validated: as given, the named preset, or the device's; sized for data whose largest image
        has ``largest_area`` pixels where given."""
        if isinstance(self.sweep, SweepConfig):
            config = self.sweep.validate()
        else:
            config = preset(self.sweep or default_preset(gpu=device.type == "cuda"))
        if largest_area is None:
            return config
        sized = config.for_images(largest_area)
        if sized.image_size != config.image_size:
            log.info("images smaller than 96x96: ranking and fine-tuning at %d px", sized.image_size)
        return sized

    def _ranker(
        self, config: SweepConfig, precision: str, executor: Executor | None, models: list[str] | None = None
    ) -> Ranker:
        ranking = replace(self.ranking, image_size=config.image_size, own_size_if_needed=True)
        selection = replace(self.selection, models=models) if models else self.selection
        machine = replace(self.machine, precision=precision)
        return Ranker(self.zoo, ranking, selection=selection, machine=machine, executor=executor or "local")

    def unit_executor(self) -> Executor | None:
        """The executor of every unit (a new one where named); ``None`` for ``"local"``, whose number of workers follows the
        device and the trials' costs (:func:`~zoofit.finetune.resolve_workers`)."""
        if self.executor == "local":
            return None
        return named(self.executor, self.workers) if isinstance(self.executor, str) else self.executor

    def fit(
        self,
        splits: Splits,
        out: str | Path,
        *,
        domains: dict[str, Domain] | None = None,
        progress: Progress | None = None,
        started: float | None = None,
    ) -> ZooFit:
        """Run the method on ``splits`` into the run folder ``out`` (resuming what is already there), as its one
        writer (see :meth:`RunStore.writer`); a folder holds the runs of one dataset. The classifiers are also
        scored on each of the shifted ``domains`` (see :func:`~zoofit.data.load_domains`), by name. A sweep's
        ``time_limit`` counts from ``started`` (a ``time.perf_counter()``; default now)."""
        started = time.perf_counter() if started is None else started
        if (executor := self.unit_executor()) is not None:
            executor.check()  # a cluster that does not answer is one line before the folder is touched
        with RunStore(Path(out)).writer() as store:
            return self._fit(splits, store, domains, progress, started)

    def _fit(
        self,
        splits: Splits,
        store: RunStore,
        domains: dict[str, Domain] | None,
        progress: Progress | None,
        started: float,
    ) -> ZooFit:
        if splits.test is None:
            raise ZoofitError("the data has no test split; give DIR/test/, a 'test' split, or a test_fraction")
        progress = progress or SilentProgress()
        timer = StageTimer()
        device = resolve_device(self.machine.device)
        resolve_workers(self.workers, device)  # a bad number of workers is reported before any work
        config = self.sweep_config(device, splits.ranking_set.largest_area())
        store.claim_data(splits.fingerprint, splits.describe())
        context = TrialContext(
            splits, store.root, self.machine.cache_path, str(device),
            resolve_precision(self.machine.precision, device, training=True),
            resolve_precision(self.machine.precision, device),
            config.eval_batch_size or default_batch_size(device),
        )  # fmt: skip

        executor = self.unit_executor()
        budget = None
        if config.time_limit is not None:
            with timer.stage("plan"):
                budget = Budget(config, context, started)
                zoo = self._ranker(config, context.eval_precision, executor).check()
                kept = budget.zoo(zoo, len(splits.ranking_set), store, self.seed)
        with timer.stage("rank"):
            ranker = self._ranker(config, context.eval_precision, executor, kept if budget else None)
            ranker = ranker.fit(splits, progress=progress)
            ranker.save(store.root)
        with timer.stage("linear_probe"):
            probe = linear_probe(ranker, splits)
        if budget is not None:
            config = budget.sweep(ranker, plan_trials(ranker, config, self.seed)[0], store)
        with timer.stage("fine_tune"):
            jobs, costs = plan_trials(ranker, config, self.seed)
            workers = resolve_workers(self.workers, device, costs)
            runner = TrialRunner(context, workers=workers, progress=progress, executor=executor or "local")
            log.info("fine-tuning %d trials, %d at a time", len(jobs), runner.workers)
            trials = runner.run(jobs, costs)
            if not trials:
                raise runner.none_finished()
        if config.soup:
            with timer.stage("soup"):
                soups = cook_soups(trials, context, progress)
        else:
            soups = []
        with timer.stage("ensemble_evaluate"):  # the seed baseline's trials included
            candidates = trials + soups
            selection = select_ensemble(candidates, splits.val.labels, config, self.seed)
            best = best_trial(trials)
            top_model = top_finished(ranker.ranking_, trials)
            top_ranked = best_trial(t for t in trials if t.model == top_model)
            seed_trials = runner.run(seed_jobs(best, jobs, config.seed_baseline))
        selected, seeds, refits = candidates, [best, *seed_trials] if seed_trials else [], []
        if config.refit:
            with timer.stage("refit"):  # the members and the seed baseline, trained again on train + validation
                chosen = [candidates[i] for i in selection.members] + seeds
                refit_of = refit(chosen, trials + seed_trials, {spec.id: spec for spec, _ in jobs}, runner)
                refits = [t for t in refit_of.values() if t.result.soup is None]
                candidates = [refit_of.get(c.key, c) for c in candidates]
                seeds = [refit_of.get(t.key, t) for t in seeds]  # a refit that failed: as trained on train
        members = [(candidates[i], float(selection.weights[i])) for i in selection.members]
        store.write_json(MANIFEST, manifest(splits, members, store))
        record_labelled(store.root, splits, device=context.device, precision=context.eval_precision,
                        batch_size=context.eval_batch_size)  # fmt: skip
        if budget is not None:
            config = budget.robustness(len(members) + 1)
        with timer.stage("robustness"):
            member_entries = [entry(t, w, store) for t, w in members]
            seed_entries = [entry(t, 1.0, store) for t in [best, *seeds]] if seeds else []
            predictions = TrialPredictions(
                store.root, [*member_entries, entry(best, 1.0, store), *seed_entries], splits.class_names,
                device=context.device, precision=context.eval_precision, batch_size=context.eval_batch_size,
            )  # fmt: skip
            groups = classifiers(member_entries, best.key, [e["trial"] for e in seed_entries])
            shifted = None if not config.shift_images else robustness(
                splits.test, predictions, groups, count=config.shift_images, severity=config.shift_severity,
                seed=self.seed, progress=progress,
            )  # fmt: skip
            domain_results = evaluate_domains(domains or {}, predictions, groups, progress)

        self.ranker_, self.trials_, self.selection_ = ranker, trials, selection
        labels = splits.test.labels
        test_probs = average([t.test_probs for t in candidates], selection.counts)  # the ensemble's
        computed = trials + seed_trials + refits
        self.result_ = RunResult(
            data=splits.describe(), preset=config.name, sweep=config,
            proxy=ProxyResult(**describe(ranker.proxy_)),
            ensemble=ensemble_result(candidates, selection, test_probs, splits, ranker.zoo_), best_single=baseline([best], labels),
            top_ranked=baseline([top_ranked], labels), seed_baseline=baseline(seeds, labels) if seeds else None,
            robustness=shifted, units=units(ranker.ranking_, computed), stage_seconds=timer.seconds,
            wall_seconds=timer.wall, soups=[soup_result(soup) for soup in soups],
            reliability=reliability_of(test_probs, best, labels), domains=domain_results,
            linear_probe=probe_result(probe, labels),
            plan=budget.result() if budget is not None else None,
            failed_trials=runner.failed, skipped=list(splits.skipped),
            before_refit=ensemble_result(
                selected, selection, average([t.test_probs for t in selected], selection.counts), splits, ranker.zoo_
            ) if config.refit else None,
        )  # fmt: skip
        store.write_csv(TRIALS, [t.row() for t in computed] + [failed.row() for failed in runner.failed])
        self.result_.write(store.root)
        return self


def evaluate_domains(
    domains: dict[str, Domain], predictions: TrialPredictions, groups: dict, progress: Progress
) -> dict[str, DomainResult]:
    """Each classifier of ``groups`` scored on each shifted domain, by its name (no progress without domains)."""
    results = {}
    if not domains:
        return results
    with progress.task("shifted domains", total=len(domains)) as task:
        for name, domain in domains.items():
            results[name] = domain_result(domain, predictions, groups)
            task.advance()
    return results


def plan_trials(ranker: Ranker, config: SweepConfig, seed: int) -> tuple[list[Job], list[float]]:
    """The sweep's trials over the ranking's top models, each at the size its model was ranked at (its own, where
    it takes no other), and each trial's relative cost."""
    specs = {spec.id: spec for spec in ranker.zoo_.models}
    planned = [
        (row, trial if config.image_size is None else replace(trial, image_size=row.input_size))
        for row in ranker.ranking_[: config.top_k]
        for trial in config.trials(seed)
    ]
    jobs = [(specs[row.model], trial) for row, trial in planned]
    return jobs, [row.gflops * trial.steps * trial.batch_size for row, trial in planned]


def top_finished(ranking: Sequence[RankedModel], trials: Sequence[TrialRecord]) -> str:
    """The model ranked highest of those with a finished trial (the top-ranked one, unless all its trials failed)."""
    finished = {trial.model for trial in trials}
    return next(row.model for row in ranking if row.model in finished)


def seed_jobs(best: TrialRecord, jobs: Sequence[Job], count: int) -> list[Job]:
    """The ``count - 1`` further seeds of the ``best`` trial, for the seed baseline (none where ``count`` is 0)."""
    spec = next(spec for spec, _ in jobs if spec.id == best.model)
    return [(spec, replace(best.config, seed=best.config.seed + i)) for i in range(1, count)]


def select_ensemble(trials: Sequence[TrialRecord], labels: np.ndarray, config: SweepConfig, seed: int) -> Selection:
    """The sweep's selection (greedy forward selection with replacement, or its bagged form, whose halves of the
    validation set are drawn with ``seed``) over ``trials``, within the sweep's budget."""
    return SELECTIONS[config.selection](
        [t.val_probs for t in trials], labels, max_steps=config.ensemble_steps, max_members=config.max_members,
        max_gflops=config.max_gflops, gflops=[t.gflops for t in trials], bags=config.bags, seed=seed,
    )  # fmt: skip


def best_trial(trials: Iterable[TrialRecord]) -> TrialRecord:
    """The best by validation accuracy, then by lower validation NLL; the earlier on a tie."""
    return max(trials, key=lambda trial: (trial.val.accuracy, -trial.val.nll))


def cook_soups(trials: Sequence[TrialRecord], context: TrialContext, progress: Progress) -> list[TrialRecord]:
    """The greedy soup of each model's trials (where it has several), stored in the run like a trial and keyed
    by its candidates, so a rerun reuses it."""
    by_model: dict[tuple[str, int], list[TrialRecord]] = {}
    for trial in trials:
        by_model.setdefault((trial.model, trial.result.preprocessing.input_size), []).append(trial)
    groups = [sorted(group, key=lambda t: (-t.val.accuracy, t.val.nll)) for group in by_model.values()]
    if all(len(group) < 2 for group in groups):
        log.info("no soups: no model has several trials (give several learning rates or step counts)")
    with progress.task("soups", total=sum(len(group) > 1 for group in groups)) as task:
        soups = []
        for group in (group for group in groups if len(group) > 1):
            soups.append(cook_soup(group, context))
            task.advance()
    return soups


def ensemble_result(
    trials: Sequence[TrialRecord], selection: Selection, probs: np.ndarray, splits: Splits, zoo: Zoo
) -> EnsembleResult:
    """The selected ensemble's members (with their models' licences in ``zoo``), its scores on the test split from
    its test ``probs``, and how it grew step by step."""
    licenses = {spec.id: spec.license for spec in zoo.models}
    labels = splits.test.labels
    per_class = per_class_accuracy(probs, labels, len(splits.class_names))
    growth, total = [], np.zeros_like(probs)
    increments = selection.increments or (1.0,) * len(selection.order)
    for step, (index, increment) in enumerate(zip(selection.order, increments, strict=True)):
        total += increment * trials[index].test_probs
        growth.append(GrowthStep(trials[index].key, trials[index].model, float(selection.history[step]),
                                 accuracy(total, labels)))  # fmt: skip
    return EnsembleResult(
        members=[
            Member(
                trials[i].key,
                trials[i].model,
                float(selection.weights[i]),
                trials[i].config,
                trials[i].result.ingredients,
                licenses[trials[i].model],
            )
            for i in selection.members
        ],  # fmt: skip
        val_nll=selection.val_nll,
        test=Scores(**summarize(probs, labels)),
        per_class_accuracy=dict(zip(splits.class_names, per_class, strict=True)),
        gflops_per_image=float(sum(trials[i].gflops for i in selection.members)),
        growth=growth,
    )


def soup_result(soup: TrialRecord) -> SoupResult:
    return SoupResult(
        soup.key, soup.model, list(soup.result.soup or ()), soup.val.accuracy, soup.val.nll,
        soup.test, soup.gflops,
    )  # fmt: skip


def reliability_of(ensemble: np.ndarray, best: TrialRecord, labels: np.ndarray) -> dict[str, list[ReliabilityBin]]:
    """The reliability diagrams of the ensemble's and the best trial's test probabilities."""
    return {
        name: [ReliabilityBin(**row) for row in reliability(probs, labels)]
        for name, probs in (("ensemble", ensemble), ("best_single", best.test_probs))
    }


def baseline(group: Sequence[TrialRecord], labels: np.ndarray) -> Baseline:
    """The equal-weight average of ``group`` (trials of one model: one trial, or its seeds) on the test ``labels``."""
    probs = average([t.test_probs for t in group], np.ones(len(group)))
    return Baseline(
        model=group[0].model,
        trials=[t.key for t in group],
        test=Scores(**summarize(probs, labels)),
        gflops_per_image=float(sum(t.gflops for t in group)),
    )


def probe_result(probe: Probe, labels: np.ndarray) -> LinearProbeResult:
    """The frozen-features baseline's record, scored on the test ``labels``."""
    return LinearProbeResult(
        probe.model, probe.strength, probe.val_accuracy, Scores(**summarize(probe.test_probs, labels)), probe.gflops
    )


def units(ranking: Sequence[RankedModel], trials: Sequence[TrialRecord]) -> Units:
    """Units this invocation computed vs found done: per-model features of the ranking, and trials."""
    reused = sum(row.images_per_second is None for row in ranking) + sum(t.reused for t in trials)
    return Units(computed=len(ranking) + len(trials) - reused, reused=reused)


def manifest(splits: Splits, members: Sequence[tuple[TrialRecord, float]], store: RunStore) -> dict[str, object]:
    """What ``zoofit predict`` needs to rebuild the ensemble (its trials with their weights) from the run folder,
    and the size of the test images (``zoofit export``'s default input), where they all have one."""
    images = splits.test.images if splits.test is not None else None
    shape = list(images.shape[1:3]) if isinstance(images, np.ndarray) else None
    return {
        "class_names": list(splits.class_names),
        "members": [entry(t, w, store) for t, w in members],
        "image_shape": shape,
    }


def entry(trial: TrialRecord, weight: float, store: RunStore) -> dict[str, object]:
    """The manifest entry of ``trial`` with its ensemble ``weight``."""
    return member_entry(trial.result.json(), weight, store.checkpoint_name(trial.key))
