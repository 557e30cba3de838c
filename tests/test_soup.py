"""Greedy model soups: averaging, the greedy rule, and soups in a run (stored, reused, chosen among the trials),
with the run's growth curve and reliability diagram."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from zoofit.ensemble.soup import average_states, greedy_soup
from zoofit.evaluate import expected_calibration_error, nll, reliability
from zoofit.members import member_label
from zoofit.report import html_report
from zoofit.result import RunResult


def test_averaging_keeps_what_all_ingredients_share_and_averages_the_rest() -> None:
    frozen = torch.randn(3, 3)
    states = [
        {"frozen": frozen.clone(), "trained": torch.full((2,), float(i)), "count": torch.tensor(i)} for i in (1, 2, 6)
    ]
    mean = average_states(states)
    assert mean["frozen"] is states[0]["frozen"]  # equal in all: the first's own tensor, bit for bit
    assert torch.equal(mean["trained"], torch.full((2,), 3.0)) and mean["trained"].dtype == torch.float32
    assert mean["count"].item() == 1  # not a float: the first's


def test_an_ingredient_joins_only_where_the_soups_validation_nll_gets_no_worse() -> None:
    labels = np.array([0, 1, 1, 0])
    sure = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.8, 0.2]])
    states = [{"w": torch.tensor([float(i)])} for i in range(4)]
    # The "soup" of a state predicts well where its mean weight is small: 0+1 helps, adding 3 hurts, adding 2 helps.
    quality = {0.5: 0.95, 1.0: 0.97, 4 / 3: 0.5}

    def evaluate(state):
        p = quality[round(state["w"].item(), 4)] if round(state["w"].item(), 4) in quality else 0.5
        return np.where(np.eye(2)[labels] == 1, p, 1 - p)

    soup = greedy_soup(states, [sure] * 4, labels, evaluate)
    assert soup.ingredients == (0, 1, 2)  # 0+1 (mean 0.5), +3 (mean 4/3) refused, +2 (mean 1.0)
    assert nll(soup.val_probs, labels) <= nll(sure, labels)


def test_reliability_bins_give_the_expected_calibration_error() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=300)
    labels = rng.integers(0, 4, 300)
    bins = reliability(probs, labels)
    assert len(bins) == 15 and sum(b["count"] for b in bins) == 300
    manual = sum(b["count"] / 300 * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"])
    assert expected_calibration_error(probs, labels) == manual


def test_a_run_with_soups_stores_them_reports_them_and_lets_the_ensemble_choose_them(run: Path) -> None:
    result = RunResult.read(run)
    with (run / "trials.csv").open() as handle:
        trials = list(csv.DictReader(handle))
    assert len(result.soups) == 2 and {s.model for s in result.soups} == {"tiny_resnet", "tiny_effnet"}
    for soup in result.soups:
        own = [t for t in trials if t["model"] == soup.model and t["kind"] == "trial"]
        best = max(own, key=lambda t: (float(t["val_accuracy"]), -float(t["val_nll"])))
        assert soup.ingredients[0] == best["trial"] and set(soup.ingredients) <= {t["trial"] for t in own}
        assert soup.val_nll <= float(best["val_nll"]) + 1e-12  # never worse than its best ingredient
        assert soup.gflops_per_image == float(best["gflops"])  # one forward pass of the model
        assert (run / "trials" / soup.trial / "model.safetensors").is_file()  # stored like a trial
    candidates = {t["trial"] for t in trials} | {s.trial for s in result.soups}
    growth = result.ensemble.growth
    assert growth and {step.trial for step in growth} <= candidates
    assert min(step.val_nll for step in growth) == result.ensemble.val_nll
    assert {m.trial for m in result.ensemble.members} <= {step.trial for step in growth}
    assert set(result.reliability) == {"ensemble", "best_single"}
    page = html_report(run)
    for expected in ("Growth of the ensemble", "reliability diagram", "soup of"):
        assert expected in page


def test_a_rerun_reuses_the_stored_soups(run: Path) -> None:
    from tests.conftest import TINY_SWEEP, tiny_spec, write_image_folder
    from zoofit import ZooFit, load_data, preset
    from zoofit.zoo import Zoo

    stamps = {soup.trial: (run / "trials" / soup.trial / "result.json").stat().st_mtime_ns
              for soup in RunResult.read(run).soups}  # fmt: skip
    splits = load_data(str(write_image_folder(run.parent / "images", per_class=8, layout="split")))
    zoo = Zoo("tiny", (tiny_spec("tiny_resnet", "test_resnet"), tiny_spec("tiny_effnet", "test_efficientnet")))
    again = ZooFit(zoo, sweep=preset("quick").override(**TINY_SWEEP), precision="fp32", workers=1,
                   cache_dir=run.parent / "cache").fit(splits, run)  # fmt: skip
    assert {soup.trial for soup in again.result_.soups} == set(stamps)
    assert all((run / "trials" / key / "result.json").stat().st_mtime_ns == stamp for key, stamp in stamps.items())


def test_depths_are_trials_of_their_own_and_a_soup_takes_one_depth(tmp_path: Path) -> None:
    from tests.conftest import TINY_SWEEP, tiny_spec, write_image_folder
    from zoofit import ZooFit, load_data, preset
    from zoofit.zoo import Zoo

    splits = load_data(str(write_image_folder(tmp_path / "images", per_class=8, layout="split")))
    zoo = Zoo("tiny", (tiny_spec("tiny_resnet", "test_resnet"),))
    sweep = preset("quick").override(**{**TINY_SWEEP, "members": ("trial", "soup")}, freeze_stride=(8, 0))
    fit = ZooFit(zoo, sweep=sweep, precision="fp32", workers=1, cache_dir=tmp_path / "cache").fit(
        splits, tmp_path / "r"
    )
    with (tmp_path / "r" / "trials.csv").open() as handle:
        depth_of = {t["trial"]: int(t["freeze_stride"]) for t in csv.DictReader(handle) if t["kind"] == "trial"}
    assert sorted(depth_of.values()) == [0, 0, 8, 8]  # 2 depths x 2 learning rates
    soups = fit.result_.soups
    assert len(soups) == 2 and all(len({depth_of[key] for key in soup.ingredients}) == 1 for soup in soups)
    assert all("freeze=" in member_label(member) for member in fit.result_.ensemble.members)
    assert "freeze stride" in html_report(tmp_path / "r")
