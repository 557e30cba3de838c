"""Ensemble selection (Caruana et al.): greedy forward selection with replacement on validation NLL, and its bagged
form, which averages the selections made on random halves of the validation set so as not to fit all of it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from zoofit.errors import ParameterError, ZoofitError
from zoofit.evaluate import label_nll, nll
from zoofit.registry import Registry


@dataclass(frozen=True)
class Safeguard:
    """The safeguard's decision: the single best ``candidate`` (by validation NLL, within the budget), the
    selection's out-of-bag validation NLL ``gain`` over it (positive: the ensemble is better) with the range
    ``[low, high]`` holding ``level`` of the resamples' gains, and whether the selection ``fell_back`` to that
    candidate alone."""

    candidate: int
    gain: float
    low: float
    high: float
    level: float
    fell_back: bool


@dataclass(frozen=True)
class Selection:
    """The chosen ensemble: ``counts[i]`` times candidate ``i`` (a bagged selection's counts are fractions);
    ``weights`` are the counts normalised. ``order`` and ``history`` tell how it grew: the candidate added at each
    step, with ``increments`` of its count (1 where empty), and the validation NLL after it. ``safeguard`` is the
    decision of :func:`~zoofit.ensemble.safeguard.guarded` where it was asked (None: not asked)."""

    counts: np.ndarray
    val_nll: float
    history: tuple[float, ...]  # validation NLL after each step
    order: tuple[int, ...] = ()  # the candidate added at each step
    increments: tuple[float, ...] = ()  # what each step added to its candidate's count (empty: 1 each)
    safeguard: Safeguard | None = None

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
    bounded = max_members is not None or max_gflops is not None
    counts = np.zeros(count, dtype=int)
    rows = np.arange(len(labels))
    truth = np.stack([p[rows, labels] for p in val_probs]).astype(np.float64)  # the NLL reads the true class alone
    total = np.zeros(len(labels), dtype=np.float64)
    history: list[float] = []
    order: list[int] = []
    best_counts, best_nll = counts.copy(), np.inf
    for step in range(1, max_steps + 1):
        allowed = [_allowed(i, counts, costs, max_members, max_gflops) for i in range(count)] if bounded else True
        if not np.any(allowed):
            break
        candidate_nll = label_nll((total + truth) / step).mean(axis=1)
        chosen = int(np.argmin(np.where(allowed, candidate_nll, np.inf)))  # the first of equals: the lower index
        chosen_nll = float(candidate_nll[chosen])
        counts[chosen] += 1
        total += truth[chosen]
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


def bagged_select(
    val_probs: Sequence[np.ndarray],
    labels: np.ndarray,
    *,
    bags: int = 20,
    fraction: float = 0.5,
    seed: int = 0,
    max_steps: int = 20,
    max_members: int | None = None,
    max_gflops: float | None = None,
    gflops: Sequence[float] | None = None,
) -> Selection:
    """Bagged ensemble selection (after Caruana et al., 2006): :func:`greedy_select` on ``bags`` random subsets
    (``fraction`` of the validation images each, drawn with ``seed``), the selections' weights averaged. A
    selection fitted to one half is outvoted by the others, so the weights overfit the validation set less.

    The average can hold more members than each bag; where it breaks ``max_members`` or ``max_gflops``, the
    heaviest members that fit are kept (the lower index on a tie) and the weights normalised again. ``order`` lists
    the members heaviest first, each step adding its weight."""
    if bags < 1 or not 0 < fraction <= 1:
        raise ParameterError(f"bagged selection needs {{bags}} >= 1 and a fraction in (0, 1], not {bags}, {fraction}")
    budget = {"max_steps": max_steps, "max_members": max_members, "max_gflops": max_gflops, "gflops": gflops}
    greedy_select(val_probs, labels, **budget)  # the candidates and the budget checked once, on all the images
    rng = np.random.default_rng(seed)
    size = max(1, round(len(labels) * fraction))
    weights = np.zeros(len(val_probs))
    for _ in range(bags):
        half = np.sort(rng.choice(len(labels), size=size, replace=False))
        weights += greedy_select([p[half] for p in val_probs], labels[half], **budget).weights
    weights = _within_budget(weights / bags, len(val_probs), max_members, max_gflops, gflops)
    order = tuple(int(i) for i in sorted(np.flatnonzero(weights), key=lambda i: (-weights[i], i)))
    total, history = np.zeros_like(val_probs[0], dtype=np.float64), []
    for index, added in enumerate(order, start=1):
        total += weights[added] * val_probs[added]
        history.append(nll(total / weights[list(order[:index])].sum(), labels))
    return Selection(weights, float(history[-1]), tuple(history), order, tuple(float(weights[i]) for i in order))


def _within_budget(
    weights: np.ndarray, count: int, max_members: int | None, max_gflops: float | None, gflops: Sequence[float] | None
) -> np.ndarray:
    """``weights`` where only the heaviest candidates that fit the budget keep theirs, normalised."""
    costs = np.asarray(gflops if gflops is not None else np.zeros(count), dtype=float)
    kept = np.zeros(count, dtype=int)
    for i in sorted(np.flatnonzero(weights), key=lambda i: (-weights[i], i)):
        if _allowed(int(i), kept, costs, max_members, max_gflops):
            kept[i] = 1
    chosen = np.where(kept > 0, weights, 0.0)
    return chosen / chosen.sum()


def greedy(val_probs: Sequence[np.ndarray], labels: np.ndarray, *, bags: int, seed: int, **budget) -> Selection:
    """:func:`greedy_select` as a selection of :data:`SELECTIONS` takes it (it does without ``bags`` and ``seed``)."""
    return greedy_select(val_probs, labels, **budget)


#: Ensemble selections by name (``SweepConfig.selection``): each takes the candidates' validation probabilities,
#: the labels, and the sweep's budget (``max_steps``, ``max_members``, ``max_gflops``, ``gflops``), ``bags`` and
#: ``seed``.
SELECTIONS: Registry[Callable[..., Selection]] = Registry("selection")
SELECTIONS.add("greedy", greedy, help="greedy forward selection with replacement on the validation NLL")
SELECTIONS.add(
    "bagged", bagged_select, help="greedy on random halves of the validation set, the weights averaged (Caruana 2006)"
)
