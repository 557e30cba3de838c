"""The frozen-features baseline: an L2 logistic regression on the top-ranked model's features (the few-shot
baseline of AutoGluon and the linear probe of the transfer literature), its strength chosen on validation.

It reuses the ranking's cached features of the training images and extracts only the test images' (cached too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoofit.data import Splits
from zoofit.rank.features import extract_features
from zoofit.rank.models import inputs_of_size, loaded_for_ranking
from zoofit.rank.ranker import Ranker
from zoofit.store import Cache

#: The inverse strengths (scikit-learn's C) tried, on standardised features; the best on validation is kept.
STRENGTHS = tuple(float(c) for c in np.logspace(-4, 2, 7))


@dataclass(frozen=True)
class Probe:
    """The chosen logistic regression: its model, ``C``, validation accuracy and NLL, and its test probabilities."""

    model: str
    strength: float
    val_accuracy: float
    val_nll: float
    test_probs: np.ndarray
    gflops: float


def linear_probe(ranker: Ranker, splits: Splits, *, strengths: tuple[float, ...] = STRENGTHS) -> Probe:
    """Fit the probe on the features of ``splits.train`` of ``ranker``'s top-ranked model for every strength,
    keep the best on ``splits.val`` (accuracy, then NLL; the stronger on a tie), and predict ``splits.test``."""
    from zoofit.device import resolve_device

    top = ranker.ranking_[0]
    spec = next(spec for spec in ranker.zoo_.models if spec.id == top.model)
    device = resolve_device(ranker.machine.device)
    cache = Cache(ranker.machine.cache_path)
    loaded, prep = loaded_for_ranking(spec, cache, device, ranker.config)
    assert prep.input_size == top.input_size, "the probe must see the ranking's features"

    def features(images):
        with inputs_of_size(loaded, prep.input_size):
            return extract_features(
                loaded, images, prep=prep, batch_size=ranker.config.feature_batch_size, device=device,
                precision=ranker.machine.precision, cache=cache,
            ).values  # fmt: skip

    ranking = features(splits.ranking_set)  # train then validation: the ranking's, from the cache
    train, val = ranking[: len(splits.train)], ranking[len(splits.train) :]
    test = features(splits.test)
    fitted = fit_probe(train, splits.train.labels, val, splits.val.labels, test, len(splits.class_names), strengths)
    return Probe(model=top.model, gflops=top.gflops, **fitted)


def fit_probe(
    train: np.ndarray,
    train_labels: np.ndarray,
    val: np.ndarray,
    val_labels: np.ndarray,
    test: np.ndarray,
    classes: int,
    strengths: tuple[float, ...] = STRENGTHS,
) -> dict[str, object]:
    """The logistic regression on standardised features, its strength chosen on validation: ``strength``,
    ``val_accuracy``, ``val_nll``, ``test_probs`` (N x ``classes``, zero for classes absent from training)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small matrices: BLAS threads only wait on each other (20x slower on a busy CPU)
        scaler = StandardScaler().fit(train)
        train, val, test = (scaler.transform(x) for x in (train, val, test))
        best: tuple[tuple[float, float, float], LogisticRegression] | None = None
        for strength in strengths:  # weakest regularisation last: a tie keeps the stronger
            model = LogisticRegression(C=strength, max_iter=2000).fit(train, train_labels)
            probs = _full(model, model.predict_proba(val), classes)
            accuracy = float((probs.argmax(1) == val_labels).mean())
            nll = float(-np.log(np.clip(probs[np.arange(len(val_labels)), val_labels], 1e-12, None)).mean())
            if best is None or (accuracy, -nll) > best[0][:2]:
                best = ((accuracy, -nll, strength), model)
        (accuracy, negative_nll, strength), model = best
        test_probs = _full(model, model.predict_proba(test), classes)
        return {"strength": strength, "val_accuracy": accuracy, "val_nll": -negative_nll, "test_probs": test_probs}


def _full(model, probs: np.ndarray, classes: int) -> np.ndarray:
    """``probs`` over all ``classes`` (the model knows only those it saw in training)."""
    full = np.zeros((len(probs), classes), dtype=np.float64)
    full[:, model.classes_] = probs
    return full
