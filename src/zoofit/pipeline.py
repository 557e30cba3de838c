"""The method end to end: rank -> fine-tune sweep -> greedy ensemble -> evaluate, as one estimator.

``ZooFit.fit`` tells the story; each stage is a function below that returns what the next one needs.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoofit.data import DataConfig, Splits
from zoofit.data.domain import Domain
from zoofit.device import resolve_device
from zoofit.distillation.student import distil_into, student_spec
from zoofit.ensemble import SELECTIONS, Selection, average, guarded, member_entry
from zoofit.errors import ParameterError, ZoofitError
from zoofit.estimator import Estimator, Machine, ZooSelection, shared_settings
from zoofit.evaluate import accuracy, per_class_accuracy, reliability, summarize
from zoofit.execute import Executor, named
from zoofit.finetune import TrialContext, TrialRecord, TrialRunner, resolve_workers
from zoofit.finetune.budgeted import Budget
from zoofit.finetune.sweep import Job, Placement, placements, plan_trials, trial_context
from zoofit.labelling.labelled import record_labelled
from zoofit.layout import CONFIG, MANIFEST, TRIALS
from zoofit.members import KINDS, PoolInputs, pool_candidates, refit_pool
from zoofit.progress import Progress, SilentProgress
from zoofit.rank import RankConfig, RankedModel, Ranker
from zoofit.rank.probe import Probe, linear_probe
from zoofit.rank.proxies import describe
from zoofit.replay import RunConfig
from zoofit.result import (
    Baseline,
    DomainResult,
    EnsembleResult,
    FailedTrial,
    GrowthStep,
    LinearProbeResult,
    ProxyResult,
    ReliabilityBin,
    RobustnessResult,
    RunResult,
    SafeguardResult,
    Scores,
    SeedReplica,
    SoupResult,
    StageTimer,
    StudentResult,
    Units,
    WeightByKind,
)
from zoofit.robustness import TrialPredictions, classifiers, domain_result, robustness
from zoofit.store import RunStore
from zoofit.sweep_config import SearchSettings, SweepConfig, default_preset, preset
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
    candidates_ : list of TrialRecord
        The pool the ensemble was chosen from: candidates of every kind the sweep's ``members`` names (the
        trials among them), refit where the sweep refits.
    selection_ : Selection
        The selection over ``candidates_``.
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
        """Check every setting (the sweep, workers, device, precision, the zoo and its models, the student's
        model) before any data is read."""
        device = resolve_device(self.machine.device)
        resolve_workers(self.workers, device)
        config = self.sweep_config(device)
        zoo = self._ranker(config.search.image_size, self.machine.precision, self.unit_executor()).check()
        if config.distill.distill and config.distill.student is not None:
            student_spec(config.distill.student, zoo.models, ())

    def sweep_config(self, device: torch.device) -> SweepConfig:
        """The sweep, validated (its selection among :data:`~zoofit.ensemble.SELECTIONS`): as given, the named
        preset, or the device's."""
        if isinstance(self.sweep, SweepConfig):
            config = self.sweep.validate()
        else:
            config = preset(self.sweep or default_preset(gpu=device.type == "cuda"))
        SELECTIONS.get(config.ensemble.selection)
        for kind in config.ensemble.members:
            KINDS.get(kind)
        return config

    def run_config(self, device: torch.device, data: DataConfig | None, domains: dict[str, Domain]) -> RunConfig:
        """Every setting of a run of this estimator on ``data`` (as :class:`RunConfig` records it in
        ``config.yaml``); a zoo or executor given as an object is recorded by its name."""
        zoo = self.zoo if isinstance(self.zoo, str | Path) else self.zoo.name
        executor = self.executor if isinstance(self.executor, str) else type(self.executor).__name__
        chosen = self.selection
        return RunConfig(
            zoo=str(zoo), models=_listed(chosen.models), exclude=_listed(chosen.exclude),
            licenses=_listed(chosen.licenses), data=data, shift_data={name: d.data for name, d in domains.items()},
            ranking=self.ranking, sweep=self.sweep_config(device), seed=self.seed, device=self.machine.device,
            precision=self.machine.precision, workers=self.workers, executor=executor,
        )  # fmt: skip

    def _ranker(
        self, size: int | None, precision: str, executor: Executor | None, models: list[str] | None = None
    ) -> Ranker:
        """The ranking of a run: every model at the run's ``size``, or at its own where it takes no other."""
        ranking = replace(self.ranking, image_size=size, own_size_if_needed=True)
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
        data: DataConfig | None = None,
        domains: dict[str, Domain] | None = None,
        progress: Progress | None = None,
        started: float | None = None,
    ) -> ZooFit:
        """Run the method on ``splits`` into the run folder ``out`` (resuming what is already there), as its one
        writer (see :meth:`RunStore.writer`); a folder holds the runs of one dataset. ``data``, the settings the
        splits were drawn with, goes into the folder's ``config.yaml`` with every other setting, so that
        ``zoofit run --config`` replays the run. The classifiers are also scored on each of the shifted ``domains``
        (see :func:`~zoofit.data.load_domains`), by name. A sweep's ``time_limit`` counts from ``started`` (a
        ``time.perf_counter()``; default now)."""
        started = time.perf_counter() if started is None else started
        if (executor := self.unit_executor()) is not None:
            executor.check()  # a cluster that does not answer is one line before the folder is touched
        with RunStore(Path(out)).writer() as store:
            return self._fit(splits, store, data, domains or {}, progress or SilentProgress(), started)

    def _fit(
        self,
        splits: Splits,
        store: RunStore,
        data: DataConfig | None,
        domains: dict[str, Domain],
        progress: Progress,
        started: float,
    ) -> ZooFit:
        """The method's stages, each a function of what the ones before it gave."""
        if splits.test is None:
            raise ZoofitError("the data has no test split; give DIR/test/, a 'test' split, or a test_fraction")
        timer, device = StageTimer(), resolve_device(self.machine.device)
        resolve_workers(self.workers, device)  # a bad number of workers is reported before any work
        config = self.sweep_config(device)
        size = resolution(config.search, splits)
        store.claim_data(splits.fingerprint, splits.describe())
        store.write_text(CONFIG, self.run_config(device, data, domains).text())
        context = trial_context(splits, store, self.machine, device, config)
        prices = [KINDS[kind].price for kind in config.ensemble.members]
        budget = Budget(config, size, context, started, prices) if config.budget.time_limit is not None else None
        ranker = self._rank(splits, store, size, context.eval_precision, budget, timer, progress)
        with timer.stage("linear_probe"):
            probe = linear_probe(ranker, splits)
        models = placements(ranker.ranking_, ranker.zoo_.models, size)
        planned = budget.sweep(models, store, self.seed) if budget is not None else config  # cut to the time left
        executor, seed = self.unit_executor(), self.seed
        with timer.stage("fine_tune"):
            runner, jobs, trials = fine_tune(models, planned, seed, context, self.workers, executor, progress)
        pool = choose(trials, runner, jobs, splits, planned, seed, ranker, timer, progress)
        store.write_json(MANIFEST, manifest(splits, pool.members, store))
        record_labelled(store.root, splits, device=context.device, precision=context.eval_precision,
                        batch_size=context.eval_batch_size)  # fmt: skip
        final = budget.robustness(len(pool.members) + 1) if budget is not None else planned  # its robustness, too
        with timer.stage("robustness"):
            shifted, domain_results = evaluate_shift(pool, splits, domains, final, context, store, seed, progress)
        student = None
        if final.distill.distill:
            with timer.stage("distill"):
                student = distil_stage(store, splits, ranker, final, context, budget, executor, seed, started, progress)
        self.ranker_, self.trials_, self.candidates_, self.selection_ = ranker, trials, pool.candidates, pool.selection
        failed = [*runner.failed, *pool.failed]
        self.result_ = replace(
            run_result(pool, splits, final, ranker, probe, shifted, domain_results, budget, failed, timer),
            student=student,
        )
        store.write_csv(TRIALS, pool.rows() + [failure.row() for failure in failed])
        self.result_.write(store.root)
        return self

    def _rank(
        self,
        splits: Splits,
        store: RunStore,
        size: int | None,
        precision: str,
        budget: Budget | None,
        timer: StageTimer,
        progress: Progress,
    ) -> Ranker:
        """The zoo ranked at ``size`` (under a time limit, the models the ``budget`` keeps), saved in ``store``."""
        executor, kept = self.unit_executor(), None
        if budget is not None:
            with timer.stage("plan"):
                ranker = self._ranker(size, precision, executor)
                cached = ranker.cached(splits.ranking_set)
                kept = budget.zoo(ranker.check(), len(splits.ranking_set), store, self.seed, cached)
        with timer.stage("rank"):
            ranker = self._ranker(size, precision, executor, kept).fit(splits, progress=progress)
            ranker.save(store.root)
        return ranker


