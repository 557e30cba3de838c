"""Leave-one-out kNN against a brute-force reference."""

import numpy as np
import pytest

from zoofit.rank import knn
from zoofit.rank.knn import loo_knn_accuracy, loo_knn_predict


def brute_force_predict(features: np.ndarray, labels: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Per image: sort all others by distance in float64, vote, ties to the nearest tied class."""
    x = features.astype(np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    predictions = []
    for i in range(len(x)):
        if metric == "cosine":
            distance = -(x @ x[i])
        else:
            distance = ((x - x[i]) ** 2).sum(1)
        distance[i] = np.inf
        nearest = labels[np.argsort(distance, kind="stable")[:k]]
        counts = {label: list(nearest).count(label) for label in nearest}
        best = max(counts.values())
        predictions.append(next(label for label in nearest if counts[label] == best))
    return np.array(predictions)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("k", [1, 5])
def test_matches_brute_force(k: int, metric: str) -> None:
    rng = np.random.default_rng(k)
    labels = rng.integers(0, 4, size=150)
    features = rng.normal(size=(150, 12)) + labels[:, None] * 0.4 + rng.normal(size=12)
    expected = brute_force_predict(features, labels, k, metric)
    np.testing.assert_array_equal(loo_knn_predict(features, labels, k=k, metric=metric), expected)
    assert loo_knn_accuracy(features, labels, k=k, metric=metric) == pytest.approx(np.mean(expected == labels))


def test_chunked_computation_equals_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=97)
    features = rng.normal(size=(97, 8)).astype(np.float32)
    whole = loo_knn_predict(features, labels, k=5)
    monkeypatch.setattr(knn, "_BLOCK_BYTES", 4 * 97 * 7)  # 7 queries per block
    np.testing.assert_array_equal(loo_knn_predict(features, labels, k=5), whole)


def test_leaves_the_image_itself_out() -> None:
    # Two tight pairs with different labels inside each pair: a kNN that sees itself scores 1.0.
    features = np.array([[1.0, 0.0], [0.99, 0.01], [0.0, 1.0], [0.01, 0.99]])
    assert loo_knn_accuracy(features, np.array([0, 1, 0, 1]), k=1) == 0.0


def test_metrics_differ_on_scaled_features() -> None:
    # Cosine ignores length; Euclidean does not.
    features = np.array([[1.0, 0.0], [10.0, 0.5], [9.0, 0.0], [0.5, 0.4]])
    labels = np.array([0, 0, 1, 1])
    assert not np.array_equal(
        loo_knn_predict(features, labels, metric="cosine"),
        loo_knn_predict(features, labels, metric="euclidean"),
    )


@pytest.mark.parametrize(("k", "metric"), [(0, "cosine"), (4, "cosine"), (1, "manhattan")])
def test_rejects_bad_parameters(k: int, metric: str) -> None:
    with pytest.raises(ValueError):
        loo_knn_predict(np.eye(4), np.array([0, 1, 0, 1]), k=k, metric=metric)
