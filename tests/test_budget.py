"""--time-limit: the planner's cuts on a fake cost model, reused work counted as free, bad durations, bagged
selection."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.test_rank import write_tiny_zoo_file
from zoofit import ZooFit, load_data
from zoofit.budget import MIN_STEPS, CostModel, ModelCost, Sweep, plan, seconds
from zoofit.cli import app
from zoofit.ensemble import SELECTIONS, bagged_select, greedy_select
from zoofit.errors import ParameterError
from zoofit.evaluate import nll
from zoofit.finetune import budgeted
from zoofit.members import KINDS
from zoofit.sweep_config import SweepConfig, parse_duration, preset

#: The tiny runs' sweep: two models x two learning rates, 6 steps at batch 8, no robustness.
TINY = {"lrs": (0.01, 0.03), "steps": (6,), "batch_size": 8, "image_size": 32, "shift_images": 0}


def quick(**changes):
    return preset("quick").override(**changes)


@pytest.fixture
def splits(make_image_folder):
    return load_data(str(make_image_folder(per_class=8, layout="split")))


#: Three models: 1 s per training image for the first, 2 for the others, 0.01 per predicted image; 100 to rank each.
COSTS = CostModel(
    (ModelCost("a", 100, 1.0, 0.01), ModelCost("b", 100, 2.0, 0.01), ModelCost("c", 100, 2.0, 0.01)),
    predicted_images=100,
)
SWEEP = Sweep(SweepConfig().override(top_k=3, lrs=(0.003, 0.01, 0.03), steps=(10,), batch_size=10, shift_images=100))


def test_the_fake_cost_model_adds_up() -> None:
    # ranking 300; trials 3 lrs x (100 + 1) + 3 lrs x (200 + 1) x 2; robustness 100 x 6 x 4 x 0.01
    assert seconds(SWEEP, COSTS) == pytest.approx(300 + 303 + 1206 + 24)


def test_the_pools_kinds_are_priced_a_linear_head_a_pass_over_the_predicted_images_per_head() -> None:
    linear = KINDS["linear"].price
    priced = replace(COSTS, prices=(linear, KINDS["trial"].price))
    assert seconds(SWEEP, priced) - seconds(SWEEP, COSTS) == pytest.approx(3 * 100 * 0.01)  # top_k heads
    one_head = replace(SWEEP, config=SWEEP.config.override(linear_heads=1))
    assert seconds(one_head, priced) - seconds(one_head, COSTS) == pytest.approx(100 * 0.01)


def test_a_plan_that_fits_cuts_nothing() -> None:
    result = plan(SWEEP, COSTS, 10_000)
    assert result.sweep == SWEEP and result.cuts == () and "nothing cut" in result.describe(10_000)


@pytest.mark.parametrize(
    ("limit", "cuts", "expected"),
    [
        (1500, ["top-k 3 -> 2"], {"top_k": 2}),
        (1000, ["top-k 3 -> 2", "learning rates 0.003,0.01,0.03 -> 0.01"], {"top_k": 2, "lrs": (0.01,)}),
    ],
)
def test_cuts_come_in_order_each_only_as_far_as_needed(limit, cuts, expected) -> None:
    result = plan(SWEEP, COSTS, limit)
    assert list(result.cuts) == cuts
    assert result.sweep == SWEEP.changed(**expected) and result.seconds <= limit


def test_steps_then_robustness_then_one_model() -> None:
    costs = replace(COSTS, models=tuple(replace(m, train_seconds_per_image=m.train_seconds_per_image / 100)
                                        for m in COSTS.models))  # fmt: skip
    sweep = SWEEP.changed(steps=(200, 400), shift_images=1000)
    # 2 models x 1 lr at 200 steps: 300 ranking + 21 + 41 + robustness 1000 x 6 x 3 x 0.01 = 542 s; 497 at 50 steps
    result = plan(sweep, costs, 520)
    assert [cut.split(" ")[0] for cut in result.cuts] == ["top-k", "learning", "steps"]
    steps = result.sweep.config.search.steps
    assert MIN_STEPS < steps[0] < 200 and len(steps) == 1 and result.seconds <= 520
    result = plan(sweep, costs, 400)
    assert [cut.split(" ")[0] for cut in result.cuts] == ["top-k", "learning", "steps", "robustness"]
    config = result.sweep.config
    assert config.search.steps == (MIN_STEPS,) and 0 < config.evaluation.shift_images < 1000 and result.seconds <= 400
    result = plan(sweep, costs, 310)  # 300 ranking + 2 trials of 50 steps (17 s): one model, no robustness
    config = result.sweep.config
    assert result.cuts[-1] == "top-k 2 -> 1" and config.search.top_k == 1 and config.evaluation.shift_images == 0


def test_the_zoo_is_cut_first_where_ranking_it_all_does_not_fit() -> None:
    costs = replace(COSTS, models=(*COSTS.models, ModelCost("huge", 5000, 1.0, 0.01)))
    result = plan(SWEEP.changed(top_k=1, lrs=(0.01,), shift_images=0), costs, 1000)
    assert result.cuts == ("zoo all -> 3 models ranked",) and result.sweep.ranked == ("a", "b", "c")


def test_a_limit_too_small_for_the_smallest_plan_is_refused_in_one_line() -> None:
    with pytest.raises(ParameterError) as error:
        plan(SWEEP, COSTS, 400)  # ranking 300 s + the cheapest model's one trial 101 s
    message = error.value.spelled(lambda name: "--time-limit")
    assert "\n" not in message and message.startswith("--time-limit leaves 400 s") and "needs about 401 s" in message


def test_each_depth_is_priced_at_its_share_and_cut_to_the_cheapest() -> None:
    sweep = SWEEP.changed(top_k=1, lrs=(0.01,), shift_images=0, freeze_stride=(8, 0))
    ranked = tuple(replace(m, rank_seconds=0) for m in COSTS.models)  # after the ranking
    costs = replace(COSTS, models=ranked, depth_shares={8: 1.0, 0: 3.0})  # every layer trained: 3x per step
    assert seconds(sweep, costs) == pytest.approx(101 + 301)  # stride 8, stride 0
    stored = replace(costs, stored=frozenset({("a", 0.01, 10, 0, False, 0)}))  # the deep trial is done: free
    assert seconds(sweep, stored) == pytest.approx(101)
    result = plan(sweep, costs, 150)
    assert result.cuts == ("depths 8,0 -> 8",) and result.sweep.config.search.freeze_stride == (8,)


def test_stored_trials_cost_nothing_so_a_resumed_run_keeps_its_plan() -> None:
    small = SWEEP.changed(lrs=(0.01,), shift_images=0)
    fresh = plan(small, COSTS, 800)
    assert fresh.cuts  # 300 ranking + 101 + 2 x 201: too much
    stored = frozenset((m, 0.01, 10, 0, False, 0) for m in "abc")
    resumed = plan(small, replace(COSTS, stored=stored), 800)
    assert resumed.cuts == () and resumed.seconds == pytest.approx(300)  # only the ranking is left to pay
    refit = plan(small.changed(refit=True), replace(COSTS, stored=stored), 1200)
    assert refit.seconds == pytest.approx(300 + 101 + 2 * 201)  # the refits are still to train


def test_the_best_trials_other_seeds_are_priced_once_for_replicas_and_baseline_and_free_when_stored() -> None:
    sweep = SWEEP.changed(top_k=1, lrs=(0.01,), shift_images=0, freeze_stride=(8, 0))
    ranked = tuple(replace(m, rank_seconds=0) for m in COSTS.models)
    costs = replace(COSTS, models=ranked, depth_shares={8: 1.0, 0: 3.0})
    base = seconds(sweep, costs)  # 101 + 301
    replicas = sweep.changed(seed_replicas=2)
    assert seconds(replicas, costs) == pytest.approx(base + 2 * 301)  # each at the dearest depth: the best is unknown
    assert seconds(replicas.changed(seed_baseline=3), costs) == seconds(replicas, costs)  # the same two seeds
    assert seconds(replicas.changed(seed_baseline=4), costs) == pytest.approx(base + 3 * 301)
    stored = replace(costs, stored=frozenset({("a", 0.01, 10, 8, False, 1)}))  # seed + 1 of one trial: done
    assert seconds(replicas, stored) == pytest.approx(base + 301)


@pytest.mark.parametrize(("text", "seconds_"), [("90s", 90), ("20m", 1200), ("2h", 7200), ("1.5h", 5400), ("45", 45)])
def test_durations(text, seconds_) -> None:
    assert parse_duration(text) == seconds_


@pytest.mark.parametrize("text", ["-5m", "abc", "0", "0s", "5x", "", "inf", "nanm"])
def test_bad_durations_are_one_line_errors(text, make_image_folder, tmp_path) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
    data, zoo = make_image_folder(per_class=2, layout="split"), write_tiny_zoo_file(tmp_path)
    result = CliRunner().invoke(
        app, ["run", "--data", str(data), "--zoo", str(zoo), "--out", str(tmp_path / "o"), "--time-limit", text]
    )
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: --time-limit")


def test_time_limit_is_a_sweep_setting() -> None:
    assert preset("quick").override(time_limit=90).budget.time_limit == 90
    with pytest.raises(ParameterError, match="time_limit"):
        preset("quick").override(time_limit=-1)


# ---------------------------------------------------------------- bagged selection


def candidates(seed: int = 0, count: int = 5, images: int = 200, classes: int = 4):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, images)
    probs = []
    for quality in np.linspace(0.5, 2.5, count):
        logits = rng.normal(size=(images, classes)) + quality * np.eye(classes)[labels]
        probs.append(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    return probs, labels


def test_bagged_selection_averages_the_bags_weights_and_is_deterministic() -> None:
    probs, labels = candidates()
    first = bagged_select(probs, labels, bags=10, seed=3)
    again = bagged_select(probs, labels, bags=10, seed=3)
    np.testing.assert_array_equal(first.counts, again.counts)
    assert first.weights.sum() == pytest.approx(1.0)
    assert not np.array_equal(first.counts, bagged_select(probs, labels, bags=10, seed=4).counts)
    weighted = sum(w * p for w, p in zip(first.weights, probs, strict=True))
    assert first.val_nll == pytest.approx(nll(weighted, labels))
    assert list(first.order) == sorted(first.members, key=lambda i: -first.weights[i])  # heaviest first
    assert first.history[-1] == pytest.approx(first.val_nll)


def test_one_bag_of_all_images_is_greedy_selection() -> None:
    probs, labels = candidates()
    bagged = bagged_select(probs, labels, bags=1, fraction=1.0)
    np.testing.assert_allclose(bagged.weights, greedy_select(probs, labels).weights)


def test_bagged_selection_keeps_the_budget() -> None:
    probs, labels = candidates(count=6)
    assert len(bagged_select(probs, labels, bags=8, max_members=2).members) <= 2
    gflops = [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]
    chosen = bagged_select(probs, labels, bags=8, max_gflops=3.0, gflops=gflops)
    assert sum(gflops[i] for i in chosen.members) <= 3.0
    with pytest.raises(ParameterError):
        bagged_select(probs, labels, bags=0)


def test_selections_are_named_and_the_sweep_checks_the_name() -> None:
    assert set(SELECTIONS) == {"greedy", "bagged"}
    assert preset("quick").override(selection="bagged", bags=3).ensemble.bags == 3
    with pytest.raises(ParameterError, match="selection must be one of greedy, bagged, not 'lasso'"):
        ZooFit(sweep=preset("quick").override(selection="lasso")).check()


# ---------------------------------------------------------------- a run planned to a limit, end to end (tiny models)


@pytest.fixture
def slow_machine(monkeypatch):
    """The probe measures for real, then reports a machine that trains one image in 10 seconds."""
    real = budgeted.probe
    monkeypatch.setattr(budgeted, "probe", lambda *args: replace(real(*args), train_seconds_per_image=10.0))


def test_a_resumed_run_counts_its_stored_trials_as_free_and_a_fresh_one_is_cut_or_refused(
    splits, tiny_zoo, tmp_path, slow_machine
) -> None:
    sweep = quick(**TINY)
    first = ZooFit(tiny_zoo, precision="fp32", sweep=sweep.override(time_limit=10**6), workers=1).fit(splits, tmp_path)
    assert first.result_.plan is not None and first.result_.plan.cuts == []
    fresh = first.result_.plan.planned_seconds  # 4 trials at 10 s per training image, and what came before

    resumed = ZooFit(tiny_zoo, precision="fp32", sweep=sweep.override(time_limit=fresh / 2), workers=1)
    resumed.fit(splits, tmp_path)  # the 4 trials are stored: they cost nothing, and nothing is cut
    assert resumed.result_.plan.cuts == [] and resumed.result_.units.computed == 0

    cut = ZooFit(tiny_zoo, precision="fp32", sweep=sweep.override(time_limit=fresh * 0.75), workers=1)
    cut.fit(splits, tmp_path / "cut")  # afresh, one learning rate fits
    assert cut.result_.plan.cuts[0].startswith("learning rates") and len(cut.trials_) == 2

    with pytest.raises(ParameterError, match="the smallest plan"):  # afresh, not even one trial fits
        ZooFit(tiny_zoo, precision="fp32", sweep=sweep.override(time_limit=fresh * 0.03), workers=1).fit(
            splits, tmp_path / "new"
        )
    assert not (tmp_path / "new" / "trials").exists() or not any((tmp_path / "new" / "trials").iterdir())


def test_the_probe_measures_each_depth_of_the_sweep(splits, tiny_zoo, tmp_path) -> None:
    from zoofit.finetune.sweep import TrialContext

    context = TrialContext(splits, tmp_path, tmp_path / "cache", "cpu", "fp32", "fp32", 32)
    measured = budgeted.probe(tiny_zoo.models[0], quick(**TINY, freeze_stride=(8, 0, 8)), 32, context)
    assert list(measured.depth_shares) == [8, 0] and measured.depth_shares[8] == 1.0
    assert measured.depth_shares[0] > 0 and measured.train_seconds_per_image > 0


def test_models_whose_features_are_cached_rank_for_free_so_the_zoo_is_not_cut(
    splits, tiny_zoo, tmp_path, monkeypatch
) -> None:
    import time

    from zoofit import Ranker
    from zoofit.finetune.sweep import TrialContext
    from zoofit.store import RunStore

    ranker = Ranker(tiny_zoo, image_size=32, precision="fp32", cache_dir=tmp_path / "cache")
    assert ranker.cached(splits.ranking_set) == set()
    ranker.fit(splits)
    assert ranker.cached(splits.ranking_set) == {"tiny_resnet", "tiny_effnet"}
    assert ranker.cached(splits.train) == {"tiny_resnet", "tiny_effnet"}  # features are kept per image
    assert ranker.cached(splits.test) == set()  # images never ranked
    slow = budgeted.Throughput("tiny_resnet", 0.001, predict_seconds_per_image=1.0, overhead=1.0)
    monkeypatch.setattr(budgeted, "probe", lambda *args: slow)  # ranking a model afresh: 1 s per image
    ranking, predicted = len(splits.ranking_set), len(splits.val) + len(splits.test)
    one_model = (1 + ranking) + 2 * (1 + 6 * 8 * 0.001 + predicted)  # ranked, and its two trials
    limit = (one_model + ranking / 2 + budgeted.RESERVE_SECONDS) / (1 - budgeted.RESERVE_SHARE)  # not two ranked
    config = quick(**TINY, top_k=1, time_limit=limit)
    context = TrialContext(splits, tmp_path, tmp_path / "cache", "cpu", "fp32", "fp32", 32)

    def kept(cached: set[str]) -> list[str]:
        budget = budgeted.Budget(config, 32, context, time.perf_counter())
        return budget.zoo(tiny_zoo, len(splits.ranking_set), RunStore(tmp_path / "run"), 0, cached)

    assert len(kept(set())) == 1  # ranking both afresh does not fit: the zoo is cut
    assert kept({"tiny_resnet", "tiny_effnet"}) == ["tiny_resnet", "tiny_effnet"]