def _listed(names: tuple[str, ...] | None) -> list[str] | None:
    """``names`` as a list (as ``config.yaml`` writes it)."""
    return list(names) if names is not None else None


def resolution(search: SearchSettings, splits: Splits) -> int | None:
    """The resolution the run ranks and fine-tunes every model at (``None``: each model's own; a model that takes
    no other is ranked, and so fine-tuned, at its own): the one place a run's size is decided."""
    size = search.resolution(splits.ranking_set.largest_area())
    if size != search.image_size:
        log.info("images smaller than 96x96: ranking and fine-tuning at %d px", size)
    return size


def fine_tune(
    models: Sequence[Placement],
    config: SweepConfig,
    seed: int,
    context: TrialContext,
    workers: int | None,
    executor: Executor | None,
    progress: Progress,
) -> tuple[TrialRunner, list[Job], list[TrialRecord]]:
    """The sweep's trials trained (those the run holds reused), with the runner that trained them."""
    jobs, costs = plan_trials(models, config, seed)
    workers = resolve_workers(workers, torch.device(context.device), costs)
    runner = TrialRunner(context, workers=workers, progress=progress, executor=executor or "local")
    log.info("fine-tuning %d trials, %d at a time", len(jobs), runner.workers)
    trials = runner.run(jobs, costs)
    if not trials:
        raise runner.none_finished()
    return runner, jobs, trials


