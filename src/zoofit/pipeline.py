"""The method end to end: rank -> fine-tune sweep -> greedy ensemble -> evaluate, as one estimator."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from zoofit.data import Splits
from zoofit.device import default_batch_size, resolve_device, resolve_precision
from zoofit.ensemble import Selection, average, greedy_select, member_entry
from zoofit.errors import ZoofitError
from zoofit.evaluate import per_class_accuracy, summarize
from zoofit.finetune import SweepConfig, TrialContext, TrialRecord, TrialRunner, preset, resolve_workers
from zoofit.layout import MANIFEST, SUMMARY, TRIALS
from zoofit.progress import Progress, SilentProgress
from zoofit.rank import Ranker
from zoofit.rank.proxies import describe
from zoofit.robustness import robustness
from zoofit.store import Cache, RunStore
from zoofit.zoo import Zoo

log = logging.getLogger("zoofit")


class ZooFit:
    """Rank a zoo by a proxy (kNN by default), fine-tune the top models with a small sweep, and ensemble them greedily.

    Parameters
    ----------
    zoo : a preset name, a YAML zoo file, ``"timm:<name>,..."`` or a :class:`Zoo`.
    preset : ``"quick"`` (CPU) or ``"paper"`` (GPU); ``None`` picks by the device.
    sweep : overrides of the preset (``top_k``, ``lrs``, ``steps``, ``batch_size``, ``image_size`` with 0
        for each model's own, ``max_members``, ``max_gflops``, ``ensemble_steps``, ``seed_baseline``, ``flip``,
        ``freeze_stride``, ``shift_images``, ``shift_severity``).
    proxy, k, metric : the ranking's proxy and the kNN's settings, as for :class:`~zoofit.Ranker`.
    device, precision, seed, models, cache_dir : as for :class:`~zoofit.Ranker`; ``seed`` seeds every trial.
    workers : trials trained at once, one in this process and the others in ``workers - 1`` worker processes
        (``None``: 4 on a GPU; on a CPU one per core up to 4, or 1 where the trials would not split evenly
        across them - see :func:`~zoofit.finetune.resolve_workers`; 1 trains them one after another here).

    Attributes
    ----------
    preset_ : the name of the preset used.
    ranker_ : the fitted :class:`~zoofit.Ranker`.
    trials_ : list of :class:`TrialRecord` of the sweep.
    selection_ : the greedy :class:`Selection` over ``trials_``.
    summary_ : the dictionary written to ``summary.json`` (``summary_["robustness"]``: see
        :func:`~zoofit.robustness.robustness`).

    Examples
    --------
    >>> from zoofit import ZooFit, load_data
    >>> fit = ZooFit("demo", preset="quick").fit(load_data("fashion-mnist"), "runs/fm")  # doctest: +SKIP
    >>> fit.summary_["test_accuracy"]                                                    # doctest: +SKIP
    """

    def __init__(
        self,
        zoo: str | Path | Zoo = "demo",
        *,
        preset: str | None = None,
        proxy: str = "knn",
        k: int = 1,
        metric: str = "cosine",
        device: str = "auto",
        precision: str = "auto",
        seed: int = 0,
        models: list[str] | None = None,
        cache_dir: str | Path | None = None,
        workers: int | None = None,
        **sweep: Any,
    ) -> None:
        self.zoo = zoo
        self.preset = preset
        self.proxy = proxy
        self.k = k
        self.metric = metric
        self.device = device
        self.precision = precision
        self.seed = seed
        self.models = models
        self.cache_dir = cache_dir
        self.workers = workers
        self.sweep = sweep

    def preset_name(self, gpu: bool) -> str:
        return self.preset or ("paper" if gpu else "quick")

    def check(self) -> None:
        """Check every setting (the preset and its overrides, workers, device, precision, the zoo and its
        models) before any data is read."""
        device = resolve_device(self.device)
        resolve_workers(self.workers, device)
        self._ranker(self._preset_config(gpu=device.type == "cuda"), self.precision).check()

    def sweep_config(self, gpu: bool, largest_area: int) -> SweepConfig:
        """The preset with this estimator's overrides, validated, for data whose largest image has
        ``largest_area`` pixels."""
        config = self._preset_config(gpu)
        sized = config.for_images(largest_area)
        if sized.image_size != config.image_size:
            log.info(
                "images smaller than 96x96: ranking and fine-tuning at %d px (--image-size 0: each model's own)",
                sized.image_size,
            )
        return sized

    def _preset_config(self, gpu: bool) -> SweepConfig:
        """The preset with this estimator's overrides, validated."""
        overrides = dict(self.sweep)
        config = preset(self.preset_name(gpu))
        if overrides.get("image_size") == 0:  # 0 asks for each model's own resolution, whatever the data
            config = replace(config, image_size=None, small_image_size=None)
            overrides.pop("image_size")
        try:
            config = config.override(seed=self.seed, **overrides)
        except ValueError as error:
            raise ZoofitError(str(error)) from error
        config.validate()
        return config

    def _ranker(self, config: SweepConfig, precision: str) -> Ranker:
        return Ranker(
            self.zoo, proxy=self.proxy, k=self.k, metric=self.metric, image_size=config.image_size,
            device=self.device, precision=precision, models=self.models, cache_dir=self.cache_dir,
            own_size_if_needed=not self.sweep.get("image_size"),  # a preset's size, not the user's
        )  # fmt: skip

    def fit(self, splits: Splits, out: str | Path, *, progress: Progress | None = None) -> ZooFit:
        """Run the method on ``splits`` into the run folder ``out`` (resuming what is already there)."""
        start = time.perf_counter()
        if splits.test is None:
            raise ZoofitError("the data has no test split; give DIR/test/, a 'test' split, or --test-fraction")
        progress = progress or SilentProgress()
        device = resolve_device(self.device)
        precision = resolve_precision(self.precision, device)
        train_precision = resolve_precision(self.precision, device, training=True)
        resolve_workers(self.workers, device)  # a bad --workers is reported before any work
        self.preset_ = self.preset_name(gpu=device.type == "cuda")
        config = self.sweep_config(gpu=device.type == "cuda", largest_area=splits.ranking_set.largest_area())
        store = RunStore(Path(out))
        cache = Cache(Path(self.cache_dir) if self.cache_dir else None)

        ranker = self._ranker(config, precision).fit(splits, progress=progress)
        ranker.save(store.root)
        stages = {"rank": time.perf_counter() - start}
        specs = {spec.id: spec for spec in ranker.zoo_.models}

        context = TrialContext(
            splits, store.root, cache.root, str(device), train_precision, precision,
            config.eval_batch_size or default_batch_size(device),
        )  # fmt: skip
        top = ranker.ranking_[: config.top_k]
        plan = [  # each model at the size it was ranked at (its own, where it takes no other)
            (row, trial if config.image_size is None else replace(trial, image_size=row.input_size))
            for row in top
            for trial in config.trials()
        ]
        costs = [row.gflops * trial.steps * trial.batch_size for row, trial in plan]
        runner = TrialRunner(context, workers=resolve_workers(self.workers, device, costs), progress=progress)
        log.info("fine-tuning %d trials, %d at a time", len(plan), runner.workers)
        trials = runner.run([(specs[row.model], trial) for row, trial in plan], costs)
        stages["fine_tune"] = time.perf_counter() - start - sum(stages.values())
        selection = greedy_select(
            [t.val_probs for t in trials], splits.val.labels, max_steps=config.ensemble_steps,
            max_members=config.max_members, max_gflops=config.max_gflops, gflops=[t.gflops for t in trials],
        )  # fmt: skip
        best = max(trials, key=_validation_score)
        top_ranked = max((t for t in trials if t.model == top[0].model), key=_validation_score)
        seeds = range(1, config.seed_baseline)
        extra = runner.run([(specs[best.model], replace(best.config, seed=best.config.seed + i)) for i in seeds])
        stages["ensemble_evaluate"] = time.perf_counter() - start - sum(stages.values())  # incl. the seed baseline

        self.ranker_, self.trials_, self.selection_ = ranker, trials, selection
        summary = self._summary(splits, config, selection, trials, best, top_ranked, extra)
        manifest = _manifest(splits, [(trials[i], selection.weights[i]) for i in selection.members], store)
        store.write_json(MANIFEST, manifest)
        shift_start = time.perf_counter()
        summary["robustness"] = None if not config.shift_images else robustness(
            splits.test, manifest["members"], _entry(best, 1.0, store), store.root, count=config.shift_images,
            severity=config.shift_severity, seed=self.seed, device=context.device,
            precision=context.eval_precision, batch_size=context.eval_batch_size, progress=progress,
        )  # fmt: skip
        stages["robustness"] = time.perf_counter() - shift_start
        summary["units"] = _units(ranker, trials + extra)
        summary["stage_seconds"] = {name: round(seconds, 2) for name, seconds in stages.items()}
        summary["wall_seconds"] = time.perf_counter() - start
        store.write_csv(TRIALS, [t.row() for t in trials + extra])
        store.write_json(SUMMARY, summary)
        self.summary_ = summary
        return self

    def _summary(
        self,
        splits: Splits,
        config: SweepConfig,
        selection: Selection,
        trials: list[TrialRecord],
        best: TrialRecord,
        top_ranked: TrialRecord,
        seed_trials: list[TrialRecord],
    ) -> dict[str, Any]:
        labels = splits.test.labels
        probs = average([t.test_probs for t in trials], selection.counts)
        members = [trials[i] for i in selection.members]
        summary: dict[str, Any] = {
            "data": splits.describe(),
            "preset": self.preset_,
            "proxy": describe(self.ranker_.proxy_),
            "sweep": asdict(config),
            **{f"test_{name}": value for name, value in summarize(probs, labels).items()},
            "val_nll": selection.val_nll,
            "per_class_accuracy": dict(
                zip(splits.class_names, per_class_accuracy(probs, labels, len(splits.class_names)), strict=True)
            ),
            "members": [
                {"trial": t.key, "model": t.model, "weight": float(w), **asdict(t.config)}
                for t, w in zip(members, selection.weights[selection.members], strict=True)
            ],
            "gflops_per_image": float(sum(t.gflops for t in members)),
            "best_single": _trial_summary(best),
            "top_ranked": _trial_summary(top_ranked),
            "seed_baseline": None,
        }
        if seed_trials:
            group = [best, *seed_trials]
            seed_probs = average([t.test_probs for t in group], np.ones(len(group)))
            metrics = summarize(seed_probs, labels)
            summary["seed_baseline"] = {
                "trials": [t.key for t in group],
                "model": best.model,
                **{f"test_{name}": value for name, value in metrics.items()},
                "gflops_per_image": best.gflops * len(group),
            }
        return summary


