"""Ranking proxies: the registry, LogME against its own formula and on what it should see, and ranking by each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.test_rank import write_tiny_zoo_file
from zoofit import RankConfig, Ranker, ZooFit, load_data, preset
from zoofit.cli import app
from zoofit.errors import ParameterError
from zoofit.rank import PROXIES, loo_knn_accuracy, make_proxy
from zoofit.rank.logme import logme, maximise_evidence
from zoofit.report import html_report
from zoofit.result import ProxyResult
from zoofit.zoo import Zoo

rng = np.random.default_rng(0)
LABELS = rng.integers(0, 4, 200)
SEPARATED = np.eye(4)[LABELS] @ rng.normal(size=(4, 32)) + 0.7 * rng.normal(size=(200, 32))  # class means + noise
RANDOM = rng.normal(size=(200, 32))


def direct_log_evidence(f: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """The paper's log evidence of target ``y`` at ``alpha``, ``beta``, straight from its formula."""
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.solve(a, f.T @ y)
    return (
        n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
        - beta / 2 * np.sum((f @ m - y) ** 2) - alpha / 2 * m @ m - np.linalg.slogdet(a)[1] / 2
    )  # fmt: skip


def test_logme_prefers_features_that_separate_the_classes() -> None:
    assert logme(SEPARATED, LABELS) > logme(RANDOM, LABELS) + 0.5
    assert logme(SEPARATED, LABELS) > logme(SEPARATED, rng.permutation(LABELS)) + 0.5  # the same, labels shuffled
    noisier = SEPARATED + 2.0 * rng.normal(size=SEPARATED.shape)
    assert logme(SEPARATED, LABELS) > logme(noisier, LABELS) > logme(RANDOM, LABELS)


def test_logme_is_the_maximum_of_the_papers_log_evidence_per_class() -> None:
    evidence = maximise_evidence(SEPARATED, LABELS)
    targets = np.eye(4)[LABELS]
    for c in range(4):
        alpha, beta = evidence.alpha[c], evidence.beta[c]
        at_maximum = direct_log_evidence(SEPARATED, targets[:, c], alpha, beta)
        assert evidence.log_evidence[c] == pytest.approx(at_maximum, rel=1e-9)
        for moved in ((alpha * 1.05, beta), (alpha / 1.05, beta), (alpha, beta * 1.05), (alpha, beta / 1.05)):
            assert direct_log_evidence(SEPARATED, targets[:, c], *moved) < at_maximum
    assert logme(SEPARATED, LABELS) == pytest.approx(evidence.log_evidence.mean() / len(LABELS))


def test_logme_does_not_change_with_what_a_linear_model_cannot_see() -> None:
    score = logme(SEPARATED, LABELS)
    rotation = np.linalg.qr(rng.normal(size=(32, 32)))[0]
    order = rng.permutation(len(LABELS))
    renamed = np.array([3, 0, 2, 1])[LABELS]
    padded = np.hstack([SEPARATED, np.zeros((200, 300))])  # D > N: the other Gram matrix, the same evidence
    for features, labels in [
        (SEPARATED @ rotation, LABELS),  # the weights' prior is isotropic
        (SEPARATED * 37.0, LABELS),  # alpha absorbs any scale
        (SEPARATED[order], LABELS[order]),  # images in another order
        (SEPARATED, renamed),  # classes by other numbers
        (padded, LABELS),  # dimensions that are always zero
    ]:
        assert logme(features, labels) == pytest.approx(score, rel=1e-6)


@pytest.mark.parametrize("images", [10, 40])
def test_logme_stays_finite_where_the_features_explain_nothing_or_everything(images: int) -> None:
    # 40 images in 32 dimensions leave noise to some classes; 10 images are fitted exactly (beta -> infinity),
    # and a constant class target has no weight worth its cost (alpha -> infinity).
    features, labels = RANDOM[:images], LABELS[:images]
    evidence = maximise_evidence(features, labels)
    assert np.isfinite(evidence.log_evidence).all() and evidence.iterations < 1000
    assert np.isfinite(logme(np.zeros((20, 8)) + 1.0, LABELS[:20]))