@dataclass(frozen=True)
class Pool:
    """What the ensemble was chosen from and what it chose: the ``candidates`` (of every kind the run's ``members``
    names, the best trial's seed ``replicas`` among the trials; refit where the sweep refits), the ``selection``
    over them, the ``best`` trial and the ``top_ranked`` model's, the seed baseline's ``seeds`` (the best and its
    other seeds; empty without one), the ``selected`` candidates before any refit, every unit this run computed or
    reused (``computed``), and the candidates that failed (``failed``; a failed trial is its runner's)."""

    candidates: list[TrialRecord]
    selection: Selection
    best: TrialRecord
    top_ranked: TrialRecord
    seeds: list[TrialRecord]
    selected: list[TrialRecord]
    computed: list[TrialRecord]
    failed: list[FailedTrial]
    replicas: list[TrialRecord]

    @property
    def members(self) -> list[tuple[TrialRecord, float]]:
        """The ensemble's members with their weights."""
        return [(self.candidates[i], float(self.selection.weights[i])) for i in self.selection.members]

    @property
    def soups(self) -> list[TrialRecord]:
        """The soups among the candidates (before any refit)."""
        return [candidate for candidate in self.selected if candidate.kind == "soup"]

    def rows(self) -> list[dict[str, object]]:
        """The lines of trials.csv: each unit computed or reused, and whether the selection could choose it."""
        pool = {record.key for record in self.selected}
        return [{**record.row(), "candidate": record.key in pool} for record in self.computed]


def choose(
    trials: list[TrialRecord],
    runner: TrialRunner,
    jobs: Sequence[Job],
    splits: Splits,
    config: SweepConfig,
    seed: int,
    ranker: Ranker,
    timer: StageTimer,
    progress: Progress,
) -> Pool:
    """The best trial's other seeds (its replicas and the seed baseline's), the pool of candidates of every kind the
    sweep names (the replicas among the trials), the ensemble's selection over it, its baselines, and the refits of
    its members."""
    best = best_trial(trials)
    with timer.stage("pool"):  # the best trial's other seeds trained first: the kinds take the replicas as trials
        other_seeds = runner.run(seed_jobs(best, jobs, config.other_seeds()))
        replicas = seeds_of(best, other_seeds, config.ensemble.seed_replicas)
        inputs = PoolInputs(trials + replicas, runner, {spec.id: spec for spec, _ in jobs}, ranker, config, seed,
                            progress)  # fmt: skip
        made = pool_candidates(inputs)
    if not made.records:
        raise ZoofitError(f"the pool of {','.join(config.ensemble.members)} holds no candidate; add 'trial' to members")
    with timer.stage("ensemble_evaluate"):
        candidates = made.records
        selection = select_ensemble(candidates, splits.val.labels, config, seed)
        top_model = top_finished(ranker.ranking_, trials)
        top_ranked = best_trial(t for t in trials if t.model == top_model)
    baseline = seeds_of(best, other_seeds, config.evaluation.seed_baseline - 1)
    seeds = [best, *baseline] if baseline else []
    computed = list({t.key: t for t in [*trials, *other_seeds, *candidates]}.values())
    pool = Pool(candidates, selection, best, top_ranked, seeds, candidates, computed, made.failed, replicas)
    if not config.ensemble.refit:
        return pool
    with timer.stage("refit"):  # the members and the seed baseline, made again on train + validation
        refits = refit_pool([candidates[i] for i in selection.members] + seeds, inputs)
    return replace(
        pool, candidates=[refits.of.get(c.key, c) for c in candidates], seeds=[refits.of.get(t.key, t) for t in seeds],  # a refit that failed: as made on train
        computed=pool.computed + list(refits.of.values()), failed=pool.failed + refits.failed,
    )  # fmt: skip


