"""Leave-one-out k-nearest-neighbour classification of frozen features, in chunks of bounded memory."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: The similarities a kNN may use (this module loads torch only when it runs: the proxies' help reads these).
METRICS = ("cosine", "euclidean")

#: Upper bound on the similarity block held at once (queries x all images, float32).
_BLOCK_BYTES = 256 * 2**20


def loo_knn_predict(
    features: np.ndarray | torch.Tensor, labels: np.ndarray, *, k: int = 1, metric: str = "cosine"
) -> np.ndarray:
    """For every image, the majority label of its ``k`` nearest *other* images.

    Ties in the vote go to the tied class whose member is nearest. Memory stays bounded (about
    256 MiB of similarities at a time) however many images there are.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, not '{metric}'")
    import torch

    x = torch.as_tensor(features, dtype=torch.float32)
    if x.ndim != 2 or len(x) != len(labels):
        raise ValueError("features must be N x D with one label per row")
    n = len(x)
    if not 1 <= k < n:
        raise ValueError(f"k must lie between 1 and {n - 1} (number of images - 1), not {k}")
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    num_classes = int(y.max()) + 1
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    squared_norms = (x * x).sum(1)
    chunk = max(1, min(n, _BLOCK_BYTES // (4 * n)))
    predictions = torch.empty(n, dtype=torch.long)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        scores = x[start:stop] @ x.T  # larger = nearer
        if metric == "euclidean":  # -(|a|^2 + |b|^2 - 2ab); the query's own norm does not change the order
            scores = 2 * scores - squared_norms[None, :]
        scores[torch.arange(stop - start), torch.arange(start, stop)] = -torch.inf  # leave self out
        neighbours = scores.topk(k, dim=1).indices  # sorted nearest first
        predictions[start:stop] = _vote(y[neighbours], num_classes)
    return predictions.numpy()


def _vote(neighbour_labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Majority label per row; a tie goes to the class that appears first (nearest)."""
    import torch

    rows, k = neighbour_labels.shape
    counts = torch.zeros(rows, num_classes).scatter_add_(1, neighbour_labels, torch.ones(rows, k))
    # Break ties by first position: a bonus below 1 that is larger the nearer the class first appears.
    position = torch.arange(k, dtype=torch.float32).expand(rows, k)
    first = torch.full((rows, num_classes), float(k)).scatter_reduce_(1, neighbour_labels, position, "amin")
    return (counts + (k - first) / (k + 1)).argmax(1)


def loo_knn_accuracy(
    features: np.ndarray | torch.Tensor, labels: np.ndarray, *, k: int = 1, metric: str = "cosine"
) -> float:
    """The share of images whose leave-one-out kNN label is their own label."""
    return float(np.mean(loo_knn_predict(features, labels, k=k, metric=metric) == np.asarray(labels)))
