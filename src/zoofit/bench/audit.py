"""Can the ranking be trusted here? Every model fine-tuned, and each proxy's Kendall tau and regret against that.

The proxies are the registered ones (kNN accuracy, LogME: scored on the run's cached features, nothing extracted
again) and the models' size (parameters, larger first) as the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from zoofit.bench.result import ProxyAudit, SuiteAudit, TaskAudit, TaskResult, finite_mean
from zoofit.data import Splits
from zoofit.estimator import clone
from zoofit.rank.proxies import PROXIES

SIZE = "size"  # the baseline proxy: parameters, larger first


def agreement(scores: dict[str, float], accuracy: dict[str, float]) -> ProxyAudit:
    """Kendall's tau of ``scores`` with the fine-tuned ``accuracy`` per model, the top pick (the higher score; the
    first model by name on a tie) and its regret."""
    from scipy.stats import kendalltau

    models = sorted(accuracy)
    tau = kendalltau([scores[m] for m in models], [accuracy[m] for m in models]).statistic
    top = min(models, key=lambda m: (-scores[m], m))
    return ProxyAudit(None if math.isnan(tau) else float(tau), top, max(accuracy.values()) - accuracy[top])


def audit_task(fit, splits: Splits, run: str, progress=None) -> TaskAudit:
    """The audit of a fitted :class:`~zoofit.ZooFit` whose sweep fine-tuned every model: each model's best trial
    by validation, its test accuracy, and each proxy's agreement with those."""
    from zoofit.pipeline import best_trial

    models = {trial.model for trial in fit.trials_}
    accuracy = {m: float(best_trial(t for t in fit.trials_ if t.model == m).test.accuracy) for m in sorted(models)}
    scores: dict[str, dict[str, float]] = {}
    for name in PROXIES:
        config = fit.ranker_.config  # the same models at the same size: the features come from the cache
        own = config.proxy_settings if name == config.proxy else None  # another proxy at its defaults
        ranker = clone(fit.ranker_, config=replace(config, proxy=name, proxy_settings=own)).fit(
            splits, progress=progress
        )
        scores[name] = {row.model: float(row.score) for row in ranker.ranking_ if row.model in models}
    specs = {spec.id: spec for spec in fit.ranker_.zoo_.models}
    scores[SIZE] = {m: float(parameters(specs[m])) for m in models}
    return TaskAudit(run, accuracy, scores, {name: agreement(s, accuracy) for name, s in scores.items()})


def parameters(spec) -> int:
    """The parameters of ``spec``'s network without its classifier, counted on the meta device (nothing read)."""
    import torch

    from zoofit.zoo.load import create_model

    with torch.device("meta"):
        return sum(p.numel() for p in create_model(spec, 0).parameters())


def audit_suite(tasks: Sequence[TaskResult]) -> SuiteAudit | None:
    """Each proxy's mean tau and mean regret over the audited tasks (None where none was audited)."""
    audits = [task.audit for task in tasks if task.audit is not None]
    if not audits:
        return None
    names = list(audits[0].proxies)
    return SuiteAudit(
        {name: finite_mean([a.proxies[name].tau for a in audits]) for name in names},
        {name: sum(a.proxies[name].regret for a in audits) / len(audits) for name in names},
        len(audits),
    )
