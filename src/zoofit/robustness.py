"""Robustness of a finished run: its ensemble and its best single trial on test images under distribution shift.

The trials are rebuilt from their checkpoints, as ``zoofit predict`` does, and predict every condition of
:mod:`zoofit.evaluate.shift`. Each trial's probabilities for each condition's images are stored in the run folder
(``shift/``), keyed by the trial and the images, so running the run again, with the same or another ensemble,
predicts only what is new.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from zoofit.data import ImageSet
from zoofit.ensemble import EnsembleClassifier, average, member_entry
from zoofit.evaluate.shift import CORRUPTIONS, sample, shift_report
from zoofit.finetune import TrialRecord
from zoofit.progress import Progress
from zoofit.store import Cache, RunStore, content_key

KIND = "shift"


def robustness(
    test: ImageSet,
    members: list[tuple[TrialRecord, float]],
    best: TrialRecord,
    store: RunStore,
    *,
    count: int,
    severity: int,
    seed: int,
    device: str,
    precision: str,
    batch_size: int,
    progress: Progress,
) -> dict[str, Any]:
    """The :func:`~zoofit.evaluate.shift.shift_report` of the ensemble (its ``members``: trials with their
    weights) and of the ``best`` single trial on ``count`` test images drawn with ``seed``, with its settings."""
    trials = [trial for trial, _ in members]
    weights = [weight for _, weight in members]
    if best.key not in {trial.key for trial in trials}:
        trials, weights = [*trials, best], [*weights, 0.0]  # weight 0: predicted, but not in the ensemble
    best_index = [trial.key for trial in trials].index(best.key)
    images = test.subset(sample(count, len(test), seed))
    cache = Cache(store.root)

    @functools.cache
    def rebuilt(index: int) -> EnsembleClassifier:  # a trial's model, rebuilt where it has something to predict
        trial = trials[index]
        entry = member_entry(trial.result, 1.0, store.checkpoint_name(trial.key))
        return EnsembleClassifier.from_entries(
            store.root, [entry], test.class_names, device=device, precision=precision
        )

    def probabilities(index: int, shifted: ImageSet) -> np.ndarray:
        key = content_key(KIND, trials[index].key, shifted.fingerprint, precision)
        if (stored := cache.load_tensors(KIND, key)) is not None:
            return stored["probs"].numpy()
        probs = rebuilt(index).member_probabilities(list(shifted.images), batch_size=batch_size)[0]
        cache.save_tensors(KIND, key, {"probs": torch.from_numpy(probs)})
        return probs

    def predict(shifted: ImageSet) -> dict[str, np.ndarray]:
        per_trial = [probabilities(index, shifted) for index in range(len(trials))]
        task.advance()
        return {"ensemble": average(per_trial, np.array(weights)), "best_single": per_trial[best_index]}

    with progress.task("robustness", total=1 + len(CORRUPTIONS)) as task:
        report = shift_report(images, predict, severity=severity, seed=seed)
    return {"images": len(images), "severity": severity, **report}
