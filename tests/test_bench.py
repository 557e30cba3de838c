"""zoofit bench: suites, tasks as run folders, the table from the runs' results, failures, resume, the audit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import tiny_spec, write_image_folder
from tests.test_rank import write_tiny_zoo_file
from zoofit import ZooFit, preset
from zoofit.bench import Bench, BenchResult, builtin_suites, load_suite
from zoofit.bench.audit import agreement
from zoofit.cli import app
from zoofit.data import load_source
from zoofit.data.sources import check_source, resolve
from zoofit.errors import ZoofitError
from zoofit.result import RunResult
from zoofit.zoo import Zoo

TINY = {"lrs": (0.03,), "steps": (6,), "batch_size": 8, "image_size": 32, "shift_images": 0}
runner = CliRunner()


def write_suite(root: Path, *, missing: bool = False) -> Path:
    """A suite of two tiny tasks (a folder with its own splits, and one whose test split is held out), and a task
    whose data is missing where ``missing``."""
    first = write_image_folder(root / "colours", per_class=8, layout="split")
    second = write_image_folder(root / "pets", per_class=12, classes=("cat", "dog"))
    lines = [
        "name: tiny",
        "tasks:",
        f"  - {{id: colours, data: '{first}', group: natural}}",
        f"  - {{id: pets, data: '{second}', group: structured, protocol: {{test_fraction: 0.5}}}}",
    ]
    if missing:
        lines.append(f"  - {{id: gone, data: '{root / 'gone.npz'}', group: natural}}")
    path = root / "suite.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_two_tasks_end_to_end_a_missing_task_recorded_and_the_audit(tmp_path: Path) -> None:
    zoo = Zoo("tiny", (tiny_spec("tiny_resnet", "test_resnet"), tiny_spec("tiny_effnet", "test_efficientnet")))
    limit = 10**6  # the suite's: each task is planned to an equal share of what is left when it starts
    fit = ZooFit(zoo, sweep=preset("quick").override(top_k=1, time_limit=limit, **TINY), precision="fp32", workers=1)
    bench = Bench(write_suite(tmp_path, missing=True), fit, audit=True).fit(tmp_path / "out")
    result = BenchResult.read(tmp_path / "out")
    assert result == bench.result_
    done = {task.id: task for task in result.tasks if task.status == "done"}
    assert set(done) == {"colours", "pets"}
    (gone,) = [task for task in result.tasks if task.status == "failed"]
    assert gone.id == "gone" and "gone.npz' does not exist" in gone.reason and "\n" not in gone.reason
    for task in done.values():  # the table is the run's typed result, side by side
        run = RunResult.read(tmp_path / "out" / task.run)
        assert task.classifiers["ensemble"].accuracy == run.ensemble.test.accuracy
        assert task.classifiers["best_single"].nll == run.best_single.test.nll
        assert task.classifiers["linear_probe"].accuracy == run.linear_probe.test.accuracy
        assert set(task.classifiers) == {"ensemble", "best_single", "top_ranked", "linear_probe"}
        assert task.weights == run.ensemble.by_kind and sum(task.weights.kinds.values()) == pytest.approx(1.0)
        # the audit: both models fine-tuned (top_k was 1), each proxy's tau and regret
        assert set(task.audit.fine_tuned) == {"tiny_resnet", "tiny_effnet"}
        assert set(task.audit.proxies) == {"knn", "logme", "size"}
        for proxy in task.audit.proxies.values():
            assert proxy.tau is None or -1 <= proxy.tau <= 1
            assert proxy.regret == max(task.audit.fine_tuned.values()) - task.audit.fine_tuned[proxy.top_pick]
        assert task.audit.scores["size"]["tiny_resnet"] > task.audit.scores["size"]["tiny_effnet"]
    colours, pets = (RunResult.read(tmp_path / "out" / task).plan.limit_seconds for task in ("colours", "pets"))
    assert limit / 3 - 300 < colours < limit / 3 < pets < limit / 2  # pets gets what colours left unused
    assert [g.name for g in result.groups] == ["natural", "structured"] and result.mean.tasks == 2
    mean = result.mean.classifiers["ensemble"].accuracy
    assert mean == pytest.approx(sum(t.classifiers["ensemble"].accuracy for t in done.values()) / 2)
    assert set(result.audit.mean_regret) == {"knn", "logme", "size"}
    assert (tmp_path / "out" / "bench.csv").read_text().startswith("scope,name,group,classifier,accuracy")

    from zoofit.report.bench import bench_html

    page = bench_html(tmp_path / "out")
    from xml.etree import ElementTree

    ElementTree.fromstring(f"<body>{page.split('<body>', 1)[1].split('</body>', 1)[0]}</body>")  # well-formed
    assert page.count('<g id="xtick_1">') == page.count('<g id="ytick_1">') == 2  # real axes: matplotlib's ticks
    assert "<a href='colours/report.html'>colours</a>" in page and page.count("<svg") == 2 and "failed:" in page
    assert "The ensemble's weight by kind" in page and "seeds of one model" in page


def test_every_task_failing_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "suite.yaml").write_text(f"name: none\ntasks:\n  - {{id: a, data: '{tmp_path}/x.npz', group: g}}\n")
    with pytest.raises(ZoofitError, match="every task of suite 'none' failed .*x.npz"):
        Bench(tmp_path / "suite.yaml", ZooFit(Zoo("tiny", (tiny_spec(),)))).fit(tmp_path / "out")


def test_agreement_gives_tau_and_regret() -> None:
    accuracy = {"a": 0.5, "b": 0.6, "c": 0.7}
    same = agreement({"a": 1.0, "b": 2.0, "c": 3.0}, accuracy)
    assert (same.tau, same.top_pick, same.regret) == (pytest.approx(1.0), "c", 0.0)
    reverse = agreement({"a": 3.0, "b": 2.0, "c": 1.0}, accuracy)
    assert (reverse.tau, reverse.top_pick, reverse.regret) == (pytest.approx(-1.0), "a", pytest.approx(0.2))
    assert agreement({"a": 1.0, "b": 1.0, "c": 1.0}, accuracy).tau is None  # a constant proxy orders nothing


def bench_command(suite: Path, zoo: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "zoofit.cli", "bench", "--suite", str(suite), "--zoo", str(zoo), "--out", str(out),
            "--lrs", "0.01,0.03", "--steps", "12", "--batch-size", "8", "--image-size", "32",
            "--shift-images", "0", "--workers", "1", "--precision", "fp32"]  # fmt: skip


def comparable(root: Path) -> dict:
    """bench.json without the wall times (which differ from run to run)."""
    data = json.loads((root / "bench.json").read_text())
    data.pop("wall_seconds")
    for task in data["tasks"]:
        task.pop("wall_seconds")
    return data


def test_sigkill_during_a_bench_then_rerun_gives_the_same_bench_json(tmp_path: Path) -> None:
    suite, zoo = write_suite(tmp_path), write_tiny_zoo_file(tmp_path)
    out = tmp_path / "killed"
    process = subprocess.Popen(bench_command(suite, zoo, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list(out.glob("*/trials/*/result.json")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "pets" / "summary.json").exists(), "the kill should land before the bench's end"

    subprocess.run(bench_command(suite, zoo, out), check=True, capture_output=True)
    subprocess.run(bench_command(suite, zoo, tmp_path / "clean"), check=True, capture_output=True)
    resumed = comparable(out)
    assert resumed == comparable(tmp_path / "clean")
    assert [task["status"] for task in resumed["tasks"]] == ["done", "done"]
    assert RunResult.read(out / "colours").units.reused >= 1  # the killed bench's finished work was kept
    assert (out / "bench.html").is_file() and (out / "colours" / "report.html").is_file()


@pytest.mark.parametrize(
    ("suite", "tasks", "message"),
    [
        ("name: x\ntasks: [\n", None, "is not valid YAML at line"),
        ("name: x\ntasks:\n  - {id: a, group: g}\n", None, "task 1 ('a') needs 'data' (text)"),
        ("name: x\ntasks:\n  - {id: a, data: d, group: g, colour: red}\n", None, "unknown key 'colour'"),
        ("name: x\ntasks:\n  - {id: a, data: d, group: g, protocol: {train_size: many}}\n", None,
         "'train_size' must be a whole number"),
        ("name: x\ntasks:\n  - {id: a, data: d, group: g}\n  - {id: a, data: e, group: g}\n", None,
         "task id 'a' is given twice"),
        ("name: x\ntasks:\n  - {id: a, data: d, group: g}\n", "a,b", "--tasks suite 'x' has no task 'b'"),
    ],
)  # fmt: skip
def test_bad_suites_and_task_ids_are_one_line_errors(tmp_path: Path, suite: str, tasks: str | None, message: str):
    (tmp_path / "suite.yaml").write_text(suite)
    arguments = ["bench", "--suite", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, arguments + (["--tasks", tasks] if tasks else []))
    assert result.exit_code == 2, result.output
    assert message in result.output and result.output.count("\n") == 1 and "Traceback" not in result.output


def test_unknown_suite_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "--suite", "nonesuch", "--out", str(tmp_path / "out")])
    assert (
        result.exit_code == 2 and "--suite 'nonesuch' is neither a built-in suite (offline, vtab-1k)" in result.output
    )


def test_builtin_suites_have_their_form() -> None:
    assert builtin_suites() == ["offline", "vtab-1k"]
    offline = load_suite("offline")
    groups = {g: [t.id for t in offline.tasks if t.group == g] for g in offline.groups}
    assert groups == {
        "natural": ["fashion-mnist", "digits", "lfw-subset"],
        "structured": ["dsprites-location", "dsprites-orientation", "scenes-count", "scenes-distance"],
    }
    for task in offline.tasks:
        check_source(task.data)
    vtab = load_suite("vtab-1k")
    groups = {g: [t.id for t in vtab.tasks if t.group == g] for g in vtab.groups}
    assert groups == {
        "natural": ["caltech101", "cifar100", "dtd", "flowers102", "pets", "sun397", "svhn"],
        "specialized": ["patch_camelyon", "eurosat", "resisc45", "diabetic_retinopathy"],
        "structured": ["clevr_count", "clevr_distance", "dmlab", "kitti_distance", "dsprites_location",
                       "dsprites_orientation", "smallnorb_azimuth", "smallnorb_elevation"],
    }  # fmt: skip
    for task in vtab.tasks:  # the hub copies of CLIP_benchmark; SUN397's copy is named without 'vtab-'
        assert task.data.startswith("wds:hf://clip-benchmark/wds_vtab-" if task.id != "sun397" else "wds:hf://")
        assert task.data.startswith("wds:hf://clip-benchmark/wds_")
        assert resolve(task.data)[0].name == "wds"  # the data sources read it (offline: its form only)
        check_source(task.data)
        assert {"train_size": 1000, "val_fraction": 0.2, "seed": 0}.items() <= task.protocol.items()
    (paper, bit_l, bit_m) = vtab.references
    assert (paper.mean, bit_l.mean, bit_m.mean) == (77.6, 76.3, 73.51) and all(r.source for r in vtab.references)
    assert bit_m.groups == {"natural": 80.77, "specialized": 85.67, "structured": 61.08}


def test_a_suites_relative_data_is_read_beside_it_whatever_the_working_folder(tmp_path: Path, monkeypatch) -> None:
    from tests import hub_data

    arrays, names = hub_data.digits({"train": 20, "test": 10})
    hub_data.hf_dataset_dict(arrays, names).save_to_disk(str(tmp_path / "hf-strings"))
    hub_data.write_shards(tmp_path / "wds-flat", arrays, names, per_shard=10)
    forms = ["hf:hf-strings", "hf:hf-strings?label=label", "wds:wds-flat", "wds:wds-flat/train/{0..1}.tar",
             "hf:org/name", "wds:hf://org/name", "digits"]  # fmt: skip
    tasks = "".join(f"  - {{id: t{i}, data: '{form}', group: g}}\n" for i, form in enumerate(forms))
    (tmp_path / "suite.yaml").write_text(f"name: beside\ntasks:\n{tasks}")
    monkeypatch.chdir(tmp_path.parent)
    suite = load_suite(tmp_path / "suite.yaml")
    assert [task.data for task in suite.tasks] == [
        f"hf:{tmp_path}/hf-strings", f"hf:{tmp_path}/hf-strings?label=label", f"wds:{tmp_path}/wds-flat",
        f"wds:{tmp_path}/wds-flat/train/{{0..1}}.tar", "hf:org/name", "wds:hf://org/name", "digits",
    ]  # fmt: skip
    for task in suite.tasks[:4]:
        assert len(load_source(task.data).train) == 20
