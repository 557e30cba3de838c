"""Data sources, image decoding, the split protocol and every bad input they reject."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from zoofit.cli import app
from zoofit.data import DataConfig, ImageSet, SourceData, load_data, load_source, make_splits, sources
from zoofit.data.decode import UnreadableImage, decode_image
from zoofit.data.sources import CsvFile, Source
from zoofit.errors import ParameterError, ZoofitError
from zoofit.registry import Registry

# ---------------------------------------------------------------- decoding


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    Image.new("RGB", (20, 10), (255, 0, 0)).save(tmp_path / "a.jpg", exif=exif)
    assert decode_image(tmp_path / "a.jpg").shape == (20, 10, 3)


@pytest.mark.parametrize(
    ("mode", "suffix", "value", "expected"),
    [
        ("L", ".png", 128, (128, 128, 128)),
        ("P", ".png", 3, None),
        ("RGBA", ".png", (255, 0, 0, 0), (255, 255, 255)),  # transparent -> white
        ("CMYK", ".jpg", (0, 0, 0, 0), None),
        ("I;16", ".png", 65535, (255, 255, 255)),
        ("LA", ".webp", (50, 255), (50, 50, 50)),
        ("RGB", ".bmp", (1, 2, 3), (1, 2, 3)),
        ("RGB", ".tif", (9, 8, 7), (9, 8, 7)),
    ],
)
def test_every_mode_becomes_rgb(tmp_path: Path, mode: str, suffix: str, value, expected) -> None:
    path = tmp_path / f"image{suffix}"
    Image.new(mode, (8, 6), value).save(path)
    pixels = decode_image(path)
    assert pixels.shape == (6, 8, 3) and pixels.dtype == np.uint8
    if expected is not None:
        assert tuple(pixels[0, 0]) == pytest.approx(expected, abs=2)


def test_large_images_are_downscaled_on_decode(tmp_path: Path) -> None:
    Image.new("RGB", (1000, 800)).save(tmp_path / "big.png")
    assert decode_image(tmp_path / "big.png", max_side=100).shape == (100, 125, 3)


def test_truncated_image_is_unreadable(tmp_path: Path) -> None:
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "a.jpg")
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "a.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableImage, match="a.jpg"):
        decode_image(tmp_path / "a.jpg")


# ---------------------------------------------------------------- image folders


def test_flat_folder(make_image_folder) -> None:
    data = load_source(str(make_image_folder(per_class=4)))
    assert data.train.class_names == ("cat", "dog", "fox")
    assert list(data.train.class_counts()) == [4, 4, 4]
    assert data.val is None and data.test is None
    assert isinstance(data.train.images, np.ndarray) and data.train.images.shape == (12, 20, 24, 3)


def test_split_folder_keeps_given_splits(make_image_folder) -> None:
    splits = load_data(str(make_image_folder(per_class=5, layout="split")))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (15, 6, 6)
    assert splits.test.class_names == splits.train.class_names


def test_mixed_sizes_stay_a_list(make_image_folder) -> None:
    root = make_image_folder(per_class=3)
    Image.new("RGB", (50, 40)).save(root / "cat" / "odd.png")
    data = load_source(str(root))
    assert isinstance(data.train.images, list) and len(data.train) == 10


def test_non_image_files_are_ignored_and_bad_images_skipped(make_image_folder, caplog) -> None:
    root = make_image_folder(per_class=3)
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG garbage")
    with caplog.at_level(logging.WARNING, logger="zoofit"):
        data = load_source(str(root))
    assert list(data.train.class_counts()) == [3, 3, 3]
    assert "broken.png" in caplog.text and "notes.txt" not in caplog.text


def test_empty_class_folder_is_skipped_with_warning(make_image_folder, caplog) -> None:
    root = make_image_folder(per_class=3)
    (root / "empty").mkdir()
    with caplog.at_level(logging.WARNING, logger="zoofit"):
        data = load_source(str(root))
    assert data.train.class_names == ("cat", "dog", "fox")
    assert "empty" in caplog.text


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ZoofitError, match="does not exist"):
        load_data(str(tmp_path / "nowhere"))


def test_folder_without_images_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "readme.md").write_text("hi")
    with pytest.raises(ZoofitError, match="no images found"):
        load_data(str(tmp_path))


def test_single_class_is_an_error(make_image_folder) -> None:
    with pytest.raises(ZoofitError, match="fewer than 2 classes"):
        load_data(str(make_image_folder(classes=("cat",))))


def test_val_class_unknown_to_train_is_an_error(make_image_folder) -> None:
    root = make_image_folder(layout="split")
    (root / "val" / "owl").mkdir()
    Image.new("RGB", (8, 8)).save(root / "val" / "owl" / "0.png")
    with pytest.raises(ZoofitError, match="owl"):
        load_data(str(root))


# ---------------------------------------------------------------- CSV


def write_csv(folder: Path, header: str, rows: list[str]) -> Path:
    path = folder / "labels.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_csv_with_splits(make_image_folder) -> None:
    root = make_image_folder(per_class=4)
    rows = [f"{c}/{i}.png,{c},{'test' if i == 3 else 'train'}" for c in ("cat", "dog") for i in range(4)]
    path = write_csv(root, "path,label,split", rows)
    for name in (str(path), f"csv:{path}"):
        data = load_source(name)
        assert (len(data.train), len(data.test)) == (6, 2)
        assert data.train.class_names == ("cat", "dog")


def test_csv_without_columns_is_an_error(make_image_folder) -> None:
    path = write_csv(make_image_folder(), "file,class", ["cat/0.png,cat"])
    with pytest.raises(ZoofitError, match="lacks the column"):
        load_source(str(path))


def test_csv_with_an_empty_label_names_its_line(make_image_folder) -> None:
    path = write_csv(make_image_folder(), "path,label", ["cat/0.png,cat", "cat/1.png,", "dog/0.png"])
    with pytest.raises(ZoofitError, match="line 3: the label is empty"):
        load_source(str(path))


def test_csv_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_bytes(b"path,label\n\x80\xff.png,cat\n")
    with pytest.raises(ZoofitError, match="not readable UTF-8 CSV"):
        load_source(str(tmp_path / "d.csv"))


def test_csv_with_missing_files_is_an_error(make_image_folder) -> None:
    path = write_csv(make_image_folder(), "path,label", ["cat/0.png,cat", "cat/nope.png,cat"])
    with pytest.raises(ZoofitError, match="nope.png"):
        load_source(str(path))


# ---------------------------------------------------------------- numpy


def test_npz_grey_with_test_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(30, 10, 10), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(30) % 3, x_test=x[:6], y_test=np.arange(6) % 3)
    data = load_source(str(tmp_path / "d.npz"))
    assert data.train.images.shape == (30, 10, 10, 1)
    assert data.train.class_names == ("0", "1", "2") and len(data.test) == 6


def test_npz_class_names_keep_their_order(tmp_path: Path) -> None:
    x = np.zeros((4, 5, 5, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([1, 0, 1, 0]), class_names=np.array(["zebra", "ant"]))
    data = load_source(str(tmp_path / "d.npz"))
    assert data.train.class_names == ("zebra", "ant")
    assert list(data.train.labels) == [1, 0, 1, 0]


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((4, 5, 5), dtype=np.float32), "y": np.zeros(4)}, "must be uint8"),
        ({"x": np.zeros((4, 5, 5), dtype=np.uint8)}, "needs arrays 'x' and 'y'"),
        ({"x": np.zeros((4, 5, 5), dtype=np.uint8), "y": np.zeros(3)}, "one label per image"),
    ],
)
def test_npz_bad_arrays_are_errors(tmp_path: Path, arrays, message) -> None:
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(ZoofitError, match=message):
        load_source(str(tmp_path / "d.npz"))


def test_a_file_that_is_not_an_npz_archive_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "d.npz").write_text("x,y\n")
    with pytest.raises(ZoofitError, match="not an .npz archive"):
        load_source(str(tmp_path / "d.npz"))


# ---------------------------------------------------------------- Fashion-MNIST


def test_fashion_mnist_missing_says_how_to_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ZOOFIT_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(ZoofitError, match="apt-get install -y dataset-fashion-mnist"):
        load_source("fashion-mnist")


def test_fashion_mnist_protocol() -> None:
    splits = load_data("fashion-mnist")
    assert (len(splits.train), len(splits.val), len(splits.test)) == (800, 200, 10000)
    assert list(splits.train.class_counts()) == [80] * 10 and list(splits.val.class_counts()) == [20] * 10
    assert splits.class_names[0] == "T-shirt/top"


# ---------------------------------------------------------------- the registry of sources


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("csv:{tmp}/none.csv", "CSV file '{tmp}/none.csv' does not exist"),
        ("npz:{tmp}/none", "numpy file '{tmp}/none' does not exist"),
        ("fashion-mnist:{tmp}", "Fashion-MNIST not found in {tmp} (missing train-images-idx3-ubyte.gz"),
        ("{tmp}/none.png", "data path '{tmp}/none.png' does not exist; give one of fashion-mnist[:DIR], digits,"),
        ("{tmp}/notes.txt", "data path '{tmp}/notes.txt' is a file zoofit cannot read"),
    ],
)
def test_a_source_that_names_nothing_to_read_fails_its_check(tmp_path: Path, source: str, message: str) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ZoofitError) as raised:
        DataConfig(source.format(tmp=tmp_path)).validate()
    assert str(raised.value).startswith(message.format(tmp=tmp_path))


def test_a_csv_named_folder_is_read_as_a_csv_file(tmp_path: Path) -> None:
    (tmp_path / "d.csv").mkdir()
    entry, location = sources.resolve(str(tmp_path / "d.csv"))
    assert isinstance(entry, CsvFile) and location == str(tmp_path / "d.csv")
    with pytest.raises(ZoofitError, match="CSV file '.*d.csv' does not exist"):
        load_source(str(tmp_path / "d.csv"))


def test_the_default_protocol_comes_from_the_source_not_its_name(make_image_folder) -> None:
    root = make_image_folder(per_class=4)
    folder = root.rename(root.parent / "fashion-mnist")
    splits = load_data(str(folder))  # a folder called fashion-mnist is no Fashion-MNIST: all its images
    assert splits.name == "fashion-mnist" and len(splits.train) + len(splits.val) == 12


class Repeated(Source):
    """A source made up for the test: ``repeat:N`` is N grey images of each of three classes."""

    scheme, form, help = "repeat", "repeat:N", "N grey images of each of three classes"
    default_train_per_class = 3

    def check(self, location: str) -> None:
        if not location.isdigit():
            raise ZoofitError(f"repeat:'{location}' is no number")

    def load(self, location: str, *, max_side: int, progress) -> SourceData:
        labels = np.arange(3 * int(location)) % 3
        return SourceData("repeated", ImageSet(np.zeros((len(labels), 4, 4, 1), np.uint8), labels, ("a", "b", "c")))


def test_a_source_is_one_entry_of_the_registry(monkeypatch) -> None:
    registry = Registry("data source", (("repeat", Repeated()), *sources.SOURCES.items()))
    monkeypatch.setattr(sources, "SOURCES", registry)
    with pytest.raises(ZoofitError, match="is no number"):
        DataConfig("repeat:x").validate()
    splits = load_data("repeat:10", val_fraction=1 / 3)
    assert list(splits.train.class_counts()) == [2, 2, 2] and list(splits.val.class_counts()) == [1, 1, 1]


# ---------------------------------------------------------------- the protocol


def synthetic_source(per_class: list[int]) -> SourceData:
    labels = np.repeat(np.arange(len(per_class)), per_class)
    images = np.arange(len(labels), dtype=np.uint8).repeat(4).reshape(-1, 2, 2, 1)  # image i holds value i
    return SourceData("synthetic", ImageSet(images, labels, tuple(f"c{i}" for i in range(len(per_class)))))


def ids(images: ImageSet) -> set[int]:
    return {int(image[0, 0, 0]) for image in images.images}


def test_split_is_stratified_seeded_and_disjoint() -> None:
    source = synthetic_source([50, 30, 20])
    splits = make_splits(source, DataConfig("synthetic", train_per_class=20, val_fraction=0.25, seed=3))
    assert list(splits.train.class_counts()) == [15, 15, 15] and list(splits.val.class_counts()) == [5, 5, 5]
    assert not ids(splits.train) & ids(splits.val)
    again = make_splits(source, DataConfig("synthetic", train_per_class=20, val_fraction=0.25, seed=3))
    assert ids(again.train) == ids(splits.train)
    other = make_splits(source, DataConfig("synthetic", train_per_class=20, val_fraction=0.25, seed=4))
    assert ids(other.train) != ids(splits.train)


def test_train_size_keeps_class_proportions() -> None:
    splits = make_splits(synthetic_source([60, 30, 10]), DataConfig("synthetic", train_size=50, val_fraction=0.2))
    total = splits.train.class_counts() + splits.val.class_counts()
    assert list(total) == [30, 15, 5]


def test_train_per_class_larger_than_a_class_is_an_error() -> None:
    with pytest.raises(ZoofitError, match="larger than class 'c2'"):
        make_splits(synthetic_source([50, 30, 20]), DataConfig("synthetic", train_per_class=25))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (DataConfig("x", train_per_class=5, train_size=10), "give train_per_class or train_size, not both"),
        (DataConfig("x", val_fraction=1.0), "val_fraction must lie strictly between 0 and 1, not 1.0"),
        (DataConfig("x", test_fraction=0.0), "test_fraction must lie strictly between 0 and 1, not 0.0"),
        (DataConfig("x", train_per_class=0), "train_per_class must be a positive number, not 0"),
        (DataConfig("x", train_size=-1), "train_size must be a positive number, not -1"),
        (DataConfig("x", max_side=8), "max_side must be at least 16 pixels, not 8"),
    ],
)
def test_bad_protocol_options_name_their_parameter(config: DataConfig, message: str) -> None:
    with pytest.raises(ParameterError) as raised:
        config.validate()
    assert str(raised.value) == message


def test_a_size_larger_than_the_data_names_its_parameter(make_image_folder) -> None:
    folder = str(make_image_folder(per_class=4))
    with pytest.raises(ParameterError, match=r"^train_per_class 50 is larger than class 'cat' \(4 images\); lower it$"):
        load_data(folder, train_per_class=50)
    with pytest.raises(ParameterError, match=r"^train_size 13 is larger than the training data \(12 images\)$"):
        load_data(folder, train_size=13)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--train-per-class", "50"], "error: --train-per-class 50 is larger than class 'cat' (4 images); lower it"),
        (["--train-per-class", "5", "--train-size", "9"], "error: give --train-per-class or --train-size, not both"),
        (["--val-fraction", "1"], "error: --val-fraction must lie strictly between 0 and 1, not 1.0"),
        (["--test-fraction", "0"], "error: --test-fraction must lie strictly between 0 and 1, not 0.0"),
    ],
)
def test_the_cli_names_the_protocol_options(make_image_folder, options: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["run", "--data", str(make_image_folder(per_class=4)), *options])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and errors == [message]


def test_fingerprint_follows_content() -> None:
    images = synthetic_source([3, 3]).train
    assert images.fingerprint == synthetic_source([3, 3]).train.fingerprint
    changed = ImageSet(images.images.copy(), images.labels, images.class_names)
    changed.images[0, 0, 0, 0] = 255
    assert changed.fingerprint != images.fingerprint


# ---------------------------------------------------------------- built-in sources from packages, generated dSprites


def test_digits_and_lfw_subset_come_from_their_packages() -> None:
    digits = load_data("digits", train_size=100, test_fraction=0.3)
    assert digits.class_names == tuple(str(d) for d in range(10)) and digits.train.images.shape[1:] == (8, 8, 1)
    assert len(digits.train) + len(digits.val) == 100 and len(digits.test) == 539
    assert digits.train.images.dtype == np.uint8 and digits.train.images.max() == 255
    faces = load_data("lfw-subset", test_fraction=0.5)
    assert faces.class_names == ("face", "non-face") and faces.train.images.shape[1:] == (25, 25, 1)
    assert len(faces.test) == 100 and np.bincount(faces.test.labels).tolist() == [50, 50]


def test_dsprites_is_generated_the_same_every_time() -> None:
    from zoofit.data.sources.dsprites import generate

    first, again = generate(64, seed=3), generate(64, seed=3)
    assert np.array_equal(first.images, again.images) and np.array_equal(first.labels, again.labels)
    assert first.images.shape == (64, 64, 64, 1) and set(np.unique(first.images)) <= {0, 255}
    assert first.labels.max() < 16 and len(first.class_names) == 16
    # the label is the x position: the sprites of a higher bin lie further right
    columns = [np.nonzero(image[..., 0].any(axis=0))[0].mean() for image in first.images]
    order = np.argsort(first.labels, kind="stable")
    assert np.corrcoef(first.labels[order], np.array(columns)[order])[0, 1] > 0.95
    splits = load_data("dsprites:orientation", train_size=200)
    assert splits.name == "dsprites-orientation" and len(splits.test) == 2000


#: The first scenes of seed 1, by their pixels' SHA-256, and how many objects the first holds.
PINNED_SCENES, COUNTED = ["06d27308b9400eb5", "bafb1160e938b59a", "a3acef263881354f"], 6


def test_scenes_are_generated_the_same_every_time_and_labelled_by_what_they_show() -> None:
    from zoofit.data.sources.scenes import generate

    count, distance = generate(40, "count", seed=1), generate(40, "distance", seed=1)
    assert np.array_equal(count.images, distance.images) and count.images.shape == (40, 64, 64, 3)
    digests = [hashlib.sha256(image.tobytes()).hexdigest()[:16] for image in count.images[:3]]
    assert digests == PINNED_SCENES  # the data never changes silently: a change here is a new task
    assert count.class_names[count.labels[0]] == f"{COUNTED} objects" and len(distance.class_names) == 6
    # each object has its own outline: the count is the number of dark-outlined blobs of the ground
    for image, label in zip(count.images, count.labels, strict=True):
        assert _blobs(image) == label + 3
    # the nearer the nearest object, the lower it stands: the lowest coloured row falls with the band
    lowest = [np.nonzero((image != image[-1, 0]).any(axis=(1, 2)))[0].max() for image in distance.images]
    assert np.corrcoef(distance.labels, lowest)[0, 1] < -0.8
    splits = load_data("scenes:distance", train_size=200)
    assert (
        splits.name == "scenes-distance" and len(splits.test) == 2000 and splits.class_names[0] == "nearest in band 1"
    )


def _blobs(image: np.ndarray) -> int:
    """The connected regions of ``image`` that are neither ground nor sky."""
    from scipy import ndimage

    background = (image == image[-1, 0]).all(axis=2) | (image == image[0, 0]).all(axis=2)
    return int(ndimage.label(~background)[1])


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("dsprites:colour", "the task must be one of location, orientation"),
        ("digits:x", "'digits' takes no location"),
        ("scenes", "data 'scenes': the task must be one of count, distance"),
        ("scenes:colour", "data 'scenes:colour': the task must be one of count, distance"),
    ],
)
def test_built_in_sources_refuse_a_location_they_do_not_take(source: str, message: str) -> None:
    with pytest.raises(ZoofitError, match=message):
        DataConfig(source).validate()


FAKE_SOURCE = """
import json, sys
from zoofit.data.sources import SOURCES, Source

