"""The Ray executor against a local Ray of two CPUs (one for the whole test session): the same run as on this
machine, a unit's own error as here, a dead worker retried, progress forwarded; without Ray, one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from safetensors.torch import save_file
from typer.testing import CliRunner

from tests.conftest import tiny_spec
from tests.test_execute import unit
from tests.test_rank import write_tiny_zoo_file
from tests.test_run import error_line
from tests.test_runner import RecordingProgress
from zoofit import Ranker, load_data
from zoofit.cli import app
from zoofit.execute import RayCluster, WorkerDied
from zoofit.result import RunResult
from zoofit.zoo import Zoo

runner = CliRunner()


@pytest.fixture(scope="session")
def ray_cluster():
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_a_run_on_ray_gives_the_same_result_as_here(ray_cluster, make_image_folder, tmp_path: Path) -> None:
    """Trials single-threaded on both (two local worker processes; a Ray unit of one CPU): the same numbers."""
    data, zoo = make_image_folder(per_class=6, layout="split"), write_tiny_zoo_file(tmp_path)
    common = ["run", "--data", str(data), "--zoo", str(zoo), "--lrs", "0.01,0.03", "--steps", "5", "--batch-size",
              "8", "--image-size", "32", "--shift-images", "0", "--workers", "2", "--precision", "fp32"]  # fmt: skip
    results = {}
    for executor in ("local", "ray"):
        outcome = runner.invoke(app, [*common, "--out", str(tmp_path / executor), "--executor", executor])
        assert outcome.exit_code == 0, outcome.output
        results[executor] = RunResult.read(tmp_path / executor)
    here, there = results["local"], results["ray"]
    assert (there.units.computed, there.units.reused) == (3, 1)  # two trials and the top model's linear head; the
    # features cached by the first run
    assert (there.ensemble.test, there.best_single.test) == (here.ensemble.test, here.best_single.test)
    assert [m.trial for m in there.ensemble.members] == [m.trial for m in here.ensemble.members]

    again = runner.invoke(app, [*common, "--out", str(tmp_path / "ray"), "--executor", "ray"])
    assert again.exit_code == 0 and RunResult.read(tmp_path / "ray").units.reused == 4  # stored by the driver


def test_a_model_that_cannot_load_is_skipped_on_ray_with_its_reason(ray_cluster, make_image_folder, tmp_path) -> None:
    save_file({"nonsense": __import__("torch").zeros(3)}, str(tmp_path / "bad.safetensors"))
    zoo = Zoo("mixed", (tiny_spec(), tiny_spec("broken", weights=f"file:{tmp_path / 'bad.safetensors'}")))
    images = load_data(str(make_image_folder(per_class=4)))
    progress = RecordingProgress()
    there = Ranker(zoo, precision="fp32", executor="ray").fit(images, progress=progress)
    here = Ranker(zoo, precision="fp32").fit(images)  # (reads the features the driver cached)
    assert there.skipped_ == here.skipped_ and "does not fit" in there.skipped_[0].reason
    assert [(r.model, r.score) for r in there.ranking_] == [(r.model, r.score) for r in here.ranking_]
    # the bar over the models, and the remote extraction's bar
    assert progress.totals == {"ranking 2 models": 2, "tiny_resnet": len(images.ranking_set)}


def test_a_units_own_error_is_final_and_raised_as_it_was(ray_cluster, tmp_path: Path) -> None:
    progress = RecordingProgress()
    results = []
    with pytest.raises(ValueError, match="^fail failed$"):
        for result in RayCluster(2).map(unit, tmp_path, ["wait", "fail", "c", "d"], progress):
            results.append(result)
    assert results == [(0, "WAIT")] and set(progress.totals) == {"wait", "fail"}


def test_a_unit_whose_worker_dies_is_run_again(ray_cluster, tmp_path: Path) -> None:
    assert list(RayCluster(retries=1).map(once, tmp_path, ["die", "b"], RecordingProgress())) in (
        [(1, "B"), (0, "DIE")],
        [(0, "DIE"), (1, "B")],
    )
    (tmp_path / "died").unlink()
    with pytest.raises(WorkerDied, match=r"died running a unit \(.*; retried 0 times\)"):
        list(RayCluster(retries=0).map(once, tmp_path, ["die"], RecordingProgress()))


def once(folder: Path, item: str, progress) -> str:
    """``die``: the worker process ends the first time; else as :func:`tests.test_execute.unit`."""
    if item == "die" and not (folder / "died").exists():
        (folder / "died").touch()
        return unit(folder, item, progress)
    return item.upper()


def test_ray_without_ray_installed_is_one_line(make_image_folder, tmp_path: Path, monkeypatch) -> None:
    data, zoo = make_image_folder(per_class=6, layout="split"), write_tiny_zoo_file(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    for command in ("run", "rank"):
        result = runner.invoke(app, [command, "--data", str(data), "--zoo", str(zoo), "--executor", "ray"])
        assert error_line(result) == "error: the Ray executor needs Ray: pip install 'zoofit[ray]'"


def test_cluster_options_go_with_ray(make_image_folder, tmp_path: Path) -> None:
    data, zoo = make_image_folder(per_class=6, layout="split"), write_tiny_zoo_file(tmp_path)
    base = ["run", "--data", str(data), "--zoo", str(zoo)]
    line = error_line(runner.invoke(app, [*base, "--ray-address", "127.0.0.1:6379"]))
    assert line == "error: --ray-address is not a setting of the local executor"
    assert "--unit-gpus must not be negative" in error_line(
        runner.invoke(app, [*base, "--executor", "ray", "--unit-gpus", "-1"])
    )
    assert "--executor must be one of local, ray, not 'dask'" in error_line(
        runner.invoke(app, [*base, "--executor", "dask"])
    )


def test_a_bench_on_ray_runs_its_tasks_at_once(ray_cluster, tmp_path: Path) -> None:
    """The units of both tasks share the cluster: the bench takes less than its tasks one after another."""
    from tests.test_bench import TINY, write_suite
    from zoofit import ZooFit, preset
    from zoofit.bench import Bench, BenchResult

    zoo = Zoo("tiny", (tiny_spec("tiny_resnet", "test_resnet"), tiny_spec("tiny_effnet", "test_efficientnet")))
    sweep = preset("quick").override(top_k=2, **{**TINY, "steps": (10,)})
    Bench(write_suite(tmp_path), ZooFit(zoo, sweep=sweep, precision="fp32", executor="ray")).fit(tmp_path / "out")
    result = BenchResult.read(tmp_path / "out")
    assert [(task.id, task.status) for task in result.tasks] == [("colours", "done"), ("pets", "done")]
    assert result.executor == "ray" and result.wall_seconds < 0.9 * sum(task.wall_seconds for task in result.tasks)
