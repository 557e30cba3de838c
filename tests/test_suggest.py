"""zoofit suggest: the pool through a finished tiny run's ensemble; what is left out and why; the strategies."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from tests.conftest import CLASS_COLOURS, coloured_image
from zoofit import ZoofitError, load_data, suggest
from zoofit.cli import app
from zoofit.data import load_source
from zoofit.data.dataset import pixel_digest
from zoofit.labelling.choose import take_distinct
from zoofit.labelling.labelled import read_labelled
from zoofit.labelling.strategies import STRATEGIES, Scored
from zoofit.layout import LABELLED, MANIFEST

runner = CliRunner()


def new_images(folder: Path, count: int, seed: int = 1000) -> list[Path]:
    """``count`` PNGs the run has not seen (other noise than its images'), of its classes' colours in turn."""
    folder.mkdir(parents=True, exist_ok=True)
    colours = list(CLASS_COLOURS.values())
    paths = [folder / f"new{i}.png" for i in range(count)]
    for i, path in enumerate(paths):
        coloured_image(colours[i % len(colours)], (24, 20), seed + i).save(path)
    return paths


def test_the_run_records_every_image_it_holds(run: Path) -> None:
    splits = load_data(str(run.parent / "images"))
    record = read_labelled(run)
    assert len(record.digests) == len(splits.train) + len(splits.val) + len(splits.test)
    assert record.features.shape[0] == len(splits.train) + len(splits.val)
    assert pixel_digest(splits.test.images[0]) in record.digests


def test_a_grey_image_has_the_digest_of_its_rgb_form() -> None:
    grey = np.random.default_rng(0).integers(0, 256, (5, 4, 1), dtype=np.uint8)
    assert pixel_digest(grey) == pixel_digest(np.repeat(grey, 3, axis=2))
    assert pixel_digest(grey) != pixel_digest(grey.reshape(4, 5, 1))


def test_a_pool_with_training_images_duplicates_and_unreadable_files(run: Path, tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    fresh = new_images(pool, 6)
    shutil.copy(fresh[0], pool / "copy-of-new0.png")
    trained = sorted((run.parent / "images" / "train" / "cat").glob("*.png"))[:3]
    for i, path in enumerate(trained):
        shutil.copy(path, pool / f"known{i}.png")
    (pool / "broken.png").write_bytes(b"not a png")

    chosen = suggest(run, pool, 100, strategy="entropy", near_duplicate=1.0)

    assert chosen.pool == 11
    assert (chosen.in_run, chosen.duplicates, chosen.unreadable) == (3, 1, [str(pool / "broken.png")])
    names = [Path(row.path).name for row in chosen.rows]
    assert "broken.png" not in names and not any(name.startswith("known") for name in names)
    assert len(names) == len(set(names)) == 6  # --count larger than the pool: every candidate, once
    assert ("new0.png" in names) != ("copy-of-new0.png" in names)
    entropies = [row.score for row in chosen.rows]
    assert entropies == sorted(entropies, reverse=True)
    assert all(row.predicted in CLASS_COLOURS and 0 < row.probability <= 1 for row in chosen.rows)
    assert "1 duplicates within the pool" in chosen.describe() and "1 unreadable" in chosen.describe()


def test_a_near_copy_of_a_training_image_is_not_suggested(run: Path, tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    pixels = np.array(Image.open(sorted((run.parent / "images" / "train" / "dog").glob("*.png"))[0]))
    pixels[0, 0] ^= 1  # one pixel off: another file's content, the same image to the network
    Image.fromarray(pixels).save(pool / "near.png")
    chosen = suggest(run, pool, 5, strategy="random")
    assert (chosen.in_run, chosen.near_duplicates, chosen.rows) == (0, 1, [])


def test_near_duplicates_within_the_pool_are_taken_once() -> None:
    features = np.array([[1.0, 0.0], [0.999, 0.0447], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    scored = Scored(np.full((1, 4, 2), 0.5), np.ones(1), features, np.array([[0.6, 0.8]], dtype=np.float32))
    candidates = [(i, 1.0 - i / 10, "") for i in range(4)]
    taken, skipped = take_distinct(iter(candidates), scored, 3, near_duplicate=0.98)
    assert [t[0] for t in taken] == [0, 2]  # 1 is a near-copy of 0, 3 of the labelled image
    assert skipped == 2


def scored_pool(members: np.ndarray, features: np.ndarray, labelled: np.ndarray) -> Scored:
    weights = np.ones(len(members)) / len(members)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    return Scored(members, weights, unit.astype(np.float32), labelled.astype(np.float32))


def test_strategies_order_by_what_they_measure() -> None:
    agree_sure, agree_unsure, disagree = [0.98, 0.02], [0.5, 0.5], ([0.95, 0.05], [0.05, 0.95])
    members = np.array([[agree_sure, agree_unsure, disagree[0]], [agree_sure, agree_unsure, disagree[1]]])
    scored = scored_pool(members, np.eye(3), np.zeros((0, 3)))
    rng = np.random.default_rng(0)
    first = {name: next(STRATEGIES[name].candidates(scored, 1, rng)) for name in ("disagreement", "entropy")}
    assert first["disagreement"][0] == 2 and "members disagree" in first["disagreement"][2]
    assert first["entropy"][0] in (1, 2) and scored.disagreement[1] == pytest.approx(0.0, abs=1e-9)
    assert scored.disagreement[2] > 0.4
    orders = [[c[0] for c in STRATEGIES["random"].candidates(scored, 3, np.random.default_rng(s))] for s in (0, 0)]
    assert orders[0] == orders[1] and sorted(orders[0]) == [0, 1, 2]


def test_diverse_spreads_its_picks_over_the_feature_space() -> None:
    # twenty images the ensemble is unsure of alike: ten near one point, ten near another, the most uncertain
    # all in the first group; entropy takes both picks from it, diverse one from each
    rng = np.random.default_rng(0)
    centres = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    features = np.repeat(centres, 10, axis=0) + rng.normal(0, 0.01, (20, 3))
    unsure = np.concatenate([np.linspace(0.5, 0.45, 10), np.linspace(0.4, 0.35, 10)])[:, None]
    members = np.repeat(np.concatenate([unsure, 1 - unsure], axis=1)[None], 2, axis=0)
    scored = scored_pool(members, features, np.zeros((0, 3)))
    picks = list(STRATEGIES["diverse"].candidates(scored, 2, np.random.default_rng(0)))
    assert {p[0] // 10 for p in picks[:2]} == {0, 1} and {p[0] for p in picks[:2]} == {0, 10}
    assert "the most uncertain of a cluster of 10" in picks[0][2]
    assert {p[0] for p in picks} == set(range(20))  # then every other image, should near-duplicates be skipped
    entropy = list(STRATEGIES["entropy"].candidates(scored, 2, np.random.default_rng(0)))[:2]
    assert {p[0] // 10 for p in entropy} == {0}


def test_with_one_member_the_entropy_stands_in_for_the_disagreement() -> None:
    members = np.array([[[0.9, 0.1], [0.5, 0.5], [0.7, 0.3]]])
    scored = scored_pool(members, np.eye(3), np.zeros((0, 3)))
    for name in ("disagreement", "diverse"):
        first = next(STRATEGIES[name].candidates(scored, 1, np.random.default_rng(0)))
        assert first[0] == 1 and "the ensemble is unsure" in first[2]


def test_cli_writes_a_csv_that_zoofit_reads_once_labelled(run: Path, tmp_path: Path) -> None:
    new_images(tmp_path / "pool", 4)
    out = tmp_path / "labels" / "next.csv"
    result = runner.invoke(
        app, ["suggest", "--run", str(run), "--pool", str(tmp_path / "pool"), "--count", "3", "--out", str(out),
              "--strategy", "entropy", "--near-duplicate", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "3 of 4 pool images suggested (entropy)" in result.output
    lines = out.read_text().splitlines()
    assert lines[0] == "path,label,predicted,probability,score,why" and len(lines) == 4
    labelled = [lines[0], *(line.replace(",,", ",cat,", 1) for line in lines[1:])]  # a person fills them in
    out.write_text("\n".join(labelled) + "\n")
    read = load_source(str(out)).train
    assert len(read) == 3 and read.class_names == ("cat",)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("empty pool", "holds no images"),
        ("no ensemble", f"has no {MANIFEST}"),
        ("no record", f"has no {LABELLED}"),
        ("bad strategy", "--strategy must be one of"),
        ("bad count", "--count must be at least 1"),
        ("not a csv", "must end in .csv"),
    ],
)
def test_cli_bad_inputs_are_one_line(run: Path, tmp_path: Path, case: str, message: str) -> None:
    pool, folder = tmp_path / "pool", tmp_path / "run"
    pool.mkdir()
    if case != "empty pool":
        new_images(pool, 2)
    shutil.copytree(run, folder, ignore=shutil.ignore_patterns(MANIFEST if case == "no ensemble" else LABELLED))
    if case not in ("no ensemble", "no record"):
        shutil.copy(run / LABELLED, folder / LABELLED)
    args = {"--run": str(folder), "--pool": str(pool), "--count": "2", "--out": str(tmp_path / "s.csv")}
    args |= {"bad strategy": {"--strategy": "smart"}, "bad count": {"--count": "0"},
             "not a csv": {"--out": str(tmp_path / "s.txt")}}.get(case, {})  # fmt: skip
    result = runner.invoke(app, ["suggest", *(item for pair in args.items() for item in pair)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "s.csv").exists()


def test_a_record_of_another_ensemble_is_refused(run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    tensors = load_file(str(run / LABELLED))
    save_file(tensors, str(folder / LABELLED), metadata={"member": "0", "trial": "another-trial"})
    with pytest.raises(ZoofitError, match="written for another ensemble"):
        suggest(folder, tmp_path, 1)


def test_embed_gives_the_members_probabilities_and_the_pre_logits_of_one(run: Path) -> None:
    from zoofit.ensemble import EnsembleClassifier

    classifier = EnsembleClassifier.load(run, precision="fp32")
    images = list(load_data(str(run.parent / "images")).test.images)
    probs, features = classifier.embed(images, 0)
    for got, expected in zip(probs, classifier.member_probabilities(images), strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-6)
    network = classifier.members[0].model.model
    assert features.shape == (len(images), network.num_features)
    np.testing.assert_allclose(classifier.features(images, 0), features, atol=1e-6)
