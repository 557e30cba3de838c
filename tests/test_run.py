"""The method end to end on tiny models: outputs, resume (SIGKILL included), determinism, predict."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import tiny_spec
from tests.test_rank import fixed_size_spec, write_tiny_zoo_file
from zoofit import EnsembleClassifier, SweepConfig, ZooFit, load_data, preset
from zoofit.cli import app
from zoofit.ensemble import average
from zoofit.ensemble import classifier as classifier_module
from zoofit.result import SCHEMA, ProxyResult, RunResult, Units
from zoofit.zoo import Zoo

SWEEP = {"lrs": (0.01, 0.03), "steps": (12,), "batch_size": 8, "image_size": 32}


def quick(**changes) -> SweepConfig:
    """The quick preset with ``changes``."""
    return preset("quick").override(**changes)


@pytest.fixture
def splits(make_image_folder):
    return load_data(str(make_image_folder(per_class=8, layout="split")))


def test_run_writes_outputs_and_a_rerun_reuses_everything(splits, tiny_zoo, tmp_path: Path) -> None:
    first = ZooFit(tiny_zoo, precision="fp32", sweep=quick(seed_baseline=2, **SWEEP)).fit(splits, tmp_path)
    result = RunResult.read(tmp_path)
    assert result == first.result_  # summary.json holds the whole result, and reads back as it was written
    assert set(result.stage_seconds) == {"rank", "linear_probe", "fine_tune", "pool", "ensemble_evaluate", "robustness"}
    assert result.linear_probe.model == first.ranker_.ranking_[0].model and 0 <= result.linear_probe.test.accuracy <= 1
    assert result.wall_seconds >= sum(result.stage_seconds.values()) - 0.1
    assert 0 <= result.best_single.test.accuracy <= 1 and len(result.best_single.trials) == 1
    assert result.top_ranked.model == first.ranker_.ranking_[0].model
    assert result.proxy == ProxyResult("knn", "kNN accuracy", {"k": 1, "metric": "cosine"})
    assert sum(m.weight for m in result.ensemble.members) == pytest.approx(1.0)
    assert result.units == Units(computed=2 + 4 + 1 + 1, reused=0)  # 2 rankings, 2 models x 2 lrs, 1 seed, 1 head
    assert len(result.seed_baseline.trials) == 2
    with (tmp_path / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and {"kind", "model", "lr", "seed", "val_accuracy", "test_nll", "seconds"} <= rows[0].keys()
    assert (tmp_path / "ranking.json").is_file()

    second = ZooFit(tiny_zoo, precision="fp32", sweep=quick(seed_baseline=2, **SWEEP)).fit(splits, tmp_path)
    assert second.result_.units == Units(computed=0, reused=8)
    assert second.result_.ensemble.test == result.ensemble.test


def test_seed_replicas_are_candidates_the_seed_baseline_shares_and_a_rerun_trains_none(
    splits, tiny_zoo, tmp_path
) -> None:
    sweep = quick(seed_replicas=1, seed_baseline=3, **{**SWEEP, "lrs": (0.01,)})
    first = ZooFit(tiny_zoo, precision="fp32", sweep=sweep).fit(splits, tmp_path)
    result = RunResult.read(tmp_path)
    [replica] = result.seed_replicas
    best = next(t for t in first.trials_ if t.key == result.best_single.trials[0])
    assert (replica.model, replica.seed) == (best.model, best.config.seed + 1)
    baseline = result.seed_baseline.trials
    assert baseline[:2] == [best.key, replica.trial] and len(baseline) == 3  # the baseline's second seed: the replica
    assert result.units == Units(computed=2 + 2 + 2 + 1, reused=0)  # 2 rankings, 2 trials, 2 other seeds, 1 head
    safeguard = result.ensemble.safeguard  # on by default: its decision is in summary.json
    assert safeguard.low <= safeguard.high and safeguard.best in {c.key for c in first.candidates_}
    assert replica.trial in {c.key for c in first.candidates_}
    assert safeguard.fell_back == (len(result.ensemble.members) == 1 and safeguard.gain <= 0)
    chosen = {m.trial: m.weight for m in result.ensemble.members}
    assert replica.weight == chosen.get(replica.trial, 0.0)
    assert all(m.seed == m.settings.seed for m in result.ensemble.members)
    with (tmp_path / "trials.csv").open() as handle:
        rows = {row["trial"]: row for row in csv.DictReader(handle)}
    assert len(rows) == 5 and rows[replica.trial]["candidate"] == "True" and rows[replica.trial]["seed"] == "1"
    assert rows[baseline[2]]["candidate"] == "False" and rows[baseline[2]]["seed"] == "2"  # the baseline's alone

    second = ZooFit(tiny_zoo, precision="fp32", sweep=sweep).fit(splits, tmp_path)
    assert second.result_.units == Units(computed=0, reused=7)
    assert second.result_.seed_replicas == result.seed_replicas


def test_a_model_that_takes_only_its_own_size_runs_at_it_where_the_preset_chose_the_size(splits, tmp_path) -> None:
    zoo = Zoo("mixed", (tiny_spec(), fixed_size_spec()))
    sweep = {"top_k": 2, "lrs": (0.01,), "steps": (2,), "batch_size": 4}
    fit = ZooFit(zoo, sweep=quick(**sweep), precision="fp32", workers=1).fit(splits, tmp_path)  # quick: 112 px
    assert {trial.model: trial.config.image_size for trial in fit.trials_} == {"tiny_resnet": 112, "fixed_vit": 160}


def test_budget_limits_the_ensemble(splits, tiny_zoo, tmp_path: Path) -> None:
    fit = ZooFit(tiny_zoo, precision="fp32", sweep=quick(max_members=1, **SWEEP)).fit(splits, tmp_path)
    assert len(fit.result_.ensemble.members) == 1


def test_predict_round_trip_matches_the_runs_test_predictions(splits, tiny_zoo, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(classifier_module, "DECODE_CHUNK", 4)  # several chunks, the last one short
    fit = ZooFit(tiny_zoo, precision="fp32", sweep=quick(**SWEEP)).fit(splits, tmp_path)
    expected = average([t.test_probs for t in fit.candidates_], fit.selection_.counts)
    classifier = EnsembleClassifier.load(tmp_path, precision="fp32")
    images = list(splits.test.images)  # decoded arrays, one at a time through the predict path
    np.testing.assert_allclose(classifier.predict_proba(images), expected, atol=1e-5)
    assert classifier.predict(images[:2]) == [splits.class_names[i] for i in expected[:2].argmax(1)]


# ---------------------------------------------------------------- the CLI, resume and determinism

runner = CliRunner()


def run_command(data: Path, zoo: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "zoofit.cli", "run", "--data", str(data), "--zoo", str(zoo), "--out", str(out),
            "--lrs", "0.003,0.01,0.03", "--steps", "40", "--batch-size", "8", "--image-size", "32"]  # fmt: skip


def test_sigkill_then_rerun_finishes_without_redoing_work(make_image_folder, tmp_path: Path) -> None:
    data, zoo = make_image_folder(per_class=8, layout="split"), write_tiny_zoo_file(tmp_path)
    out = tmp_path / "killed"
    process = subprocess.Popen(run_command(data, zoo, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not list(out.glob("trials/*/result.json")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished_before = len(list(out.glob("trials/*/result.json")))
    assert 1 <= finished_before < 3, "the kill should land between the first and the last trial"

    subprocess.run(run_command(data, zoo, out), check=True, capture_output=True)
    resumed = RunResult.read(out)
    reused_trials = resumed.units.reused - 1  # the ranking's features were cached by the killed run
    assert reused_trials >= finished_before and reused_trials + resumed.units.computed == 3 + 1  # the 3 trials, a head
    assert resumed.units.computed >= 1

    # Determinism: an uninterrupted run with the same command gives the same trials and ensemble.
    subprocess.run(run_command(data, zoo, tmp_path / "clean"), check=True, capture_output=True)
    clean = RunResult.read(tmp_path / "clean")
    assert (resumed.ensemble, resumed.best_single) == (clean.ensemble, clean.best_single)
    assert (out / "trials.csv").read_text().splitlines()[1:] != []
    strip = lambda text: [line.rsplit(",", 2)[0] for line in text.splitlines()]  # noqa: E731 (seconds differ)
    assert strip((out / "trials.csv").read_text()) == strip((tmp_path / "clean" / "trials.csv").read_text())


def test_cli_run_and_predict(make_image_folder, tmp_path: Path) -> None:
    data, zoo = make_image_folder(per_class=6, layout="split"), write_tiny_zoo_file(tmp_path)
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "--data", str(data), "--zoo", str(zoo), "--out", str(out), "--lrs", "0.01",
                                 "--steps", "5", "--batch-size", "8", "--image-size", "32"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "greedy ensemble" in result.output and "best single" in result.output
    assert "safeguard: validation NLL gain over the single best, out of bag" in result.output  # one line
    assert (out / "report.html").is_file()
    image = next((data / "test" / "cat").iterdir())
    result = runner.invoke(app, ["predict", "--run", str(out), str(image), "--output", str(tmp_path / "p.json")])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "p.json").read_text())
    assert rows[0]["image"] == str(image) and rows[0]["class_1"] in ("cat", "dog", "fox")
    assert sum(rows[0][f"probability_{r}"] for r in (1, 2, 3)) == pytest.approx(1.0, abs=1e-4)
    folder = data / "test"  # a folder: every image beneath it, sorted, outside hidden folders
    (folder / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (8, 8)).save(folder / ".ipynb_checkpoints" / "copy.png")
    result = runner.invoke(app, ["predict", "--run", str(out), str(folder), "--output", str(tmp_path / "all.csv")])
    assert result.exit_code == 0, result.output
    with (tmp_path / "all.csv").open() as handle:
        listed = [row["image"] for row in csv.DictReader(handle)]
    assert listed == [str(path) for path in sorted(folder.glob("[!.]*/*.png"))] and len(listed) == 6


def error_line(result) -> str:
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and "Traceback" not in result.output and len(errors) == 1, result.output
    return errors[0]


def test_predict_bad_inputs(make_image_folder, tmp_path: Path) -> None:
    image = next(make_image_folder(per_class=1).rglob("*.png"))
    assert "does not exist" in error_line(runner.invoke(app, ["predict", "--run", str(tmp_path / "no"), str(image)]))
    assert "is a file" in error_line(runner.invoke(app, ["predict", "--run", str(image), str(image)]))
    (tmp_path / "unfinished").mkdir()
    message = error_line(runner.invoke(app, ["predict", "--run", str(tmp_path / "unfinished"), str(image)]))
    assert "has not finished" in message
    message = error_line(runner.invoke(app, ["predict", "--run", str(tmp_path / "no"), str(tmp_path / "gone.png")]))
    assert "gone.png" in message and "does not exist" in message
    (tmp_path / "empty").mkdir()
    message = error_line(
        runner.invoke(app, ["predict", "--run", str(tmp_path / "unfinished"), str(tmp_path / "empty")])
    )
    assert "holds no images" in message and "empty" in message


def test_predict_refuses_bad_input_to_a_finished_run(splits, tiny_zoo, tmp_path: Path) -> None:
    run = tmp_path / "run"
    ZooFit(tiny_zoo, precision="fp32", sweep=quick(**{**SWEEP, "lrs": (0.01,)})).fit(splits, run)
    broken = tmp_path / "broken.jpg"
    Image.new("RGB", (32, 32)).save(broken)
    broken.write_bytes(broken.read_bytes()[:40])
    assert "could be read" in error_line(runner.invoke(app, ["predict", "--run", str(run), str(broken)]))
    image = tmp_path / "fine.png"
    Image.new("RGB", (32, 32)).save(image)
    result = runner.invoke(
        app, ["predict", "--run", str(run), str(broken), str(image), "--output", str(tmp_path / "p.json")]
    )
    assert result.exit_code == 0 and "skipping unreadable image" in result.output  # a warning naming it
    assert "1 of 2 images skipped" in result.output
    assert [row["image"] for row in json.loads((tmp_path / "p.json").read_text())] == [str(image)]

    (tmp_path / "taken.csv").mkdir()  # refused before predicting, so that no prediction is lost
    for extra, message in [
        (["--output", str(tmp_path / "taken.csv")], "is a folder"),
        (["--classes", "0"], "--classes must be at least 1"),
    ]:
        assert message in error_line(runner.invoke(app, ["predict", "--run", str(run), str(image), *extra]))

    manifest = json.loads((run / "ensemble.json").read_text())
    member = manifest["members"][0]
    damaged = [
        "{", "[]", {**manifest, "members": []}, {**manifest, "class_names": [*manifest["class_names"], "extra"]},
        {**manifest, "members": [{k: v for k, v in member.items() if k != "preprocessing"}]},
        {**manifest, "members": [{**member, "checkpoint": "ensemble.json"}]},
    ]  # fmt: skip
    for content in damaged:
        (run / "ensemble.json").write_text(content if isinstance(content, str) else json.dumps(content))
        assert "is damaged" in error_line(runner.invoke(app, ["predict", "--run", str(run), str(image)]))


@pytest.mark.parametrize(
    ("extra", "layout", "message"),
    [
        ([], "flat", "no test split"),
        (["--preset", "huge"], "split", "--preset must be one of quick, paper, not 'huge'"),
        (["--lrs", "fast"], "split", "comma-separated list"),
        (["--lrs", ""], "split", "--lrs '' is not a comma-separated list"),
        (["--max-gflops", "0.000001"], "split", "--max-gflops"),
        (["--workers", "0"], "split", "--workers must be at least 1"),
        (["--freeze-stride", "8,-1"], "split", "--freeze-stride must be whole numbers of at least 0"),
        (["--freeze-stride", "8,all"], "split", "--freeze-stride '8,all' is not a comma-separated list"),
        (["--shift-severity", "6"], "split", "--shift-severity must be 1 to 5"),
        (["--shift-images", "-1"], "split", "--shift-images must be at least 0"),
        (["--selection", "lasso"], "split", "--selection must be one of greedy, bagged, not 'lasso'"),
        (["--image-size", "0"], "split", "--image-size must be at least 16 pixels, or own (None in Python)"),
        (["--image-size", "big"], "split", "--image-size 'big' is neither pixels nor own"),
    ],
)
def test_run_bad_inputs(make_image_folder, tmp_path: Path, extra, layout, message) -> None:
    data, zoo = make_image_folder(per_class=4, layout=layout), write_tiny_zoo_file(tmp_path)
    arguments = ["run", "--data", str(data), "--zoo", str(zoo), "--out", str(tmp_path / "o"), "--steps", "2",
                 "--lrs", "0.01", "--image-size", "32", *extra]  # fmt: skip
    assert message in error_line(runner.invoke(app, arguments))


def test_test_fraction_holds_out_a_test_split(make_image_folder) -> None:
    splits = load_data(str(make_image_folder(per_class=10)), test_fraction=0.2)
    assert list(splits.test.class_counts()) == [2, 2, 2]
    assert len(splits.train) + len(splits.val) == 24


def children_of(pid: int) -> list[str]:
    """Child pids of every thread of ``pid`` (a worker is spawned from the thread that drives it)."""
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children += task.read_text().split()
        except OSError:  # the thread ended meanwhile
            pass
    return children


def test_a_killed_worker_is_a_one_line_error(make_image_folder, tmp_path: Path) -> None:
    data, zoo = make_image_folder(per_class=8, layout="split"), write_tiny_zoo_file(tmp_path)
    command = [*run_command(data, zoo, tmp_path / "out"), "--steps", "400", "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(workers := children_of(process.pid)) < 2:  # 1 worker + tracker
        time.sleep(0.1)
    time.sleep(3)  # let the workers start training
    os.kill(int(max(workers, key=int)), signal.SIGKILL)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2 and "a trial worker process died" in stderr and "Traceback" not in stderr, stderr


def test_report_html_shows_the_run_and_is_rebuilt_by_zoofit_report(splits, tiny_zoo, tmp_path: Path) -> None:
    from xml.etree import ElementTree

    from zoofit.layout import REPORT

    ZooFit(tiny_zoo, precision="fp32", sweep=quick(shift_images=4, **SWEEP)).fit(splits, tmp_path)
    result = runner.invoke(app, ["report", "--run", str(tmp_path)])
    assert result.exit_code == 0, result.output
    page = (tmp_path / REPORT).read_text()
    body = page.split("<body>", 1)[1].split("</body>", 1)[0]
    ElementTree.fromstring(f"<body>{body}</body>")  # well-formed: every tag closed, every text escaped
    for expected in ("tiny_resnet", "tiny_effnet", "Robustness", "gaussian_noise", "kNN accuracy", "<svg",
                     "best of knn-top model", "logistic regression, frozen features"):  # fmt: skip
        assert expected in page
    message = error_line(runner.invoke(app, ["report", "--run", str(tmp_path / "nothing")]))
    assert "holds no finished run" in message

    (tmp_path / REPORT).unlink()
    (tmp_path / REPORT).mkdir()  # a path the machine refuses to write: one line, no traceback
    message = error_line(runner.invoke(app, ["report", "--run", str(tmp_path)]))
    assert f"{REPORT}': Is a directory; check the path" in message  # the file, not its temporary twin

    summary = json.loads((tmp_path / "summary.json").read_text())
    del summary["ensemble"]["members"]  # as if written by another version
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert "another zoofit version" in error_line(runner.invoke(app, ["report", "--run", str(tmp_path)]))
    (tmp_path / "summary.json").write_text(json.dumps({**summary, "schema": 1}))
    message = error_line(runner.invoke(app, ["report", "--run", str(tmp_path)]))
    assert f"another zoofit version or was altered (its schema is 1, this version reads {SCHEMA})" in message
