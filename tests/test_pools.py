"""A finished run's pool measured by kind after the fact (zoofit.bench.pools), on conftest's finished tiny run
(``run``: two models with two trials each, their soups, one linear head)."""

from __future__ import annotations

import csv
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.conftest import write_image_folder
from zoofit import load_data
from zoofit.bench import BenchResult, TaskResult
from zoofit.bench.pools import SubPool, compare_bench, compare_pools, mean_pools, read_pool
from zoofit.bench.result import Row, classifiers_of, mean_of
from zoofit.data import DataConfig
from zoofit.errors import ParameterError, ZoofitError
from zoofit.layout import CONFIG, TRIALS
from zoofit.replay import RunConfig
from zoofit.result import RunResult
from zoofit.store import RunStore, write_csv, write_tensors


def splits_of(run: Path):
    return load_data(str(run.parent / "images"))


def test_the_pool_of_every_kind_chooses_the_runs_own_ensemble_and_the_trial_pool_trials_alone(run: Path) -> None:
    pool = read_pool(run, splits_of(run))
    comparison = compare_pools(pool)
    measured = {p.pool: p for p in comparison.pools}
    assert list(measured) == ["trial", "trial+soup", "trial+linear", "trial+soup+linear"]
    assert [measured[name].candidates for name in measured] == [4, 6, 5, 7]
    assert comparison.reproduced is True
    reported = RunResult.read(run).ensemble
    assert measured["trial+soup+linear"].test == reported.test
    assert measured["trial+soup+linear"].by_kind == reported.by_kind
    assert set(measured["trial"].by_kind.kinds) == {"trial"}
    assert measured["trial+linear"].by_kind.kinds.keys() <= {"trial", "linear"}
    assert comparison.reported == classifiers_of(RunResult.read(run))
    assert measured["trial"].seconds < measured["trial+soup"].seconds  # the soups' cooking counted
    assert mean_pools([comparison, comparison])["trial"].accuracy == pytest.approx(measured["trial"].test.accuracy)


def test_a_sub_pool_of_the_best_ranked_models_takes_their_candidates_alone(run: Path) -> None:
    pool = read_pool(run, splits_of(run))
    (top,) = compare_pools(pool, [SubPool.parse("trial:1")]).pools
    assert top.pool == "trial:1" and top.candidates == 2
    assert all(member.startswith(pool.ranking[0]) for member in top.members)


def test_the_best_trials_seed_replicas_are_a_part_apart_from_the_sweeps_trials(run: Path) -> None:
    """A trial of another seed than the run's (a replica, --seed-replicas) is measured apart from the sweep's."""
    pool = read_pool(run, splits_of(run))
    replica = replace(pool.candidates[0], config=replace(pool.candidates[0].config, seed=pool.seed + 1))
    pool = replace(pool, candidates=[replica, *pool.candidates[1:]])
    assert pool.parts == ["trial", "soup", "linear", "replica"]
    measured = {p.pool: p for p in compare_pools(pool).pools}
    assert list(measured) == ["trial", "trial+soup", "trial+linear", "trial+replica", "trial+soup+linear+replica"]
    assert measured["trial"].candidates == 3 and measured["trial+replica"].candidates == 4
    (alone,) = compare_pools(pool, [SubPool.parse("replica")]).pools
    assert alone.trials == [replica.key]


@pytest.mark.parametrize("text", ["trial+bogus", "trial:0", "linear:x", ""])
def test_a_bad_sub_pool_is_one_line_naming_pools(text: str) -> None:
    with pytest.raises(ParameterError, match="pools") as caught:
        SubPool.parse(text)
    assert "\n" not in str(caught.value)


def test_a_sub_pool_without_candidates_is_one_line(run: Path) -> None:
    pool = read_pool(run, splits_of(run))
    pool = replace(pool, candidates=[c for c in pool.candidates if c.kind != "linear"])
    with pytest.raises(ParameterError, match="'linear' holds none of the run's candidates"):
        compare_pools(pool, [SubPool.parse("linear")])


def test_other_data_or_no_data_or_no_run_is_refused_in_one_line(run: Path, tmp_path: Path) -> None:
    other = load_data(str(write_image_folder(tmp_path / "other", per_class=8, layout="split", size=(20, 20))))
    with pytest.raises(ZoofitError, match="is not what run folder .* was run on"):
        read_pool(run, other)
    with pytest.raises(ZoofitError, match="names no data"):
        read_pool(run)  # the tiny run was given its splits, so its config.yaml names no data
    with pytest.raises(ZoofitError, match="summary.json"):
        read_pool(tmp_path, other)


