"""What the terminal tables and report.html show of a run's result: one set of rows for both, values unformatted."""

from __future__ import annotations

from typing import Any

from zoofit.members import member_label
from zoofit.result import DomainResult, EnsembleResult, RobustnessResult, RunResult, WeightByKind

RESULT_COLUMNS = ("classifier", "accuracy", "NLL", "ECE", "GFLOPs/image", "members")
_CLASSIFIERS = ("ensemble", "best_single")
ROBUSTNESS_COLUMNS = (
    "test images",
    *(f"{m}: {c.replace('_', ' ')}" for m in ("accuracy", "NLL", "ECE") for c in _CLASSIFIERS),
)
_CONDITION_LABELS = {"clean": "as they are", "mean": "mean of the corruptions"}
WEIGHT_COLUMNS = ("split by", "part", "share of the weight")
DOMAIN_COLUMNS = ("domain", "classifier", "images", "classes", "accuracy", "NLL", "ECE")
_CLASSIFIER_LABELS = {"ensemble": "greedy ensemble", "best_single": "best single (by val)",
                      "seed_ensemble": "seeds of best single", "student": "distilled student"}  # fmt: skip


def result_rows(result: RunResult) -> list[list[Any]]:
    """The ensemble (named for what the safeguard delivered) and its distilled student, then the single-trial
    baselines, then the soups: name, test accuracy, NLL, ECE, GFLOPs per image, members."""
    ensemble, before = result.ensemble, result.before_refit
    fell_back = ensemble.safeguard is not None and ensemble.safeguard.fell_back
    name = "single best candidate (safeguard)" if fell_back else f"{result.sweep.ensemble.selection} ensemble"
    named = [(name + " (refit)" * (before is not None), ensemble.test, ensemble.gflops_per_image, _members(ensemble))]
    if before is not None:
        named.append((f"{name} before refit", before.test, before.gflops_per_image, _members(before)))
    if student := result.student:
        named.append((_CLASSIFIER_LABELS["student"], student.test, student.gflops_per_image,
                      f"{student.model} ({student.steps} steps, {student.unlabelled_images} unlabelled images; agrees "
                      f"with the ensemble on {student.agreement:.1%} of test images)"))  # fmt: skip
    named += [
        ("best single (by val)", result.best_single.test, result.best_single.gflops_per_image, result.best_single.model),
        (f"best of {result.proxy.name}-top model", result.top_ranked.test, result.top_ranked.gflops_per_image,
         result.top_ranked.model),
    ]  # fmt: skip
    if seeds := result.seed_baseline:
        named.append((f"{len(seeds.trials)} seeds of best single", seeds.test, seeds.gflops_per_image, seeds.model))
    if probe := result.linear_probe:
        named.append(("logistic regression, frozen features", probe.test, probe.gflops_per_image,
                      f"{probe.model} (C={probe.strength:g})"))  # fmt: skip
    named += [
        (f"soup of {len(soup.ingredients)} trials", soup.test, soup.gflops_per_image, soup.model)
        for soup in result.soups
    ]
    return [[name, test.accuracy, test.nll, test.ece, gflops, who] for name, test, gflops, who in named]


def _members(ensemble: EnsembleResult) -> str:
    return ", ".join(f"{member_label(m)} x{m.weight:.2f} [{m.license or 'licence unknown'}]" for m in ensemble.members)


def robustness_rows(report: RobustnessResult) -> list[list[Any]]:
    """Per condition (clean, each corruption, their mean): its label, then accuracy, NLL and ECE of the ensemble
    and of the best single trial."""
    return [
        [_CONDITION_LABELS.get(condition, condition),
         *(getattr(by[c], m) for m in ("accuracy", "nll", "ece") for c in _CLASSIFIERS)]
        for condition, by in report.conditions.items()
    ]  # fmt: skip


def domain_rows(domains: dict[str, DomainResult]) -> list[list[Any]]:
    """Per shifted domain and classifier: the domain's name, the classifier, its images and classes, and the
    classifier's accuracy, NLL and ECE on them."""
    return [
        [name, _CLASSIFIER_LABELS.get(classifier, classifier), domain.images, len(domain.classes),
         scores.accuracy, scores.nll, scores.ece]
        for name, domain in domains.items()
        for classifier, scores in domain.scores.items()
    ]  # fmt: skip


def per_class_columns(domain: DomainResult) -> tuple[str, ...]:
    return ("class", *(_CLASSIFIER_LABELS.get(c, c) for c in domain.per_class_accuracy))


def per_class_rows(domain: DomainResult) -> list[list[Any]]:
    """Per class the domain has images of: each classifier's accuracy on them."""
    return [[name, *(by[name] for by in domain.per_class_accuracy.values())] for name in domain.classes]


def weight_rows(weights: WeightByKind) -> list[list[Any]]:
    """The ensemble's weight by kind of member, by upstream model, by depth, and on seeds of one model."""
    split = [("kind", weights.kinds), ("upstream model", weights.models), ("depth", weights.depths)]
    rows = [[by, part, share] for by, shares in split for part, share in shares.items()]
    return [*rows, ["seeds", "trials of one model in several seeds", weights.seeds]]