def evaluate_shift(
    pool: Pool,
    splits: Splits,
    domains: dict[str, Domain],
    config: SweepConfig,
    context: TrialContext,
    store: RunStore,
    seed: int,
    progress: Progress,
) -> tuple[RobustnessResult | None, dict[str, DomainResult]]:
    """The ensemble, the best trial and the seed ensemble on corrupted test images and on the shifted domains."""
    member_entries = [entry(t, w, store) for t, w in pool.members]
    seed_entries = [entry(t, 1.0, store) for t in [pool.best, *pool.seeds]] if pool.seeds else []
    predictions = TrialPredictions(
        store.root, [*member_entries, entry(pool.best, 1.0, store), *seed_entries], splits.class_names,
        device=context.device, precision=context.eval_precision, batch_size=context.eval_batch_size,
    )  # fmt: skip
    groups = classifiers(member_entries, pool.best.key, [e["trial"] for e in seed_entries])
    evaluation = config.evaluation
    shifted = None if not evaluation.shift_images else robustness(
        splits.test, predictions, groups, count=evaluation.shift_images, severity=evaluation.shift_severity,
        seed=seed, progress=progress,
    )  # fmt: skip
    return shifted, evaluate_domains(domains, predictions, groups, progress)


def run_result(
    pool: Pool,
    splits: Splits,
    config: SweepConfig,
    ranker: Ranker,
    probe: Probe,
    shifted: RobustnessResult | None,
    domains: dict[str, DomainResult],
    budget: Budget | None,
    failed: list[FailedTrial],
    timer: StageTimer,
) -> RunResult:
    """The run's result, for ``summary.json`` (``failed``: the trials that did not finish)."""
    labels = splits.test.labels
    test_probs = average([t.test_probs for t in pool.candidates], pool.selection.counts)  # the ensemble's
    return RunResult(
        data=splits.describe(), preset=config.name, sweep=config, proxy=ProxyResult(**describe(ranker.proxy_)),
        ensemble=ensemble_result(pool.candidates, pool.selection, test_probs, splits, ranker.zoo_),
        best_single=baseline([pool.best], labels), top_ranked=baseline([pool.top_ranked], labels),
        seed_baseline=baseline(pool.seeds, labels) if pool.seeds else None, robustness=shifted,
        units=units(ranker.ranking_, pool.computed), stage_seconds=timer.seconds, wall_seconds=timer.wall,
        soups=[soup_result(soup) for soup in pool.soups], reliability=reliability_of(test_probs, pool.best, labels),
        domains=domains, linear_probe=probe_result(probe, labels),
        plan=budget.result() if budget is not None else None, failed_trials=failed,
        skipped=list(splits.skipped), seed_replicas=replica_results(pool),
        before_refit=ensemble_result(
            pool.selected, pool.selection, average([t.test_probs for t in pool.selected], pool.selection.counts),
            splits, ranker.zoo_,
        ) if config.ensemble.refit else None,
    )  # fmt: skip


def replica_results(pool: Pool) -> list[SeedReplica]:
    """The pool's seed replicas with their weights in the ensemble (as chosen, before any refit)."""
    weights = dict.fromkeys((t.key for t in pool.replicas), 0.0)
    for index in pool.selection.members:
        if pool.selected[index].key in weights:
            weights[pool.selected[index].key] = float(pool.selection.weights[index])
    return [SeedReplica(t.key, t.model, t.config.seed, t.val, t.test, weights[t.key]) for t in pool.replicas]


def distil_stage(
    store: RunStore,
    splits: Splits,
    ranker: Ranker,
    config: SweepConfig,
    context: TrialContext,
    budget: Budget | None,
    executor: Executor | None,
    seed: int,
    started: float,
    progress: Progress,
) -> StudentResult | None:
    """The ensemble distilled into one student (``run --distill``; see :func:`~zoofit.distillation.distil_into`);
    under a time limit, none where it does not fit the time left (noted as a cut of the plan)."""
    ranking = [(row.model, row.input_size) for row in ranker.ranking_]
    try:
        return distil_into(store, splits, ranker.zoo_.models, ranking, config, context, executor=executor or "local",
                           seed=seed, started=started, progress=progress)  # fmt: skip
    except ParameterError as error:
        if budget is None or error.parameters != ["time_limit"]:
            raise
        budget.note([f"student ({error})"])
        return None


