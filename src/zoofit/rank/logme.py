"""LogME (You et al., "LogME: Practical Assessment of Pre-trained Models for Transfer Learning", ICML 2021).

Each class's one-hot target ``y`` is modelled as a Bayesian linear regression on the features ``F`` (N x D): a
prior ``w ~ N(0, 1/alpha I)`` and noise ``y - F w ~ N(0, 1/beta I)``. Its log evidence (marginal likelihood)

    L(alpha, beta) = N/2 log beta + D/2 log alpha - N/2 log 2 pi - beta/2 |F m - y|^2 - alpha/2 |m|^2
                     - 1/2 log det(alpha I + beta F^T F),        m = beta (alpha I + beta F^T F)^-1 F^T y,

is maximised over alpha and beta by the paper's fixed-point iteration (its Algorithm 1): with the singular values
``s`` of ``F``, ``gamma = sum(beta s^2 / (alpha + beta s^2))``, then ``alpha = gamma / |m|^2`` and
``beta = (N - gamma) / |F m - y|^2``, until the evidence settles. Everything comes from the SVD of ``F`` (as the
eigendecomposition of the smaller of ``F F^T`` and ``F^T F``), in float64. LogME is the mean over classes of the
maximum, divided by N: higher is better. It needs no training and no hyper-parameters, and it does not change
when the features are rotated or scaled.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

_TINY = 1e-300  # keeps alpha and beta finite where a class is fitted perfectly or not at all


@dataclass(frozen=True)
class Evidence:
    """The maximised evidence of each class's one-hot target (arrays of one value per class)."""

    alpha: np.ndarray  # precision of the weights' prior
    beta: np.ndarray  # precision of the noise
    log_evidence: np.ndarray  # L(alpha, beta), not divided by N
    iterations: int


def maximise_evidence(
    features: np.ndarray, labels: np.ndarray, *, tolerance: float = 1e-10, max_iterations: int = 1000
) -> Evidence:
    """Maximise the log evidence of every class's one-hot target, all classes at once, until a step changes
    none of them by more than ``tolerance`` x N."""
    f = np.asarray(features, dtype=np.float64)
    _, classes = np.unique(np.asarray(labels), return_inverse=True)
    targets = np.eye(classes.max() + 1)[classes]  # N x C one-hot
    s2, z = _spectrum(f, targets)
    outside = np.maximum((targets * targets).sum(0) - (z * z).sum(0), 0)  # |y|^2 beyond the span of F
    evidence = partial(_log_evidence, shape=f.shape, s2=s2, z=z, outside=outside)
    alpha, beta = np.ones(targets.shape[1]), np.ones(targets.shape[1])
    log_evidence, settled, iterations = evidence(alpha, beta), np.zeros(targets.shape[1], dtype=bool), 0
    # Where the maximum lies at alpha = infinity (the features explain nothing of a class) or beta = infinity
    # (they fit it exactly, as N <= D allows), that one grows without end while the evidence settles.
    while not settled.all() and iterations < max_iterations:
        gamma, weights2, residual2 = _fit(alpha, beta, s2, z, outside)
        alpha = np.where(settled, alpha, gamma / np.maximum(weights2, _TINY))
        beta = np.where(settled, beta, (len(f) - gamma) / np.maximum(residual2, _TINY))
        previous, log_evidence = log_evidence, evidence(alpha, beta)
        settled |= np.abs(log_evidence - previous) <= tolerance * len(f)
        iterations += 1
    return Evidence(alpha, beta, log_evidence, iterations)


def _log_evidence(
    alpha: np.ndarray, beta: np.ndarray, shape: tuple[int, int], s2: np.ndarray, z: np.ndarray, outside: np.ndarray
) -> np.ndarray:
    """L(alpha, beta) of each class, for features of ``shape`` (N, D)."""
    (n, d), (_, weights2, residual2) = shape, _fit(alpha, beta, s2, z, outside)
    log_det = np.log(alpha + beta * s2).sum(0) + (d - len(s2)) * np.log(alpha)  # D - r eigenvalues of F^T F are 0
    return (
        n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
        - beta / 2 * residual2 - alpha / 2 * weights2 - log_det / 2
    )  # fmt: skip


def _spectrum(f: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The squared singular values ``s^2`` of ``f`` (r x 1, r = min(N, D)) and the targets in its left singular
    basis, ``U^T y`` (r x C), from the eigendecomposition of the smaller Gram matrix (faster than an SVD)."""
    n, d = f.shape
    if n <= d:
        s2, u = np.linalg.eigh(f @ f.T)
        return np.maximum(s2, 0)[:, None], u.T @ targets
    s2, v = np.linalg.eigh(f.T @ f)
    s2 = np.maximum(s2, 0)[:, None]
    spanned = s2 > s2.max() * d * np.finfo(f.dtype).eps  # directions of F^T F's null space hold no target
    z = np.divide(v.T @ (f.T @ targets), np.sqrt(s2), out=np.zeros((d, targets.shape[1])), where=spanned)
    return s2, z  # U^T y = S^-1 V^T F^T y


def _fit(
    alpha: np.ndarray, beta: np.ndarray, s2: np.ndarray, z: np.ndarray, outside: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """gamma, |m|^2 and |F m - y|^2 of the posterior mean ``m`` at ``alpha``, ``beta`` (per class)."""
    denominator = alpha + beta * s2
    gamma = (beta * s2 / denominator).sum(0)
    weights2 = (beta**2 * s2 * z**2 / denominator**2).sum(0)  # m = V diag(beta s / (alpha + beta s^2)) U^T y
    residual2 = ((alpha * z / denominator) ** 2).sum(0) + outside
    return gamma, weights2, residual2


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of ``features`` (N x D) for the class ``labels``: the mean over classes of the maximised log
    evidence, divided by N."""
    return float(maximise_evidence(features, labels).log_evidence.mean() / len(features))
