"""The feature cache kept per image: a grown set extracts its new images alone and gets, bit for bit, a full
extraction's features; damaged shards are made again, never used; earlier whole-set entries are moved in."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.conftest import tiny_spec
from zoofit import Ranker, load_data
from zoofit.data import ImageSet
from zoofit.execute import InProcess
from zoofit.progress import SilentProgress
from zoofit.rank.features import ROWS, WHOLE_SETS, extract_features, feature_rows, whole_set_key
from zoofit.rank.remote import FeatureJob, ranked_on
from zoofit.store import Cache
from zoofit.store.rows import RowStore, first_missing, shard_name
from zoofit.zoo import Zoo, load_model


class CountingProgress:
    """A progress that counts the images the extraction reports through the network."""

    def __init__(self) -> None:
        self.images = 0

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[CountingProgress]:
        yield self

    def advance(self, amount: int = 1) -> None:
        self.images += amount

    def describe(self, description: str) -> None:
        pass


def grey_images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (count, 28, 28, 1), dtype=np.uint8)


def as_set(images: np.ndarray) -> ImageSet:
    return ImageSet(images, np.zeros(len(images)), ("one",))


@pytest.mark.parametrize("arch", ["test_resnet", "test_efficientnet"])
def test_a_grown_set_extracts_only_its_new_images_and_equals_a_full_extraction(arch: str, tmp_path: Path) -> None:
    loaded, cache = load_model(tiny_spec("tiny", arch)), Cache(tmp_path / "cache")
    first, new = grey_images(10, 0), grey_images(6, 1)
    grown = as_set(np.concatenate([first, new, new[2:3]]))  # 17 images, 6 of them new (one given twice)

    def extract(images, cache=cache, progress=None):  # batches of 4: a full extraction's last batch holds one
        return extract_features(loaded, images, batch_size=4, device="cpu", precision="fp32", cache=cache,
                                progress=progress)  # fmt: skip

    assert extract(as_set(first)).extracted == 10
    counted = CountingProgress()
    again = extract(grown, progress=counted)
    full = extract(grown, cache=None)  # no cache: every image extracted
    assert counted.images == again.extracted == 6 and full.extracted == 17
    np.testing.assert_array_equal(again.values, full.values)  # bit for bit
    store_files = list((tmp_path / "cache" / ROWS).rglob("*.safetensors"))
    assert len(store_files) == 2  # a shard per extraction: no row kept twice
    assert sum(len(load_file(path)["rows"]) for path in store_files) == 16  # each image's row once
    assert extract(as_set(new)).cached  # any subset of what was seen is read back
    assert extract(as_set(np.repeat(first, 3, axis=3))).cached  # grey images read as RGB: the same content


def test_a_damaged_shard_is_made_again_never_used(tmp_path: Path, caplog) -> None:
    loaded, cache, images = load_model(tiny_spec()), Cache(tmp_path / "cache"), as_set(grey_images(9, 2))
    clean = extract_features(loaded, images, batch_size=4, device="cpu", precision="fp32", cache=cache)
    (shard,) = (tmp_path / "cache" / ROWS / clean.key).glob("*.safetensors")
    shard.write_bytes(shard.read_bytes()[:-40])  # a torn write: the file cut short
    with caplog.at_level(logging.WARNING, logger="zoofit"):
        again = extract_features(loaded, images, batch_size=4, device="cpu", precision="fp32", cache=cache)
    assert again.extracted == 9
    np.testing.assert_array_equal(again.values, clean.values)
    assert f"cache: {shard} is damaged (" in caplog.text and "its rows are made again" in caplog.text
    assert feature_rows(cache, clean.key).held(images.digests()).all()  # made again, whole


def written_shard(folder: Path, digests: np.ndarray, rows: np.ndarray, key: str = "k", name: str | None = None) -> Path:
    path = folder / (name or shard_name(digests))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"digests": torch.from_numpy(digests), "rows": torch.from_numpy(rows)}, str(path), metadata={"key": key})
    return path


DIGESTS = np.arange(48, dtype=np.uint8).reshape(3, 16)
DAMAGES = {
    "rows for fewer images than digests": lambda folder: written_shard(folder, DIGESTS, np.ones((2, 4), np.float32)),
    "another store's shard": lambda folder: written_shard(folder, DIGESTS, np.ones((3, 4), np.float32), key="other"),
    "a name that is not its digests' hash": lambda folder: written_shard(
        folder, DIGESTS, np.ones((3, 4), np.float32), name="0" * 20 + ".safetensors"
    ),
    "rows of another type": lambda folder: written_shard(folder, DIGESTS, np.ones((3, 4), np.float64)),
    "a digest twice": lambda folder: written_shard(folder, DIGESTS[[0, 1, 1]], np.ones((3, 4), np.float32)),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_shard_that_does_not_hold_what_it_says_is_left_out_then_removed(damage: str, tmp_path: Path) -> None:
    store = RowStore(tmp_path / "store", "k")
    store.append(DIGESTS[:1] + 100, np.full((1, 4), 7, np.float32))  # a good shard beside it
    bad = DAMAGES[damage](tmp_path / "store")
    assert list(store.held(DIGESTS)) == [False] * 3 and bad.exists()  # a look outside the lock removes nothing
    with store.locked():
        held, values = store.read(np.concatenate([DIGESTS, DIGESTS[:1] + 100]))
    assert list(held) == [False, False, False, True] and values[3].tolist() == [7.0] * 4
    assert not bad.exists()


def test_rows_are_appended_once_per_image() -> None:
    digests = np.array([[1] * 16, [2] * 16, [1] * 16, [3] * 16], dtype=np.uint8)
    assert first_missing(digests, np.array([False, True, False, False])).tolist() == [0, 3]
    with pytest.raises(ValueError, match="each once"):
        RowStore(Path("unused"), "k").append(digests, np.zeros((4, 2), np.float32))


def test_an_earlier_whole_set_entry_is_moved_in_not_extracted_again(tmp_path: Path) -> None:
    loaded, cache, images = load_model(tiny_spec()), Cache(tmp_path / "cache"), as_set(grey_images(5, 3))
    earlier = np.random.default_rng(4).normal(size=(5, 8)).astype(np.float32)  # what that zoofit had extracted
    cache.save_tensors(WHOLE_SETS, whole_set_key(loaded.spec, loaded.preprocessing, "fp32", images), {
        WHOLE_SETS: torch.from_numpy(earlier)})  # fmt: skip
    features = extract_features(loaded, images, device="cpu", precision="fp32", cache=cache)
    assert features.cached
    np.testing.assert_array_equal(features.values, earlier)
    assert feature_rows(cache, features.key).held(images.digests()).all()


def test_ranking_a_grown_set_extracts_its_new_images_alone_and_ranks_as_a_cold_ranking(
    make_image_folder, tiny_zoo: Zoo, tmp_path: Path
) -> None:
    labelled = load_data(str(make_image_folder(per_class=8))).ranking_set
    first, grown = labelled.subset(np.arange(16)), labelled

    def ranking(images: ImageSet, cache: str):  # one model at a time: the same thread count throughout
        return Ranker(tiny_zoo, precision="fp32", models_at_once=1, cache_dir=tmp_path / cache).fit(images).ranking_

    assert {row.images_extracted for row in ranking(first, "warm")} == {16}
    warm, cold = ranking(grown, "warm"), ranking(grown, "cold")
    assert {row.images_extracted for row in warm} == {len(grown) - 16} and {row.images_extracted for row in cold} == {
        len(grown)
    }
    assert [(row.model, row.score) for row in warm] == [(row.model, row.score) for row in cold]
    ranker = Ranker(tiny_zoo, precision="fp32", cache_dir=tmp_path / "warm")
    assert ranker.cached(grown) == {"tiny_resnet", "tiny_effnet"}


def test_a_ranking_through_an_executor_extracts_what_the_drivers_cache_lacks(
    make_image_folder, tiny_zoo: Zoo, tmp_path: Path
) -> None:
    labelled = load_data(str(make_image_folder(per_class=6))).ranking_set
    ranker = Ranker(tiny_zoo, precision="fp32", models_at_once=1, cache_dir=tmp_path / "cache")
    here = {row.model: row for row in ranker.fit(labelled.subset(np.arange(10))).ranking_}
    job = FeatureJob(ranker.config, ranker.machine, labelled, labelled.digests())
    proxy, cache = ranker.config.make_proxy(), Cache(tmp_path / "cache")
    there = {spec.id: row.result() for spec, row in ranked_on(InProcess(), job, tiny_zoo.models, proxy, cache,
                                                              SilentProgress())}  # fmt: skip
    assert {row.images_extracted for row in there.values()} == {len(labelled) - 10} and set(there) == set(here)
    again = {spec.id: row.result() for spec, row in ranked_on(InProcess(), job, tiny_zoo.models, proxy, cache,
                                                              SilentProgress())}  # fmt: skip
    assert {row.images_extracted for row in again.values()} == {0}
    assert {row.images_per_second for row in again.values()} == {None}