def evaluate_domains(
    domains: dict[str, Domain], predictions: TrialPredictions, groups: dict, progress: Progress
) -> dict[str, DomainResult]:
    """Each classifier of ``groups`` scored on each shifted domain, by its name (no progress without domains)."""
    results: dict[str, DomainResult] = {}
    if not domains:
        return results
    with progress.task("shifted domains", total=len(domains)) as task:
        for name, domain in domains.items():
            results[name] = domain_result(domain, predictions, groups)
            task.advance()
    return results


def top_finished(ranking: Sequence[RankedModel], trials: Sequence[TrialRecord]) -> str:
    """The model ranked highest of those with a finished trial (the top-ranked one, unless all its trials failed)."""
    finished = {trial.model for trial in trials}
    return next(row.model for row in ranking if row.model in finished)


def seed_jobs(best: TrialRecord, jobs: Sequence[Job], count: int) -> list[Job]:
    """The ``best`` trial with ``count`` other seeds (its seed + 1, + 2, ...), for its replicas and the seed
    baseline."""
    spec = next(spec for spec, _ in jobs if spec.id == best.model)
    return [(spec, replace(best.config, seed=best.config.seed + i)) for i in range(1, count + 1)]


def seeds_of(best: TrialRecord, others: Sequence[TrialRecord], count: int) -> list[TrialRecord]:
    """Those of ``others`` (the ``best`` trial's other seeds that finished) among its first ``count`` other seeds."""
    return [trial for trial in others if trial.config.seed - best.config.seed <= count]


def select_ensemble(trials: Sequence[TrialRecord], labels: np.ndarray, config: SweepConfig, seed: int) -> Selection:
    """The sweep's selection (greedy forward selection with replacement, or its bagged form, whose halves of the
    validation set are drawn with ``seed``) over ``trials``, within the sweep's budget; with the safeguard, the
    single best trial instead where the selection does not beat it out of bag (resamples drawn with ``seed``)."""
    settings = config.ensemble
    budget = {
        "max_members": settings.max_members,
        "max_gflops": settings.max_gflops,
        "gflops": [t.gflops for t in trials],
    }
    select = functools.partial(
        SELECTIONS[settings.selection], max_steps=settings.ensemble_steps, bags=settings.bags, seed=seed, **budget
    )
    probs = [t.val_probs for t in trials]
    return guarded(select, probs, labels, seed=seed, **budget) if settings.safeguard else select(probs, labels)


def best_trial(trials: Iterable[TrialRecord]) -> TrialRecord:
    """The best by validation accuracy, then by lower validation NLL; the earlier on a tie."""
    return max(trials, key=lambda trial: (trial.val.accuracy, -trial.val.nll))


def ensemble_result(
    trials: Sequence[TrialRecord], selection: Selection, probs: np.ndarray, splits: Splits, zoo: Zoo
) -> EnsembleResult:
    """The selected ensemble's members (with their models' licences in ``zoo``), its scores on the test split from
    its test ``probs``, and how it grew step by step."""
    licenses = {spec.id: spec.license for spec in zoo.models}
    labels = splits.test.labels
    per_class = per_class_accuracy(probs, labels, len(splits.class_names))
    members = [trials[i].member(float(selection.weights[i]), licenses[trials[i].model]) for i in selection.members]
    growth, total = [], np.zeros_like(probs)
    increments = selection.increments or (1.0,) * len(selection.order)
    for step, (index, increment) in enumerate(zip(selection.order, increments, strict=True)):
        total += increment * trials[index].test_probs
        growth.append(GrowthStep(trials[index].key, trials[index].model, float(selection.history[step]),
                                 accuracy(total, labels)))  # fmt: skip
    return EnsembleResult(
        members=members,
        val_nll=selection.val_nll,
        test=Scores(**summarize(probs, labels)),
        per_class_accuracy=dict(zip(splits.class_names, per_class, strict=True)),
        gflops_per_image=float(sum(trials[i].gflops for i in selection.members)),
        growth=growth,
        by_kind=WeightByKind.of(members),
        safeguard=safeguard_result(selection, trials),
    )


def safeguard_result(selection: Selection, trials: Sequence[TrialRecord]) -> SafeguardResult | None:
    """The safeguard's decision on ``selection`` over ``trials``, for ``summary.json`` (None: no safeguard)."""
    if (decision := selection.safeguard) is None:
        return None
    return SafeguardResult(
        trials[decision.candidate].key, decision.gain, decision.low, decision.high, decision.level, decision.fell_back
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
