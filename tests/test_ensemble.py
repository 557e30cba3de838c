"""Greedy ensemble selection against brute force on small synthetic probability matrices."""

from itertools import combinations_with_replacement

import numpy as np
import pytest

from zoofit.ensemble import average, greedy_select
from zoofit.errors import ZoofitError
from zoofit.evaluate import nll


def synthetic_candidates(seed: int, count: int = 5, images: int = 40, classes: int = 4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, images)
    candidates = []
    for _ in range(count):
        logits = rng.normal(size=(images, classes)) * rng.uniform(0.5, 3)
        logits[np.arange(images), labels] += rng.uniform(0, 2)
        probs = np.exp(logits)
        candidates.append(probs / probs.sum(1, keepdims=True))
    return candidates, labels


def reference_greedy(candidates, labels, steps, allowed=lambda chosen: True):
    """Forward selection written the obvious way: average the chosen list from scratch every time."""
    chosen: list[int] = []
    prefixes = []
    for _ in range(steps):
        options = [
            (nll(np.mean([candidates[j] for j in chosen + [i]], axis=0), labels), i)
            for i in range(len(candidates))
            if allowed(chosen + [i])
        ]
        if not options:
            break
        best_nll, best = min(options)  # ties: lowest index
        chosen.append(best)
        prefixes.append((best_nll, len(chosen)))
    best_nll, length = min(prefixes, key=lambda item: (item[0], item[1]))
    return np.bincount(chosen[:length], minlength=len(candidates)), best_nll


@pytest.mark.parametrize("seed", range(4))
def test_matches_reference_and_never_loses_to_the_best_single(seed: int) -> None:
    candidates, labels = synthetic_candidates(seed)
    selection = greedy_select(candidates, labels, max_steps=8)
    counts, best_nll = reference_greedy(candidates, labels, 8)
    np.testing.assert_array_equal(selection.counts, counts)
    assert selection.val_nll == pytest.approx(best_nll)
    assert selection.val_nll <= min(nll(p, labels) for p in candidates) + 1e-12
    assert nll(average(candidates, selection.counts), labels) == pytest.approx(selection.val_nll)


def test_between_the_exhaustive_optimum_and_the_best_single() -> None:
    candidates, labels = synthetic_candidates(7, count=4)
    exhaustive = min(
        nll(np.mean([candidates[i] for i in combo], axis=0), labels)
        for size in range(1, 5)
        for combo in combinations_with_replacement(range(4), size)
    )
    selection = greedy_select(candidates, labels, max_steps=4)
    assert exhaustive - 1e-12 <= selection.val_nll <= min(nll(p, labels) for p in candidates)


def test_one_step_is_the_brute_force_best_single() -> None:
    candidates, labels = synthetic_candidates(3)
    selection = greedy_select(candidates, labels, max_steps=1)
    assert selection.members == [int(np.argmin([nll(p, labels) for p in candidates]))]


def test_budget_limits_are_honoured() -> None:
    candidates, labels = synthetic_candidates(1, count=6)
    costs = [1.0, 2.0, 0.5, 3.0, 1.5, 0.7]
    unconstrained = greedy_select(candidates, labels, max_steps=12)
    assert len(unconstrained.members) == 2  # so that the limits below bind
    selection = greedy_select(candidates, labels, max_steps=12, max_members=1)
    assert len(selection.members) == 1
    counts, _ = reference_greedy(candidates, labels, 12, allowed=lambda chosen: len(set(chosen)) <= 1)
    np.testing.assert_array_equal(selection.counts, counts)
    cheap = greedy_select(candidates, labels, max_steps=12, max_gflops=1.5, gflops=costs)
    assert sum(costs[i] for i in cheap.members) <= 1.5
    counts, _ = reference_greedy(
        candidates, labels, 12, allowed=lambda chosen: sum(costs[i] for i in set(chosen)) <= 1.5
    )
    np.testing.assert_array_equal(cheap.counts, counts)


def test_impossible_budget_is_an_error() -> None:
    candidates, labels = synthetic_candidates(0, count=2)
    with pytest.raises(ZoofitError, match="^no trial fits max_gflops 0.1; the cheapest needs 1 GFLOPs per image$"):
        greedy_select(candidates, labels, max_gflops=0.1, gflops=[1.0, 2.0])


def test_ties_break_to_the_lower_index() -> None:
    candidates, labels = synthetic_candidates(0, count=1)
    selection = greedy_select([candidates[0], candidates[0].copy()], labels, max_steps=3)
    assert selection.members == [0]
