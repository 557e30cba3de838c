"""Greedy ensemble selection (Caruana et al.): forward selection with replacement on validation NLL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zoofit.errors import ParameterError, ZoofitError
from zoofit.evaluate import nll


@dataclass(frozen=True)
class Selection:
    """The chosen ensemble: ``counts[i]`` times candidate ``i``; ``weights`` are the counts normalised."""

    counts: np.ndarray
    val_nll: float
    history: tuple[float, ...]  # validation NLL after each greedy step
    order: tuple[int, ...] = ()  # the candidate added at each greedy step

    @property
    def members(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.counts)]

    @property
    def weights(self) -> np.ndarray:
        return self.counts / self.counts.sum()


def average(probs: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The weighted mean of probability matrices (weights need not be normalised)."""
    total = sum(w * p for w, p in zip(weights, probs, strict=True) if w)
    return total / float(np.sum(weights))


def greedy_select(
    val_probs: Sequence[np.ndarray],
    labels: np.ndarray,
    *,
    max_steps: int = 20,
    max_members: int | None = None,
    max_gflops: float | None = None,
    gflops: Sequence[float] | None = None,
) -> Selection:
    """Add, step by step, the candidate whose inclusion most lowers the validation NLL of the averaged
    probabilities (a candidate may be added again), then keep the best prefix.

    ``max_members`` bounds the number of distinct candidates and ``max_gflops`` the sum of their
    ``gflops``. Ties go to the lower index, so the result is deterministic.
    """
    count = len(val_probs)
    if count == 0:
        raise ZoofitError("no finished trials to ensemble")
    costs = np.asarray(gflops if gflops is not None else np.zeros(count), dtype=float)
    if max_gflops is not None and costs.min() > max_gflops:
        raise ParameterError(
            f"no trial fits {{max_gflops}} {max_gflops:g}; the cheapest needs {costs.min():.3g} GFLOPs per image"
        )
    counts = np.zeros(count, dtype=int)
    total = np.zeros_like(val_probs[0], dtype=np.float64)
    history: list[float] = []
    order: list[int] = []
    best_counts, best_nll = counts.copy(), np.inf
    for step in range(1, max_steps + 1):
        chosen, chosen_nll = -1, np.inf
        for i in range(count):
            if not _allowed(i, counts, costs, max_members, max_gflops):
                continue
            candidate_nll = nll((total + val_probs[i]) / step, labels)
            if candidate_nll < chosen_nll:
                chosen, chosen_nll = i, candidate_nll
        if chosen < 0:
            break
        counts[chosen] += 1
        total += val_probs[chosen]
        history.append(chosen_nll)
        order.append(chosen)
        if chosen_nll < best_nll:
            best_counts, best_nll = counts.copy(), chosen_nll
    return Selection(best_counts, float(best_nll), tuple(history), tuple(order))


def _allowed(
    candidate: int, counts: np.ndarray, costs: np.ndarray, max_members: int | None, max_gflops: float | None
) -> bool:
    if counts[candidate]:
        return True  # adding a member again changes neither the member count nor the cost
    members = counts > 0
    if max_members is not None and members.sum() + 1 > max_members:
        return False
    return max_gflops is None or costs[members].sum() + costs[candidate] <= max_gflops + 1e-9