def _validation_score(trial: TrialRecord) -> tuple[float, float]:
    """Best by validation accuracy, then by lower validation NLL."""
    return (trial.val["accuracy"], -trial.val["nll"])


def _trial_summary(trial: TrialRecord) -> dict[str, Any]:
    test = trial.test or {}
    return {
        "trial": trial.key,
        "model": trial.model,
        "test_accuracy": test.get("accuracy"),
        "test_nll": test.get("nll"),
        "test_ece": test.get("ece"),
        "gflops_per_image": trial.gflops,
    }


def _units(ranker: Ranker, trials: list[TrialRecord]) -> dict[str, int]:
    """Units this invocation computed vs found done: per-model features of the ranking, and trials."""
    reused = sum(row.images_per_second is None for row in ranker.ranking_) + sum(t.reused for t in trials)
    total = len(ranker.ranking_) + len(trials)
    return {"computed": total - reused, "reused": reused}


def _manifest(splits: Splits, members: list[tuple[TrialRecord, float]], store: RunStore) -> dict[str, Any]:
    """What ``zoofit predict`` needs to rebuild the ensemble (its trials with their weights) from the run folder."""
    return {"class_names": list(splits.class_names), "members": [_entry(t, w, store) for t, w in members]}


def _entry(trial: TrialRecord, weight: float, store: RunStore) -> dict[str, Any]:
    """The manifest entry of ``trial`` with its ensemble ``weight``."""
    return member_entry(trial.result, weight, store.checkpoint_name(trial.key))
