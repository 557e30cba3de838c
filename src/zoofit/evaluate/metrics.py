"""Classification metrics on predicted probabilities: accuracy, NLL, expected calibration error."""

from __future__ import annotations

import numpy as np

ECE_BINS = 15
_EPS = 1e-12


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(probs.argmax(1) == labels))


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels (probabilities clipped at 1e-12)."""
    return float(np.mean(image_nll(probs, labels)))


def image_nll(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each image's negative log-likelihood of its true label (probabilities clipped at 1e-12)."""
    return label_nll(probs[np.arange(len(labels)), labels])


def label_nll(label_probs: np.ndarray) -> np.ndarray:
    """The negative log of each probability given to a true label (clipped at 1e-12), elementwise."""
    return -np.log(np.clip(label_probs, _EPS, None))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: |accuracy - confidence| per equal-width confidence bin, weighted by the bin's share."""
    return float(
        sum(b["count"] / len(labels) * abs(b["accuracy"] - b["confidence"]) for b in reliability(probs, labels, bins)
            if b["count"])
    )  # fmt: skip


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, float | None]]:
    """Per equal-width bin of the top probability: its bounds, how many images fall in it, their accuracy and
    mean confidence (None where empty). Bin i holds confidences in (i/bins, (i+1)/bins]; 0 joins the first."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    rows: list[dict[str, float | None]] = []
    for b in range(bins):
        members = index == b
        rows.append({
            "lower": b / bins, "upper": (b + 1) / bins, "count": int(members.sum()),
            "accuracy": float(correct[members].mean()) if members.any() else None,
            "confidence": float(confidence[members].mean()) if members.any() else None,
        })  # fmt: skip
    return rows


def per_class_accuracy(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> list[float | None]:
    """Accuracy on each class's images (None for a class without images)."""
    predicted = probs.argmax(1)
    return [float(np.mean(predicted[labels == c] == c)) if np.any(labels == c) else None for c in range(num_classes)]


def summarize(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": accuracy(probs, labels),
        "nll": nll(probs, labels),
        "ece": expected_calibration_error(probs, labels),
    }