def test_a_candidate_whose_predictions_disagree_with_its_run_is_refused(run: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(run, tmp_path / "run")
    pool = read_pool(copy, splits_of(run))
    key = pool.candidates[0].key
    folder = RunStore(copy).trial_dir(key)
    write_tensors(
        folder / "predictions.safetensors", {"val_probs": torch.ones(3, 3) / 3, "test_probs": torch.ones(6, 3)}
    )
    with pytest.raises(ZoofitError, match=f"{key}' holds 3x3 validation probabilities, not 6x3"):
        read_pool(copy, splits_of(run))


def test_a_trials_csv_that_marks_no_candidate_is_refused(run: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(run, tmp_path / "run")
    with (copy / TRIALS).open(newline="") as handle:
        rows = [{name: value for name, value in row.items() if name != "candidate"} for row in csv.DictReader(handle)]
    write_csv(copy / TRIALS, rows)  # as a trials.csv without the column
    with pytest.raises(ZoofitError, match="marks no candidate; run 'zoofit run' into"):
        read_pool(copy, splits_of(run))


@pytest.fixture
def bench(run: Path, tmp_path: Path) -> Path:
    """A bench folder of the tiny run as its one finished task (its config.yaml naming the data) and a failed one."""
    bench = tmp_path / "bench"
    task = shutil.copytree(run, bench / "tiny")
    config = RunConfig.read(task / CONFIG)
    (task / CONFIG).write_text(replace(config, data=DataConfig(str(run.parent / "images"))).text())
    done = TaskResult("tiny", "natural", "images", "tiny", "done", classifiers=classifiers_of(RunResult.read(run)))
    failed = TaskResult("gone", "natural", "missing", "gone", "failed", reason="no data")
    BenchResult(
        "tiny", "test", "tiny", "quick", None, [done, failed], [mean_of("natural", [done])], mean_of("mean", [done]),
        [], None, "local", 1.0,
    ).write(bench)  # fmt: skip
    return bench


def test_a_bench_folder_measures_each_finished_task_its_labels_drawn_from_its_config(run: Path, bench: Path) -> None:
    comparisons = compare_bench(bench, [SubPool.parse("trial"), SubPool.parse("trial+soup+linear")])
    assert list(comparisons) == ["tiny"]
    assert comparisons["tiny"].reproduced is True
    assert comparisons["tiny"].pools[1].test == RunResult.read(run).ensemble.test


def test_the_benchmark_script_prints_and_returns_each_task_and_the_means(bench: Path, capsys) -> None:
    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    import pool_kinds

    found = pool_kinds.figures(bench, None)
    assert set(found["mean"]) == {"trial", "trial+soup", "trial+linear", "trial+soup+linear"}
    assert found["runs"]["tiny"]["reproduced"] is True
    printed = capsys.readouterr().out
    assert "pool trial+linear" in printed and "logistic regression on frozen features" in printed
    whole = found["never_worse"]["trial+soup+linear"]  # the run's own pool: judged against the run's baselines
    reported = found["runs"]["tiny"]["reported"]
    assert whole["every_task"] == whole["tasks"]["tiny"]["never_worse"]
    assert whole["tasks"]["tiny"]["higher_nll_than"] == [
        name for name, row in reported.items() if name != "ensemble" and reported["ensemble"]["nll"] > row["nll"]
    ]
    assert "never worse than a baseline on every task" in printed


def test_never_worse_allows_half_a_point_of_accuracy_and_no_nll() -> None:
    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    import pool_kinds

    ensemble = Row(0.800, 0.50, 0.01, 1.0)
    assert pool_kinds.never_worse(ensemble, {"a": Row(0.804, 0.51, 0.0, 1.0)})["never_worse"] is True
    judged = pool_kinds.never_worse(ensemble, {"a": Row(0.806, 0.51, 0.0, 1.0), "b": Row(0.7, 0.49, 0.0, 1.0)})
    assert judged == {"never_worse": False, "higher_nll_than": ["b"], "lower_accuracy_than": ["a"]}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(["--pools", "trial+bogus"], "error: --pools 'trial+bogus' is no sub-pool"), ([], "holds no finished run")],
)
def test_the_benchmark_scripts_bad_input_is_one_line_and_exit_2(tmp_path: Path, monkeypatch, capsys, arguments,
                                                                 message) -> None:  # fmt: skip
    sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
    import pool_kinds

    monkeypatch.setattr(sys, "argv", ["pool_kinds.py", str(tmp_path), *arguments])
    with pytest.raises(SystemExit) as exited:
        pool_kinds.main()
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
