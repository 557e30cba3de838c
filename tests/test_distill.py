"""Distillation: a finished tiny run's ensemble distilled into one student by function matching; the student
predicted, exported (three image sizes), evaluated and found again on a rerun; its one-line refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from tests.conftest import write_image_folder
from tests.test_rank import write_tiny_zoo_file
from tests.test_run import error_line
from zoofit import DataConfig, EnsembleClassifier, RunResult, ZooFit, load_data, preset
from zoofit.cli import app
from zoofit.distillation import matched_view
from zoofit.distillation.views import TeacherClock, matched_batches
from zoofit.ensemble.module import MemberModule
from zoofit.export import export_run
from zoofit.layout import CONFIG, MANIFEST, STUDENT
from zoofit.zoo import Preprocessing

runner = CliRunner()
#: The tiny run's sweep: one learning rate, a few steps; the student distilled at its end (run --distill), priced
#: within the run's time limit.
SWEEP = {"lrs": (0.03,), "steps": (6,), "batch_size": 8, "image_size": 32, "shift_images": 0, "distill": True,
         "distill_steps": 4, "time_limit": 600}  # fmt: skip


@pytest.fixture(scope="module")
def distilled_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run folder, made with run --distill (its config.yaml records the data and the zoo file)."""
    root = tmp_path_factory.mktemp("distill")
    data = DataConfig(str(write_image_folder(root / "images", per_class=8, layout="split")))
    fit = ZooFit(str(write_tiny_zoo_file(root)), sweep=preset("quick").override(**SWEEP), precision="fp32", workers=1,
                 cache_dir=root / "cache")  # fmt: skip
    fit.fit(load_data(data), root / "run", data=data)
    return root / "run"


@pytest.fixture
def run(distilled_run: Path, tmp_path: Path) -> Path:
    """A copy of the distilled run, for a test to change."""
    return Path(shutil.copytree(distilled_run, tmp_path / "run"))


def test_run_distill_stores_a_student_that_predict_export_and_evaluate_take_and_a_rerun_finds(run: Path) -> None:
    summary = RunResult.read(run)
    first = summary.student
    assert summary.plan is not None and not any(cut.startswith("student") for cut in summary.plan.cuts)
    assert first is not None and first.model == "tiny_resnet" and first.steps == 4 and first.unlabelled_images == 0
    assert 0 <= first.agreement <= 1 and 0 < first.teacher_seconds < first.seconds
    assert json.loads((run / STUDENT).read_text())["members"][0]["trial"] == first.trial
    checkpoint = run / "trials" / first.trial / "model.safetensors"
    made = checkpoint.stat().st_mtime_ns

    again = runner.invoke(app, ["distill", "--run", str(run), "--steps", "4"])  # the run's student, stored
    assert again.exit_code == 0, again.output
    assert "nothing to train" in again.output and "distilled student" in again.output
    assert checkpoint.stat().st_mtime_ns == made and RunResult.read(run).student == first

    image = next((images_of(run) / "test" / "cat").glob("*.png"))
    predicted = runner.invoke(app, ["predict", "--run", str(run), "--student", str(image), "--precision", "fp32",
                                    "--output", str(run.parent / "p.json")])  # fmt: skip
    assert predicted.exit_code == 0 and "student tiny_resnet" in predicted.output, predicted.output
    student = EnsembleClassifier.load(run, student=True, precision="fp32")
    row = json.loads((run.parent / "p.json").read_text())[0]
    assert row["probability_1"] == pytest.approx(float(student.predict_proba([image]).max()), abs=1e-6)

    exported = export_run(run, run.parent / "student.onnx", student=True)
    assert exported.members == 1 and len(set(exported.checked_shapes)) == 3 and exported.max_difference <= 1e-4

    evaluated = runner.invoke(app, ["evaluate", "--run", str(run), "--data", str(images_of(run))])
    assert evaluated.exit_code == 0 and "distilled student" in evaluated.output, evaluated.output


def images_of(run: Path) -> Path:
    """The folder of the run's images (its config.yaml's data)."""
    return Path(yaml.safe_load((run / CONFIG).read_text())["data"]["source"])


