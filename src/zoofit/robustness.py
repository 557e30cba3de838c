"""Robustness of a finished run: its ensemble and its best single trial on test images under distribution shift,
synthetic (the corruptions of :mod:`zoofit.evaluate.shift`) and real (labelled images of other domains).

The trials are rebuilt from their checkpoints, as ``zoofit predict`` does. Each trial's probabilities for a set of
images are stored in the run folder (``shift/``), keyed by the trial and the images, so running the run again,
with the same or another ensemble, or evaluating it on a domain it has seen, predicts only what is new.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoofit.data import Domain, ImageSet, load_domain
from zoofit.device import default_batch_size, resolve_device, resolve_precision
from zoofit.ensemble import EnsembleClassifier, average, member_entry
from zoofit.errors import ZoofitError, first_line
from zoofit.evaluate import per_class_accuracy, summarize
from zoofit.evaluate.shift import CORRUPTIONS, sample, shift_report
from zoofit.layout import MANIFEST
from zoofit.progress import Progress
from zoofit.result import DomainResult, RobustnessResult, RunResult, Scores
from zoofit.store import Cache, RunStore, content_key
from zoofit.store.run import RESULT

KIND = "shift"


class TrialPredictions:
    """Probabilities of a run's trials (their manifest ``entries``, in the run folder ``root``) for sets of images
    of its ``class_names``, stored in the run folder and rebuilt into models only where something is new."""

    def __init__(
        self,
        root: Path,
        entries: Sequence[dict[str, Any]],
        class_names: Sequence[str],
        *,
        device: str,
        precision: str,
        batch_size: int,
    ) -> None:
        self.root, self.entries, self.class_names = root, list(entries), list(class_names)
        self.device, self.precision, self.batch_size = device, precision, batch_size
        self.cache = Cache(root)
        self.index = {entry["trial"]: i for i, entry in enumerate(self.entries)}

    @functools.cache  # noqa: B019 - one model per trial, kept while this object lives
    def _rebuilt(self, index: int) -> EnsembleClassifier:
        entry = {**self.entries[index], "weight": 1.0}
        return EnsembleClassifier.from_entries(
            self.root, [entry], self.class_names, device=self.device, precision=self.precision
        )

    def of(self, trial: str, images: ImageSet) -> np.ndarray:
        """The ``trial``'s ``N x classes`` probabilities for ``images``."""
        index = self.index[trial]

        def predicted() -> dict[str, torch.Tensor]:
            probs = self._rebuilt(index).member_probabilities(list(images.images), batch_size=self.batch_size)[0]
            return {"probs": torch.from_numpy(probs)}

        key = content_key(KIND, trial, images.fingerprint, self.precision)
        return self.cache.tensors(KIND, key, predicted)["probs"].numpy()

    def average(self, trials: Sequence[str], weights: Sequence[float], images: ImageSet) -> np.ndarray:
        """The ``weights``-weighted average of the ``trials``' probabilities for ``images``."""
        return average([self.of(trial, images) for trial in trials], np.asarray(weights, dtype=float))


#: A classifier of a run, to be scored: its trials and their weights.
Classifier = tuple[list[str], list[float]]


def classifiers(
    members: Sequence[dict[str, Any]], best: str, seeds: Sequence[str], student: str | None = None
) -> dict[str, Classifier]:
    """The ensemble (its ``members``' manifest entries), the ``best`` single trial and, where there are ``seeds``
    (the best trial's, itself first), the seed ensemble, and the distilled ``student`` where there is one, each
    as its trials and weights."""
    groups = {
        "ensemble": ([entry["trial"] for entry in members], [entry["weight"] for entry in members]),
        "best_single": ([best], [1.0]),
    }
    if len(seeds) > 1:
        groups["seed_ensemble"] = (list(seeds), [1.0] * len(seeds))
    if student is not None:
        groups["student"] = ([student], [1.0])
    return groups


def robustness(
    test: ImageSet,
    predictions: TrialPredictions,
    groups: dict[str, Classifier],
    *,
    count: int,
    severity: int,
    seed: int,
    progress: Progress,
) -> RobustnessResult:
    """The :func:`~zoofit.evaluate.shift.shift_report` of the ``ensemble`` and ``best_single`` classifiers of
    ``groups`` on ``count`` test images drawn with ``seed``, with its settings."""
    images = test.subset(sample(count, len(test), seed))

    def predict(shifted: ImageSet) -> dict[str, np.ndarray]:
        task.advance()
        return {name: predictions.average(*groups[name], shifted) for name in ("ensemble", "best_single")}

    with progress.task("robustness", total=1 + len(CORRUPTIONS)) as task:
        report = shift_report(images, predict, severity=severity, seed=seed)
    conditions = {condition: {name: Scores(**m) for name, m in by.items()} for condition, by in report.items()}
    return RobustnessResult(len(images), severity, conditions)


def domain_result(domain: Domain, predictions: TrialPredictions, groups: dict[str, Classifier]) -> DomainResult:
    """Each classifier of ``groups`` on the labelled images of one ``domain``: accuracy, NLL, ECE and per-class
    accuracy (None for a class the domain has no images of), and what its reading skipped."""
    images = domain.images
    scores, per_class = {}, {}
    for name, group in groups.items():
        probs = predictions.average(*group, images)
        scores[name] = Scores(**summarize(probs, images.labels))
        accuracies = per_class_accuracy(probs, images.labels, len(images.class_names))
        per_class[name] = dict(zip(images.class_names, accuracies, strict=True))
    present = [images.class_names[c] for c in np.unique(images.labels)]
    return DomainResult(domain.data, len(images), present, scores, per_class, list(domain.skipped))


def evaluate_run(
    run: str | Path,
    source: str,
    *,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> DomainResult:
    """The finished run folder ``run``'s ensemble, best single trial and (where it has them) seed ensemble and
    distilled student on the labelled images of ``source`` (any ``--data`` form; its test split, or all of it where it has none), their
    classes matched to the run's by name. No zoo or training data is needed; the predictions are stored in the
    run folder, so evaluating it on the same images again predicts nothing."""
    root = Path(run)
    summary = RunResult.read(root)  # a one-line error where the folder holds no finished run
    manifest = read_json(root / MANIFEST, f"run folder '{root}'")
    store = RunStore(root)

    def trial_entry(key: str) -> dict[str, Any]:
        result = read_json(store.trial_dir(key) / RESULT, f"run folder '{root}'")
        return member_entry(result, 1.0, store.checkpoint_name(key))

    best = summary.best_single.trials[0]
    seeds = summary.seed_baseline.trials if summary.seed_baseline else []
    student = [summary.student.trial] if summary.student else []
    domain = load_domain(source, manifest["class_names"], progress=progress)
    torch_device = resolve_device(device)
    predictions = TrialPredictions(
        root, [*manifest["members"], *(trial_entry(key) for key in dict.fromkeys([best, *seeds, *student]))],
        manifest["class_names"], device=str(torch_device), precision=resolve_precision(precision, torch_device),
        batch_size=batch_size or default_batch_size(torch_device),
    )  # fmt: skip
    return domain_result(domain, predictions, classifiers(manifest["members"], best, seeds, *student))


def read_json(path: Path, where: str) -> Any:
    """The JSON file ``path`` of ``where``; a one-line error where it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ZoofitError(
            f"{where} has no readable {path.name} ({first_line(error)}); run 'zoofit run' into it again"
        ) from error
