"""The kinds of ensemble member: the registry and its option, a linear head on frozen features as any member
(run, predict, export, evaluate, refit, resume), a kind that fails, and the ensemble's weight by kind."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from tests.conftest import tiny_spec, write_image_folder
from tests.test_run import error_line
from zoofit import ZooFit, load_data, preset
from zoofit.cli import app
from zoofit.ensemble import EnsembleClassifier
from zoofit.errors import ParameterError, ZoofitError
from zoofit.export import export_run
from zoofit.layout import MANIFEST, TRIALS
from zoofit.members import KINDS, member_label
from zoofit.rank.probe import fit_head
from zoofit.report import html_report, run_tables
from zoofit.result import Member, RunResult, WeightByKind
from zoofit.robustness import evaluate_run
from zoofit.store import RunStore
from zoofit.sweep_config import TrialConfig
from zoofit.zoo import Zoo

#: One fine-tuned trial per model (the baselines need one), a linear head on each ranked model's features.
SWEEP = {"top_k": 1, "lrs": (0.01,), "steps": (4,), "batch_size": 8, "image_size": 32, "shift_images": 0,
         "linear_heads": 2}  # fmt: skip


@pytest.mark.parametrize("classes, absent", [(4, 3), (2, None)])
def test_a_fitted_head_is_scikit_learns_logistic_regression_on_raw_features(classes: int, absent: int | None) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(3.0, 2.0, (60, 7)) * rng.uniform(0.1, 10, 7)  # far from standardised
    labels = rng.integers(0, 3 if absent else classes, 60)
    head = fit_head(features, labels, 0.3, classes)
    scaler = StandardScaler().fit(features)
    expected = LogisticRegression(C=0.3, max_iter=2000).fit(scaler.transform(features), labels)
    probs = head.probabilities(features)
    seen = expected.classes_
    np.testing.assert_allclose(probs[:, seen], expected.predict_proba(scaler.transform(features)), atol=1e-6)
    if absent is not None:  # a class without training images: probability zero
        assert probs[:, absent].max() < 1e-12


def test_the_kinds_are_a_registry_and_members_names_them(tmp_path: Path) -> None:
    assert KINDS.names()[:3] == ["trial", "soup", "linear"] and all(KINDS.about(k).help for k in KINDS)
    zoo = Zoo("tiny", (tiny_spec(),))
    with pytest.raises(ParameterError, match="members must be one of trial, soup, linear, not 'heads'"):
        ZooFit(zoo, sweep=preset("quick").override(members=("trial", "heads"))).check()
    with pytest.raises(ParameterError, match="members must name at least one kind"):
        preset("quick").override(members=())
    data = write_image_folder(tmp_path / "images", per_class=2, layout="split")
    for option, message in ((["--members", "trial,heads"], "--members must be one of trial, soup, linear, not 'heads'"),
                            (["--linear-heads", "0"], "--linear-heads must be at least 1, not 0")):  # fmt: skip
        ran = CliRunner().invoke(app, ["run", "--data", str(data), "--out", str(tmp_path / "out"), *option])
        assert error_line(ran) == f"error: {message}" and not (tmp_path / "out").exists()


def test_the_weight_by_kind_counts_seeds_of_one_model_from_model_and_seed() -> None:
    trial = TrialConfig(0.01, 10, 8, 32)
    members = [
        Member("a", "m1", 2.0, trial), Member("b", "m1", 1.0, TrialConfig(0.01, 10, 8, 32, seed=1)),
        Member("c", "m2", 1.0, TrialConfig(0.03, 10, 8, 32, freeze_stride=8)),
        Member("d", "m2", 4.0, TrialConfig(0.0, 0, 0, 32), kind="linear", strength=0.1),
    ]  # fmt: skip
    weights = WeightByKind.of(members)
    assert weights.kinds == {"trial": 0.5, "linear": 0.5} and weights.models == {"m1": 0.375, "m2": 0.625}
    assert weights.depths == {"freeze=0": 0.375, "freeze=8": 0.125, "frozen": 0.5} and weights.seeds == 0.375
    assert member_label(members[3]) == "m2 (linear head, C=0.1, frozen)"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Into one folder: trials and linear heads whose fitting fails; then a pool of linear heads alone, refit
    (the trial reused); then the same again (everything reused)."""
    root = tmp_path_factory.mktemp("members")
    splits = load_data(str(write_image_folder(root / "images", per_class=8, layout="split")))
    zoo = Zoo("tiny", (tiny_spec("tiny_resnet", "test_resnet"), tiny_spec("tiny_effnet", "test_efficientnet")))

    def fit(**settings: object) -> RunResult:
        sweep = preset("quick").override(**SWEEP, **settings)
        ZooFit(zoo, sweep=sweep, precision="fp32", workers=1, cache_dir=root / "cache").fit(splits, root / "run")
        return RunResult.read(root / "run")

    def singular(*args: object, **kwargs: object) -> None:
        raise np.linalg.LinAlgError("singular matrix")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("zoofit.finetune.head.fit_probe", singular)
        failed = fit(members=("trial", "linear"))
        with (root / "run" / TRIALS).open() as handle:
            rows = list(csv.DictReader(handle))
    heads = fit(members=("linear",), refit=True)
    return {"root": root, "splits": splits, "failed": failed, "rows": rows, "heads": heads,
            "again": fit(members=("linear",), refit=True)}  # fmt: skip