def test_the_teacher_and_the_student_see_the_same_view_of_images_of_any_size() -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((20, 24, 3), (61, 40, 1), (9, 13, 3))]
    seen: list[torch.Tensor] = []

    def teacher(view: torch.Tensor) -> torch.Tensor:
        seen.append(view.clone())
        return torch.full((len(view), 3), 1 / 3)

    prep = Preprocessing(16, (0.5,) * 3, (0.5,) * 3, "bicubic", 0.875)
    clock = TeacherClock()
    batches = matched_batches(images, teacher, 3, prep, np.random.default_rng(1), torch.Generator().manual_seed(2),
                              torch.device("cpu"), clock=clock)  # fmt: skip
    inputs, targets = next(batches)
    (view,) = seen
    assert view.shape == (3, 16, 16, 3) and 0 <= view.min() and view.max() <= 255
    torch.testing.assert_close(inputs, MemberModule(torch.nn.Identity(), prep, "s").inputs(view))
    assert targets.shape == (3, 3) and clock.seconds > 0
    views = [matched_view(images, 16, torch.Generator().manual_seed(seed), torch.device("cpu")) for seed in (5, 5, 6)]
    assert torch.equal(views[0], views[1]) and not torch.equal(views[0], views[2])  # seeded


def test_unlabelled_images_of_other_sizes_with_labels_are_used_and_the_run_s_test_images_left_out(
    run: Path, tmp_path: Path
) -> None:
    pool = write_image_folder(tmp_path / "pool" / "other", per_class=3, layout="split", size=(40, 30))
    shutil.copytree(images_of(run) / "test", tmp_path / "pool" / "copies")  # the run's test images
    done = runner.invoke(app, ["distill", "--run", str(run), "--steps", "4", "--unlabelled", str(tmp_path / "pool")])
    assert done.exit_code == 0, done.output
    student = RunResult.read(run).student
    assert student is not None and student.unlabelled_images == len(list(pool.rglob("*.png"))) == 21
    (copies,) = student.skipped
    assert copies.count == 6 and copies.reason == "copies of the run's test images"
    assert "skipped 6: 6 copies of the run's test images" in done.output


def test_a_student_that_does_not_fit_the_time_limit_is_refused_in_one_line(run: Path) -> None:
    line = error_line(runner.invoke(app, ["distill", "--run", str(run), "--steps", "100000", "--time-limit", "2m"]))
    assert "--time-limit leaves" in line and "the student (100000 steps of tiny_resnet) needs about" in line
    assert "or fewer steps for the student" in line


def test_run_distill_under_a_time_limit_ends_without_a_student_that_does_not_fit_and_says_so(tmp_path: Path) -> None:
    data = DataConfig(str(write_image_folder(tmp_path / "images", per_class=4, layout="split")))
    sweep = preset("quick").override(**{**SWEEP, "distill_steps": 10**6})
    fit = ZooFit(str(write_tiny_zoo_file(tmp_path)), sweep=sweep, precision="fp32", workers=1)
    result = fit.fit(load_data(data), tmp_path / "run", data=data).result_
    (cut,) = [cut for cut in result.plan.cuts if cut.startswith("student")]
    assert "the student (1000000 steps of tiny_resnet) needs about" in cut and result.student is None
    assert not (tmp_path / "run" / STUDENT).exists() and result.ensemble.members


def test_a_bad_student_or_a_run_folder_without_an_ensemble_is_one_line(run: Path, tmp_path: Path) -> None:
    line = error_line(runner.invoke(app, ["distill", "--run", str(run), "--student", "nope"]))
    assert "--student 'nope' is not a model of the run's zoo (tiny_resnet); 'zoofit zoo list ZOO'" in line
    zoo = write_tiny_zoo_file(tmp_path)  # run --distill checks the student before any image is read
    line = error_line(runner.invoke(app, ["run", "--data", str(images_of(run)), "--zoo", str(zoo), "--out",
                                          str(tmp_path / "new"), "--distill", "--student", "nope"]))  # fmt: skip
    assert "--student 'nope' is not a model" in line and not (tmp_path / "new").exists()
    (run / MANIFEST).unlink()
    line = error_line(runner.invoke(app, ["distill", "--run", str(run)]))
    assert f"run folder '{run}' has no readable {MANIFEST}" in line and "run 'zoofit run' into it again" in line
    assert "holds no finished run" in error_line(runner.invoke(app, ["distill", "--run", str(tmp_path)]))
    assert "distil a student first" in error_line(
        runner.invoke(app, ["predict", "--run", str(tmp_path), "--student", str(next(images_of(run).rglob("*.png")))])
    )
