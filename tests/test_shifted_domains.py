"""Real distribution shift: ``zoofit run --shift-data NAME=DATA`` and ``zoofit evaluate --run DIR --data DATA``
score a run's classifiers on labelled images of other domains, their classes matched to the run's by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import write_image_folder
from tests.test_rank import write_tiny_zoo_file
from tests.test_run import error_line
from zoofit.cli import app
from zoofit.data import load_domain, parse_domains
from zoofit.ensemble import EnsembleClassifier
from zoofit.errors import ParameterError, ZoofitError
from zoofit.result import RunResult

runner = CliRunner()


def domain_folder(root: Path, classes=("cat", "dog"), size=(30, 26)) -> Path:
    """Images of some of the run's classes, drawn afresh at another size: a flat folder (no splits, all of it)."""
    return write_image_folder(root, per_class=3, classes=classes, size=size)


def test_a_domain_may_hold_a_subset_of_the_classes_in_the_runs_order(tmp_path: Path) -> None:
    images = load_domain(str(domain_folder(tmp_path / "two", classes=("dog", "fox"))), ["cat", "dog", "fox"]).images
    assert images.class_names == ("cat", "dog", "fox") and len(images) == 6
    assert np.array_equal(np.bincount(images.labels, minlength=3), [0, 3, 3])


def test_a_class_the_run_does_not_know_is_named(tmp_path: Path) -> None:
    folder = domain_folder(tmp_path / "wild")
    shutil.copytree(folder / "dog", folder / "wolf")
    with pytest.raises(ZoofitError, match="has classes the run does not know: wolf; its classes must be among"):
        load_domain(str(folder), ["cat", "dog", "fox"])


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["sketch"], "shift_data 'sketch' is not NAME=DATA"),
        (["=x"], "shift_data '=x' is not NAME=DATA"),
        (["a=fashion-mnist", "a=fashion-mnist"], "names the domain 'a' twice"),
        (["a=/nowhere"], "data path '/nowhere' does not exist"),
    ],
)
def test_bad_shift_data_is_one_line(values: list[str], message: str) -> None:
    with pytest.raises(ZoofitError, match=message):
        parse_domains(values)
    if values == ["sketch"]:
        with pytest.raises(ParameterError):
            parse_domains(values)


def test_cli_run_scores_each_domain_beside_the_corruptions(make_image_folder, tmp_path: Path) -> None:
    data, zoo = make_image_folder(per_class=6, layout="split"), write_tiny_zoo_file(tmp_path)
    sketch, photo = domain_folder(tmp_path / "sketch"), domain_folder(tmp_path / "photo", ("cat", "dog", "fox"))
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "--data", str(data), "--zoo", str(zoo), "--out", str(out), "--lrs", "0.01",
                                 "--steps", "5", "--batch-size", "8", "--image-size", "32", "--seed-baseline", "2",
                                 "--shift-images", "4", "--shift-data", f"sketch={sketch}",
                                 "--shift-data", f"photo={photo}"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Shifted domains" in result.output and "seeds of best single" in result.output
    summary = RunResult.read(out)
    assert summary.robustness is not None and set(summary.domains) == {"sketch", "photo"}
    sketch_result = summary.domains["sketch"]
    assert sketch_result.data == str(sketch) and sketch_result.images == 6 and sketch_result.classes == ["cat", "dog"]
    assert set(sketch_result.scores) == {"ensemble", "best_single", "seed_ensemble"}
    assert sketch_result.per_class_accuracy["ensemble"]["fox"] is None
    assert 0 <= sketch_result.scores["ensemble"].accuracy <= 1
    html = (out / "report.html").read_text()
    assert "Shifted domains" in html and str(photo) in html

    no_equals = runner.invoke(app, ["run", "--data", str(data), "--zoo", str(zoo), "--shift-data", "sketch"])
    assert "--shift-data 'sketch' is not NAME=DATA" in error_line(no_equals)


def test_evaluate_a_finished_run_and_again_from_its_stored_predictions(run: Path, tmp_path: Path, monkeypatch) -> None:
    domain = domain_folder(tmp_path / "domain", classes=("cat", "fox"))
    output = tmp_path / "domain.json"
    first = runner.invoke(app, ["evaluate", "--run", str(run), "--data", str(domain), "--output", str(output),
                                "--precision", "fp32"])  # fmt: skip
    assert first.exit_code == 0, first.output
    assert "Accuracy per class" in first.output and "greedy ensemble" in first.output
    written = json.loads(output.read_text())
    assert written["images"] == 6 and written["classes"] == ["cat", "fox"]
    assert set(written["scores"]) == {"ensemble", "best_single"}
    assert set(written["scores"]["ensemble"]) == {"accuracy", "nll", "ece"}
    assert written["per_class_accuracy"]["best_single"]["dog"] is None

    def rebuilt(*args, **kwargs):
        raise AssertionError("a model was rebuilt: the predictions were not reused")

    monkeypatch.setattr(EnsembleClassifier, "from_entries", rebuilt)
    again = runner.invoke(app, ["evaluate", "--run", str(run), "--data", str(domain), "--output", str(output),
                                "--precision", "fp32"])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert json.loads(output.read_text()) == written


def test_evaluate_on_a_folder_that_is_no_finished_run_is_one_line(make_image_folder, tmp_path: Path) -> None:
    data = str(make_image_folder())
    message = error_line(runner.invoke(app, ["evaluate", "--run", str(tmp_path), "--data", data]))
    assert f"run folder '{tmp_path}' holds no finished run" in message
    message = error_line(runner.invoke(app, ["evaluate", "--run", str(tmp_path), "--data", data, "--output", "x.csv"]))
    assert "must end in .json" in message


def test_a_domains_unreadable_image_is_counted(tmp_path: Path) -> None:
    folder = domain_folder(tmp_path / "two")
    broken = sorted((folder / "dog").glob("*.png"))[0]
    broken.write_bytes(broken.read_bytes()[:40])  # cut short
    domain = load_domain(str(folder), ["cat", "dog"])
    assert len(domain.images) == 5 and domain.data == str(folder)
    (skipped,) = domain.skipped
    assert (skipped.count, skipped.reason, skipped.examples) == (1, "unreadable images", (str(broken),))