def test_a_kind_that_fails_is_recorded_with_its_reason_and_the_run_goes_on(runs) -> None:
    failed: RunResult = runs["failed"]
    assert sorted((f.kind, f.model) for f in failed.failed_trials) == [
        ("linear", "tiny_effnet"),
        ("linear", "tiny_resnet"),
    ]
    assert all("LinAlgError: singular matrix" in f.reason for f in failed.failed_trials)
    assert [m.kind for m in failed.ensemble.members] == ["trial"] and failed.ensemble.by_kind.kinds == {"trial": 1.0}
    assert [row["failed"] for row in runs["rows"] if row["kind"] == "linear"] == [
        f.reason for f in failed.failed_trials
    ]


def test_linear_heads_are_members_refit_and_rebuilt_as_the_regression_they_are(runs) -> None:
    root, result = runs["root"], runs["heads"]
    assert not result.failed_trials and {m.kind for m in result.ensemble.members} == {"linear"}
    assert all(m.settings.refit and m.strength is not None for m in result.ensemble.members)
    assert result.before_refit is not None and {m.kind for m in result.before_refit.members} == {"linear"}
    assert result.ensemble.by_kind == WeightByKind({"linear": 1.0}, result.ensemble.by_kind.models, {"frozen": 1.0}, 0)
    entries = json.loads((root / "run" / MANIFEST).read_text())["members"]
    classifier = EnsembleClassifier.load(root / "run", precision="fp32")
    images = list(runs["splits"].test.images)
    store = RunStore(root / "run")
    for entry, probs in zip(entries, classifier.member_probabilities(images), strict=True):
        stored = store.load_trial(entry["trial"])[1]["test_probs"].numpy()  # the regression's, on cached features
        np.testing.assert_allclose(probs, stored, atol=1e-5)
    exported = export_run(root / "run", root / "heads.pt2", format="pt2", image_shape=(16, 16))
    assert exported.max_difference <= 1e-4
    shifted = evaluate_run(root / "run", str(root / "images"), precision="fp32")
    assert shifted.scores["ensemble"].accuracy == pytest.approx(result.ensemble.test.accuracy)


def test_the_weight_by_kind_is_in_the_console_and_the_report(runs) -> None:
    console = Console(record=True, width=200)
    console.print(run_tables(runs["heads"]))
    text = console.export_text()
    assert "The ensemble's weight by kind" in text and "linear" in text and "frozen" in text
    assert "linear head, C=" in text  # the members' labels, as their kind words them
    page = html_report(runs["root"] / "run")
    assert "The ensemble's weight by kind" in page and "<td>upstream model</td>" in page


def test_a_rerun_reuses_every_head_trial_and_refit(runs) -> None:
    again: RunResult = runs["again"]
    assert again.units.computed == 0 and again.ensemble == runs["heads"].ensemble


def test_a_pool_without_candidates_is_one_line_and_keeps_what_is_done(runs) -> None:
    root = runs["root"]
    zoo = Zoo("tiny", (tiny_spec("tiny_resnet", "test_resnet"), tiny_spec("tiny_effnet", "test_efficientnet")))
    sweep = preset("quick").override(**SWEEP, members=("soup",))  # one trial per model: nothing to average
    fit = ZooFit(zoo, sweep=sweep, precision="fp32", workers=1, cache_dir=root / "cache")
    with pytest.raises(ZoofitError, match=r"^the pool of soup holds no candidate; add 'trial' to members$"):
        fit.fit(runs["splits"], root / "run")
    assert RunResult.read(root / "run") == runs["again"]  # the finished run's result is kept
