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
from zoofit.zoo import LoadedModel, Preprocessing

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


@dataclass(frozen=True)
class FrozenFeatures:
    """A ranked model's frozen pre-logit features (the classifier's input, at the size it was ranked at) of the
    training, validation and test images, with the model as loaded and its preprocessing."""

    loaded: LoadedModel
    prep: Preprocessing
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def frozen_features(ranker: Ranker, model: str, splits: Splits) -> FrozenFeatures:
    """The features of ``ranker``'s ranked ``model``: the training and validation images' from the ranking's cache,
    the test images' extracted (and cached) at the same size and precision."""
    from zoofit.device import resolve_device

    row = next(row for row in ranker.ranking_ if row.model == model)
    spec = next(spec for spec in ranker.zoo_.models if spec.id == model)
    device = resolve_device(ranker.machine.device)
    cache = Cache(ranker.machine.cache_path)
    loaded, prep = loaded_for_ranking(spec, cache, device, ranker.config)
    assert prep.input_size == row.input_size, "the features must be the ranking's"

    def features(images):
        with inputs_of_size(loaded, prep.input_size):
            return extract_features(
                loaded, images, prep=prep, batch_size=ranker.config.feature_batch_size, device=device,
                precision=ranker.machine.precision, cache=cache,
            ).values  # fmt: skip

    ranking = features(splits.ranking_set)  # train then validation: the ranking's, from the cache
    train, val = ranking[: len(splits.train)], ranking[len(splits.train) :]
    return FrozenFeatures(loaded, prep, train, val, features(splits.test))


def linear_probe(ranker: Ranker, splits: Splits, *, strengths: tuple[float, ...] = STRENGTHS) -> Probe:
    """Fit the probe on the features of ``splits.train`` of ``ranker``'s top-ranked model for every strength,
    keep the best on ``splits.val`` (accuracy, then NLL; the stronger on a tie), and predict ``splits.test``."""
    top = ranker.ranking_[0]
    features = frozen_features(ranker, top.model, splits)
    fitted = fit_probe(features.train, splits.train.labels, features.val, splits.val.labels, features.test,
                       len(splits.class_names), strengths)  # fmt: skip
    return Probe(
        model=top.model, gflops=top.gflops, strength=fitted.strength, val_accuracy=fitted.val_accuracy,
        val_nll=fitted.val_nll, test_probs=fitted.test_probs,
    )  # fmt: skip


#: The bias of a class the training images hold none of: its probability is zero (to float precision).
ABSENT = -1e4


@dataclass(frozen=True)
class LinearHead:
    """A logistic regression as a linear layer on the raw features: the standardisation folded in (W / sigma,
    b - W mu / sigma), one row per class (a class absent from training: zero weights, bias :data:`ABSENT`)."""

    weight: np.ndarray  # classes x D
    bias: np.ndarray  # classes

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """The softmax of the head's logits (float64)."""
        logits = features.astype(np.float64) @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


def fit_head(features: np.ndarray, labels: np.ndarray, strength: float, classes: int) -> LinearHead:
    """The L2 logistic regression of inverse strength ``strength`` on standardised ``features``, as a
    :class:`LinearHead` over all ``classes``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small matrices: BLAS threads only wait on each other (20x slower on a busy CPU)
        scaler = StandardScaler().fit(features)
        model = LogisticRegression(C=strength, max_iter=2000).fit(scaler.transform(features), labels)
    coef, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # one row: the second class's logit against the first's zero
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    weight = np.zeros((classes, features.shape[1]))
    bias = np.full(classes, ABSENT)
    weight[model.classes_] = coef / scaler.scale_
    bias[model.classes_] = intercept - (coef * (scaler.mean_ / scaler.scale_)).sum(axis=1)
    return LinearHead(weight, bias)


@dataclass(frozen=True)
class FittedProbe:
    """The head of the strength chosen on validation: ``strength``, ``head``, its validation accuracy, NLL and
    probabilities, and its test probabilities."""

    strength: float
    head: LinearHead
    val_accuracy: float
    val_nll: float
    val_probs: np.ndarray
    test_probs: np.ndarray


def fit_probe(
    train: np.ndarray,
    train_labels: np.ndarray,
    val: np.ndarray,
    val_labels: np.ndarray,
    test: np.ndarray,
    classes: int,
    strengths: tuple[float, ...] = STRENGTHS,
) -> FittedProbe:
    """The logistic regression on standardised features, its strength chosen on validation (accuracy, then NLL;
    the stronger on a tie); the test probabilities are zero for classes absent from training."""
    best: tuple[tuple[float, float], float, LinearHead, np.ndarray] | None = None
    for strength in strengths:  # weakest regularisation last: a tie keeps the stronger
        head = fit_head(train, train_labels, strength, classes)
        probs = head.probabilities(val)
        accuracy = float((probs.argmax(1) == val_labels).mean())
        nll = float(-np.log(np.clip(probs[np.arange(len(val_labels)), val_labels], 1e-12, None)).mean())
        if best is None or (accuracy, -nll) > best[0]:
            best = ((accuracy, -nll), strength, head, probs)
    (accuracy, negative_nll), strength, head, probs = best
    return FittedProbe(strength, head, accuracy, -negative_nll, probs, head.probabilities(test))