def test_the_registry_builds_each_proxy_with_its_own_settings() -> None:
    assert list(PROXIES) == ["knn", "logme"]  # the first, the paper's, is the default
    knn = make_proxy("knn", k=3, metric="euclidean")
    assert knn.score(SEPARATED, LABELS) == loo_knn_accuracy(SEPARATED, LABELS, k=3, metric="euclidean")
    assert make_proxy("logme").score(SEPARATED, LABELS) == logme(SEPARATED, LABELS)
    assert (knn.label, PROXIES["logme"].label) == ("kNN accuracy", "LogME")


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("ridge", {}, "proxy must be one of knn, logme, not 'ridge'"),
        ("knn", {"k": 0}, "k must be at least 1, not 0"),
        ("knn", {"metric": "l1"}, "metric must be one of cosine, euclidean, not 'l1'"),
        ("logme", {"k": 3}, "k is not a setting of the logme proxy (it has no settings)"),
        ("knn", {"depth": 3}, "depth is not a setting of the knn proxy (its settings: k, metric)"),
    ],
)
def test_a_bad_proxy_or_setting_names_its_parameter(name: str, settings: dict, message: str) -> None:
    with pytest.raises(ParameterError) as error:
        make_proxy(name, **settings)
    assert str(error.value) == message and error.value.parameters == [message.split()[0]]


def test_ranking_by_logme_reuses_the_features_of_the_knn_ranking(make_image_folder, tiny_zoo: Zoo) -> None:
    splits = load_data(str(make_image_folder(per_class=8)))
    Ranker(tiny_zoo).fit(splits)
    ranker = Ranker(tiny_zoo, proxy="logme").fit(splits)
    assert all(row.images_per_second is None for row in ranker.ranking_)  # cached: nothing extracted again
    assert {row.proxy for row in ranker.ranking_} == {"logme"} and ranker.proxy_.label == "LogME"
    scores = [row.score for row in ranker.ranking_]
    assert scores == sorted(scores, reverse=True) and len(scores) == 2


def test_cli_rank_by_logme(make_image_folder, tmp_path: Path) -> None:
    out = tmp_path / "out"
    arguments = ["rank", "--data", str(make_image_folder(per_class=6)), "--zoo", str(write_tiny_zoo_file(tmp_path))]
    result = CliRunner().invoke(app, [*arguments, "--proxy", "logme", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Ranking by LogME" in result.output and "kNN" not in result.output
    rows = json.loads((out / "ranking.json").read_text())["ranked"]
    assert rows[0]["proxy"] == "logme" and np.isfinite(rows[0]["score"])
    help_text = CliRunner().invoke(app, ["rank", "--help"], env={"COLUMNS": "200"}).output
    for name, kind in PROXIES.items():  # each proxy's help, and each of its settings an option with its own help
        assert f"{name}: {kind.help}" in " ".join(help_text.replace("│", " ").split())
    assert "--k " in help_text and "Neighbours in the leave-one-out kNN. (proxy knn; default 1)" in help_text


def test_a_run_by_logme_reports_its_proxy(make_image_folder, tiny_zoo: Zoo, tmp_path: Path) -> None:
    splits = load_data(str(make_image_folder(per_class=8, layout="split")))
    sweep = {"top_k": 1, "lrs": (0.01,), "steps": (2,), "batch_size": 4, "image_size": 32, "shift_images": 0}
    fit = ZooFit(
        tiny_zoo,
        sweep=preset("quick").override(**sweep),
        ranking=RankConfig(proxy="logme"),
        precision="fp32",
        workers=1,
    ).fit(splits, tmp_path)
    assert fit.result_.proxy == ProxyResult("logme", "LogME", {})
    assert fit.result_.top_ranked.model == fit.ranker_.ranking_[0].model
    page = html_report(tmp_path)
    assert "best of logme-top model" in page and "Ranking: LogME of frozen features" in page
    assert "kNN" not in page
