"""Robustness of a finished run: its ensemble and its best single trial on test images under distribution shift.

The trials are rebuilt from their checkpoints, as ``zoofit predict`` does, and predict every condition of
:mod:`zoofit.evaluate.shift`. Each trial's probabilities for each condition's images are stored in the run folder
(``shift/``), keyed by the trial and the images, so running the run again, with the same or another ensemble,
predicts only what is new.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoofit.data import ImageSet
from zoofit.ensemble import EnsembleClassifier, average
from zoofit.evaluate.shift import CORRUPTIONS, sample, shift_report
from zoofit.progress import Progress
from zoofit.result import RobustnessResult, Scores
from zoofit.store import Cache, content_key

KIND = "shift"


def robustness(
    test: ImageSet,
    members: list[dict[str, Any]],
    best: dict[str, Any],
    root: Path,
    *,
    count: int,
    severity: int,
    seed: int,
    device: str,
    precision: str,
    batch_size: int,
    progress: Progress,
) -> RobustnessResult:
    """The :func:`~zoofit.evaluate.shift.shift_report` of the ensemble (its ``members``: the manifest entries of
    the run folder ``root``) and of the ``best`` single trial (its entry) on ``count`` test images drawn with
    ``seed``, with its settings."""
    entries = list(members)
    if best["trial"] not in {entry["trial"] for entry in entries}:
        entries.append({**best, "weight": 0.0})  # predicted, but not in the ensemble
    weights = np.array([entry["weight"] for entry in entries])
    best_index = [entry["trial"] for entry in entries].index(best["trial"])
    images = test.subset(sample(count, len(test), seed))
    cache = Cache(root)

    @functools.cache
    def rebuilt(index: int) -> EnsembleClassifier:  # a trial's model, rebuilt where it has something to predict
        entry = {**entries[index], "weight": 1.0}
        return EnsembleClassifier.from_entries(root, [entry], test.class_names, device=device, precision=precision)

    def probabilities(index: int, shifted: ImageSet) -> np.ndarray:
        def predicted() -> dict[str, torch.Tensor]:
            probs = rebuilt(index).member_probabilities(list(shifted.images), batch_size=batch_size)[0]
            return {"probs": torch.from_numpy(probs)}

        key = content_key(KIND, entries[index]["trial"], shifted.fingerprint, precision)
        return cache.tensors(KIND, key, predicted)["probs"].numpy()

    def predict(shifted: ImageSet) -> dict[str, np.ndarray]:
        per_trial = [probabilities(index, shifted) for index in range(len(entries))]
        task.advance()
        return {"ensemble": average(per_trial, weights), "best_single": per_trial[best_index]}

    with progress.task("robustness", total=1 + len(CORRUPTIONS)) as task:
        report = shift_report(images, predict, severity=severity, seed=seed)
    conditions = {condition: {name: Scores(**m) for name, m in by.items()} for condition, by in report.items()}
    return RobustnessResult(len(images), severity, conditions)
