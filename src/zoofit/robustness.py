"""Robustness of a finished run: its ensemble and its best single trial on test images under distribution shift.

The trials are rebuilt from their checkpoints, as ``zoofit predict`` does. Their probabilities under each
corruption are stored in the run folder (``shift/``), keyed by the trials and the shifted images, so running a
finished run again does not predict them again.
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
    images: int,
    severity: int,
    seed: int,
    device: str,
    precision: str,
    batch_size: int,
    progress: Progress,
) -> dict[str, Any]:
    """The :func:`~zoofit.evaluate.shift.shift_report` of the ensemble (its ``members``: trials with their
    weights) and of the ``best`` single trial on ``images`` test images drawn with ``seed``, with its settings."""
    trials = [trial for trial, _ in members]
    weights = [weight for _, weight in members]
    if best.key not in {trial.key for trial in trials}:
        trials, weights = [*trials, best], [*weights, 0.0]
    best_index = [trial.key for trial in trials].index(best.key)
    indices = sample(images, len(test), seed)
    cache = Cache(store.root)

    @functools.cache
    def rebuilt() -> EnsembleClassifier:  # only where some shifted predictions are not stored yet
        entries = [member_entry(trial.result, 1.0, store.checkpoint_name(trial.key)) for trial in trials]
        return EnsembleClassifier.from_entries(
            store.root, entries, test.class_names, device=device, precision=precision
        )

    def classifiers(per_trial: list[np.ndarray]) -> dict[str, np.ndarray]:
        return {"ensemble": average(per_trial, np.array(weights)), "best_single": per_trial[best_index]}

    def predict(shifted: ImageSet) -> dict[str, np.ndarray]:
        key = content_key(KIND, [trial.key for trial in trials], shifted.fingerprint, precision)
        if (stored := cache.load_tensors(KIND, key)) is None:
            per_trial = rebuilt().member_probabilities(list(shifted.images), batch_size=batch_size)
            stored = {t.key: torch.from_numpy(p) for t, p in zip(trials, per_trial, strict=True)}
            cache.save_tensors(KIND, key, stored)
        task.advance()
        return classifiers([stored[t.key].numpy() for t in trials])

    with progress.task("robustness", total=len(CORRUPTIONS)) as task:
        clean = classifiers([t.test_probs[indices] for t in trials])
        report = shift_report(test.subset(indices), clean, predict, severity=severity, seed=seed)
    return {"images": len(indices), "severity": severity, **report}