class Sketches(Source):
    scheme, form, help = "sketches", "sketches:SET", "hand-drawn sketches of one SET"
    def check(self, location): pass
    def load(self, location, *, max_side, progress): raise NotImplementedError

SOURCES.add(Sketches.scheme, Sketches())
from typer.testing import CliRunner
from zoofit.cli import app

runner = CliRunner()
answers = [runner.invoke(app, [*command, "--help"], env={"COLUMNS": "300"}).output for command in (["run"], ["rank"])]
failed = runner.invoke(app, ["run", "--data", "/no/such/folder"])
print(json.dumps({"help": answers, "error": failed.output, "code": failed.exit_code, "torch": "torch" in sys.modules}))
"""


def test_a_source_registered_by_a_module_is_in_the_help_and_the_messages() -> None:
    done = subprocess.run([sys.executable, "-c", FAKE_SOURCE], capture_output=True, text=True, check=True)
    answer = json.loads(done.stdout.splitlines()[-1])
    for help_text in answer["help"]:  # in the help of --data, with its form and help, and every other source too
        flat = " ".join(help_text.replace("│", " ").split())
        assert "sketches:SET: hand-drawn sketches of one SET" in flat
        assert all(f"{about.form}: {about.help}" in flat for about in map(sources.SOURCES.about, sources.SOURCES))
    assert answer["code"] == 2 and "does not exist; give one of" in answer["error"]
    assert "sketches:SET" in " ".join(answer["error"].split()) and not answer["torch"]
