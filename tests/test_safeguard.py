"""The selection's safeguard on cases built to overfit (30 noisy candidates, some over-confident, 20 validation
images) and on cases where the ensemble truly helps, judged on held-out images: the candidates of
``benchmarks/selection_safeguard.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from zoofit.ensemble import average, greedy_select
from zoofit.ensemble.safeguard import guarded
from zoofit.evaluate import nll

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from selection_safeguard import case  # noqa: E402

SEEDS = range(10)


def held_out(drawn, selection) -> float:
    return nll(average(drawn.test_probs, selection.counts), drawn.test_labels)


def test_where_greedy_fits_20_validation_images_the_safeguard_is_no_worse_than_the_single_best() -> None:
    overfitted = 0
    for seed in SEEDS:
        drawn = case("overfit", seed, val_images=20, held_out=2000)
        single = held_out(drawn, greedy_select(drawn.val_probs, drawn.val_labels, max_steps=1))
        if held_out(drawn, greedy_select(drawn.val_probs, drawn.val_labels)) <= single:
            continue
        overfitted += 1
        guarded_selection = guarded(greedy_select, drawn.val_probs, drawn.val_labels, seed=seed)
        assert held_out(drawn, guarded_selection) <= single + 1e-12, seed
        assert guarded_selection.safeguard.fell_back and guarded_selection.safeguard.gain <= 0
    assert overfitted >= len(SEEDS) // 2  # the case is built to overfit: plain greedy is worse than the single best


def test_where_the_ensemble_truly_helps_the_safeguard_keeps_it() -> None:
    kept, scores = [], []
    for seed in SEEDS:
        drawn = case("diverse", seed, val_images=20, held_out=2000)
        single = held_out(drawn, greedy_select(drawn.val_probs, drawn.val_labels, max_steps=1))
        chosen = guarded(greedy_select, drawn.val_probs, drawn.val_labels, seed=seed)
        kept.append(not chosen.safeguard.fell_back)
        scores.append(held_out(drawn, chosen) - single)
    assert np.mean(kept) >= 0.8 and np.mean(scores) < -0.1  # held out, the ensemble beats the single best clearly


def test_the_decision_is_recorded_and_the_single_best_fits_the_budget() -> None:
    drawn = case("diverse", 0, val_images=200, held_out=10)
    gflops = np.linspace(1, 6, len(drawn.val_probs))  # those over 4 GFLOPs never fit
    chosen = guarded(
        lambda p, y: greedy_select(p, y, max_gflops=4.0, gflops=gflops), drawn.val_probs, drawn.val_labels,
        max_gflops=4.0, gflops=gflops,
    )  # fmt: skip
    decision = chosen.safeguard
    assert not decision.fell_back and decision.low <= decision.gain <= decision.high and decision.gain > 0
    assert decision.level == pytest.approx(0.9) and gflops[decision.candidate] <= 4.0
    assert chosen.members == greedy_select(drawn.val_probs, drawn.val_labels, max_gflops=4.0, gflops=gflops).members
