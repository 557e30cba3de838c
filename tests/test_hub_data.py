"""``hf:`` (Hugging Face datasets) and ``wds:`` (WebDataset shards) read datasets written from real images: local
folders, parquet, shards, the CLIP-benchmark layout, and both hub forms from a huggingface_hub cache, offline."""

from __future__ import annotations

import json
import logging
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tests import hub_data
from zoofit.data import DataConfig, load_data, load_source
from zoofit.data import dataset as dataset_module
from zoofit.data.sources import check_source
from zoofit.errors import ZoofitError


def by_class(arrays: hub_data.Arrays) -> hub_data.Arrays:
    """Each split's images grouped by class, in their order within it: the order an image folder reads them in."""
    return {split: (x[np.argsort(y, kind="stable")], np.sort(y, kind="stable")) for split, (x, y) in arrays.items()}


@pytest.fixture(scope="module")
def digits() -> tuple[hub_data.Arrays, list[str]]:
    arrays, names = hub_data.digits({"train": 100, "test": 30})
    return by_class(arrays), names


@pytest.fixture(scope="module")
def written(digits, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The digits as an image folder, a save_to_disk folder, parquet files and CLIP-benchmark shards."""
    arrays, names = digits
    root = tmp_path_factory.mktemp("digits")
    dataset_dict = hub_data.hf_dataset_dict(arrays, names)
    dataset_dict.save_to_disk(str(root / "saved"))
    return {
        "folder": hub_data.write_folder(root / "folder", arrays, names),
        "saved": root / "saved",
        "parquet": hub_data.write_parquet(root / "parquet", dataset_dict),
        "shards": hub_data.write_shards(root / "shards", arrays, names, ext="webp"),
    }


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch) -> Path:
    """An empty huggingface_hub cache, read offline (``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``)."""
    import huggingface_hub.constants as hub

    cache = tmp_path / "hub"
    cache.mkdir()
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(variable, "1")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path: Path, monkeypatch) -> None:
    """The datasets library prepares parquet files into a cache of its own: one per test."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")


PROTOCOL = {"train_per_class": 4, "seed": 3}


@pytest.mark.parametrize(
    "form", ["hf:{saved}", "hf:{parquet}", "wds:{shards}", "wds:{shards}/train/{{0..3}}.tar"], ids=str
)
def test_each_form_draws_the_same_splits_as_the_same_images_in_a_folder(written, digits, form: str) -> None:
    folder = load_data(str(written["folder"]), **PROTOCOL)
    splits = load_data(form.format(**written), **PROTOCOL)
    assert splits.class_names == folder.class_names == tuple(digits[1])
    assert (splits.train.fingerprint, splits.val.fingerprint) == (folder.train.fingerprint, folder.val.fingerprint)
    if form.endswith(".tar"):  # a pattern of training shards alone: no test split
        assert splits.test is None
    else:
        assert splits.fingerprint == folder.fingerprint


def test_only_the_images_the_protocol_keeps_are_decoded(written, monkeypatch) -> None:
    decoded: list[int] = []
    real = dataset_module.decode_many

    def counting(files, **kwargs):
        decoded.append(len(files))
        return real(files, **kwargs)

    monkeypatch.setattr(dataset_module, "decode_many", counting)
    for form in ("hf:{saved}", "wds:{shards}"):
        decoded.clear()
        splits = load_data(form.format(**written), train_per_class=2)
        assert decoded == [10, 10, 30] == [len(splits.train), len(splits.val), len(splits.test)]  # of 100 train


def test_a_corrupt_image_is_skipped_with_a_warning(digits, tmp_path: Path, caplog) -> None:
    arrays, names = digits
    shards = hub_data.write_shards(tmp_path / "shards", arrays, names)
    with tarfile.open(shards / "train" / "0.tar") as archive:  # rewrite the first shard, one image broken
        members = [(m, archive.extractfile(m).read()) for m in archive.getmembers()]
    with tarfile.open(shards / "train" / "0.tar", "w") as archive:
        for member, data in members:
            data = b"not a png" if member.name == "s0000000.png" else data
            member.size = len(data)
            archive.addfile(member, __import__("io").BytesIO(data))
    with caplog.at_level(logging.WARNING, logger="zoofit"):
        splits = load_data(f"wds:{shards}", val_fraction=0.5)
    assert len(splits.train) + len(splits.val) == 99
    assert "s0000000" in caplog.text


def test_fashion_mnist_class_names_come_from_its_class_label(tmp_path: Path) -> None:
    arrays, names = hub_data.fashion_mnist({"train": 200, "validation": 50, "test": 50})
    dataset_dict = hub_data.hf_dataset_dict(arrays, names, image="img", label="fine")
    dataset_dict.save_to_disk(str(tmp_path / "fm"))
    data = load_source(f"hf:{tmp_path / 'fm'}")
    assert data.val is not None and len(data.val) == 50  # "validation" is zoofit's val split
    assert set(data.train.class_names) <= set(names) and "T-shirt/top" in data.train.class_names
    assert [names.index(n) for n in data.train.class_names] == sorted(names.index(n) for n in data.train.class_names)
    splits = load_data(f"hf:{tmp_path / 'fm'}", train_size=40)
    assert splits.train.images.shape[1:] == (28, 28, 3)
    expected = np.repeat(arrays["test"][0][..., None], 3, axis=-1)
    assert np.array_equal(splits.test.images, expected)  # the pixels themselves


def test_string_labels_and_shards_named_by_their_split(tmp_path: Path) -> None:
    import datasets

    arrays, _ = hub_data.digits({"train": 40, "test": 10})
    features = datasets.Features(
        {"picture": datasets.Image(), "kind": datasets.Value("string"), "n": datasets.Value("int64")}
    )
    table = {"picture": [{"bytes": hub_data.png(x), "path": None} for x in arrays["train"][0]],
             "kind": [f"digit {y}" for y in arrays["train"][1]], "n": list(range(40))}  # fmt: skip
    datasets.Dataset.from_dict(table, features=features).save_to_disk(str(tmp_path / "strings"))
    assert load_source(f"hf:{tmp_path / 'strings'}").train.class_names[:2] == ("digit 0", "digit 1")

    flat = tmp_path / "flat"
    hub_data.write_shards(tmp_path / "split", arrays, None)
    flat.mkdir()
    for split in ("train", "test"):
        for shard in (tmp_path / "split" / split).glob("*.tar"):
            shard.rename(flat / f"{split}-{int(shard.stem):03d}.tar")
    data = load_source(f"wds:{flat}")
    assert len(data.train) == 40 and len(data.test) == 10 and data.train.class_names[0] == "class0"


def test_both_hub_forms_read_from_the_hub_cache_offline(written, offline_hub: Path, digits) -> None:
    hub_data.write_hub_dataset_cache(offline_hub, "someone/digits-parquet", written["parquet"])
    hub_data.write_hub_dataset_cache(offline_hub, "clip-benchmark/wds_vtab-digits", written["shards"])
    folder = load_data(str(written["folder"]), **PROTOCOL)
    for source in ("hf:someone/digits-parquet", "wds:hf://clip-benchmark/wds_vtab-digits"):
        check_source(source)
        splits = load_data(source, **PROTOCOL)
        assert splits.fingerprint == folder.fingerprint, source
    with pytest.raises(ZoofitError, match="not in the hub cache .* download it once online"):
        load_data("hf:someone/elsewhere")
    with pytest.raises(ZoofitError, match="not in the hub cache"):
        load_data("wds:hf://clip-benchmark/wds_vtab-absent")


def test_a_config_of_a_parquet_repo_is_read_from_its_card(written, tmp_path: Path) -> None:
    root = tmp_path / "configs"
    (root / "small").mkdir(parents=True)
    for split in ("train", "test"):
        (root / "small" / f"{split}.parquet").write_bytes(
            (written["parquet"] / "data" / f"{split}-00000-of-00001.parquet").read_bytes()
        )
    card = "---\nconfigs:\n- config_name: small\n  data_files:\n  - split: train\n    path: small/train.parquet\n"
    (root / "README.md").write_text(card + "  - split: test\n    path: small/test.parquet\n---\n")
    assert len(load_source(f"hf:{root}:small").test) == 30
    with pytest.raises(ZoofitError, match="cannot be read"):
        load_source(f"hf:{root}:large")


def two_label_columns(root: Path) -> str:
    import datasets

    arrays, names = hub_data.digits({"train": 10})
    label = datasets.ClassLabel(names=names)
    features = datasets.Features({"image": datasets.Image(), "coarse": label, "fine": label})
    images = [{"bytes": hub_data.png(x), "path": None} for x in arrays["train"][0]]
    labels = arrays["train"][1].tolist()
    datasets.Dataset.from_dict({"image": images, "coarse": labels, "fine": labels}, features=features).save_to_disk(
        str(root)
    )
    return str(root)


def test_two_candidate_label_columns_are_named_and_one_can_be_chosen(tmp_path: Path) -> None:
    folder = two_label_columns(tmp_path / "two")
    with pytest.raises(ZoofitError, match=r"2 candidate label columns \(coarse, fine\); name the label column: "
                       r"hf:NAME\?label=COLUMN") as error:  # fmt: skip
        load_source(f"hf:{folder}")
    assert "\n" not in str(error.value)
    assert len(load_source(f"hf:{folder}?label=fine").train) == 10


def no_image_column(root: Path) -> str:
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["a", "b"])})
    datasets.Dataset.from_dict({"text": ["x", "y"], "label": [0, 1]}, features=features).save_to_disk(str(root))
    return str(root)


def unlabelled_split(root: Path) -> str:
    arrays, names = hub_data.digits({"train": 10, "test": 5})
    arrays["test"] = (arrays["test"][0], np.full(5, -1))  # ClassLabel's "no label", as in a competition's test set
    hub_data.hf_dataset_dict(arrays, names).save_to_disk(str(root))
    return str(root)


def empty_shard_split(root: Path) -> str:
    arrays, names = hub_data.digits({"train": 10})
    hub_data.write_shards(root, arrays, names)
    (root / "test").mkdir()
    tarfile.open(root / "test" / "0.tar", "w").close()
    return str(root)


def text_as_image(root: Path) -> str:

    arrays, names = hub_data.digits({"train": 10})
    dataset = hub_data.hf_dataset_dict(arrays, names)["train"]
    dataset.add_column("caption", [f"digit {y}" for y in arrays["train"][1]]).save_to_disk(str(root))
    return f"{root}?image=caption"


def binary_cls(root: Path) -> str:
    """Shards whose ``cls`` is an int64's 8 bytes, not text (labels 200 and up are not even UTF-8)."""
    import webdataset as wds

    arrays, _ = hub_data.digits({"train": 10})
    (root / "train").mkdir(parents=True)
    with wds.TarWriter(str(root / "train" / "0.tar")) as writer:
        for i, (image, label) in enumerate(zip(*arrays["train"], strict=True)):
            writer.write({"__key__": f"s{i:07d}", "png": hub_data.png(image), "cls": struct.pack("<q", 200 + label)})
    return str(root)


def missing_shard(root: Path) -> str:
    arrays, names = hub_data.digits({"train": 40})
    hub_data.write_shards(root, arrays, names, per_shard=20)
    (root / "train" / "1.tar").unlink()
    return str(root)


def loading_script(root: Path) -> str:
    root.mkdir()
    (root / f"{root.name}.py").write_text("import datasets  # a loading script\n")
    return str(root)


def not_a_tar(root: Path) -> str:
    (root / "train").mkdir(parents=True)
    (root / "train" / "0.tar").write_text("these are not the shards you are looking for")
    return str(root)


@pytest.mark.parametrize(
    ("make", "prefix", "message"),
    [
        (no_image_column, "hf", r"has no image column; name the image column: hf:NAME\?image=COLUMN \(its columns: text, label\)"),
        (empty_shard_split, "wds", "its test split is empty; give labelled images in every split"),
        (text_as_image, "hf", r"column 'caption' \(Value\('string'\)\) holds no images; name an Image column: image"),
        (binary_cls, "wds", r"sample 's0000000': cls is 8 bytes that are not a class as text; write cls as text"),
        (missing_shard, "wds", r"holds 1 shards but its nshards.txt says 2; copy the missing shards"),
        (loading_script, "hf", r"needs a loading script \(script.py\), and zoofit never runs a dataset's code"),
        (not_a_tar, "wds", r"shard '.*0.tar' is not a readable tar file"),
    ],
)  # fmt: skip
def test_bad_datasets_are_one_line_errors(tmp_path: Path, make, prefix: str, message: str) -> None:
    source = f"{prefix}:{make(tmp_path / 'script')}"
    with pytest.raises(ZoofitError, match=message) as error:
        load_data(source)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("hf:", "'hf:' needs a dataset"),
        ("hf:not a repo!", "neither an existing folder nor a hub repo id"),
        ("hf:org/name?colour=red", r"name columns as \?image=COLUMN&label=COLUMN"),
        ("wds:hf://just-a-name", "names no hub dataset repo; write wds:hf://ORG/NAME"),
        ("wds:/nowhere/train-{0..2}.tar", r"shard '/nowhere/train-0.tar' does not exist \(3 of 3 missing\)"),
    ],
)
def test_a_bad_hub_or_shard_name_fails_its_check_before_any_library_loads(source: str, message: str) -> None:
    with pytest.raises(ZoofitError, match=message):
        DataConfig(source).validate()


def test_checking_a_source_imports_no_heavy_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from zoofit.data.sources import check_source\n"
        "for s in ('hf:org/name', 'wds:hf://org/name'): check_source(s)\n"
        "print(sorted(m for m in ('datasets', 'webdataset', 'huggingface_hub', 'torch', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_zoofit_run_on_hf_and_wds_gives_the_result_of_the_same_images_in_a_folder(written, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tests.test_rank import write_tiny_zoo_file
    from zoofit.cli import app
    from zoofit.result import RunResult

    zoo = write_tiny_zoo_file(tmp_path)
    results = {}
    for form in ("{folder}", "hf:{parquet}", "wds:{shards}"):
        out = tmp_path / form.split(":")[0].strip("{}")
        result = CliRunner().invoke(app, ["run", "--data", form.format(**written), "--zoo", str(zoo), "--out", str(out),
                                          "--lrs", "0.01", "--steps", "5", "--batch-size", "8", "--image-size", "32",
                                          "--shift-images", "0", "--train-per-class", "6"])  # fmt: skip
        assert result.exit_code == 0, result.output
        summary = RunResult.read(out)
        fingerprint = json.loads((out / "data.json").read_text())["fingerprint"]
        results[form] = (
            fingerprint,
            summary.ensemble.test,
            summary.best_single.test,
            summary.ensemble.per_class_accuracy,
        )
    assert len(set(map(repr, results.values()))) == 1, results


def test_the_data_sources_benchmark_runs_its_smoke(tmp_path: Path) -> None:
    from benchmarks import data_sources

    report = data_sources.main(smoke=True, workdir=tmp_path, repeats=1)
    for form in ("wds", "hf"):
        figures = report["figures"][form]
        assert figures["kept_images"] == 200 and figures["build_s"] > 0 and figures["floor_s"] > 0
        assert "100 train" not in figures["splits"] and "80 train, 20 validation, 100 test" in figures["splits"]


def test_labels_match_by_name_in_splits_encoded_apart(tmp_path: Path) -> None:
    """``DatasetDict.class_encode_column`` gives each split its own ``ClassLabel``: the test split's ``class_2``
    is its number 1, the training split's ``class_1``."""
    import datasets

    arrays, _ = hub_data.digits({"train": 30, "test": 20})
    arrays["test"] = tuple(a[arrays["test"][1] % 3 != 1] for a in arrays["test"])  # no class_1 in the test split
    named = datasets.DatasetDict({
        split: datasets.Dataset.from_dict({
            "image": [{"bytes": hub_data.png(x), "path": None} for x in images],
            "label": [f"class_{y % 3}" for y in labels],
        }, features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")}))
        for split, (images, labels) in arrays.items()
    }).class_encode_column("label")  # fmt: skip
    assert named["test"].features["label"].names == ["class_0", "class_2"]
    named.save_to_disk(str(tmp_path / "apart"))
    data = load_source(f"hf:{tmp_path / 'apart'}")
    for split in ("train", "test"):
        images = getattr(data, split)
        read = [images.class_names[label] for label in images.labels]
        assert read == [f"class_{y % 3}" for y in arrays[split][1]], split


def cut_in_a_header(shard: Path, member: int) -> int:
    """Cut ``shard`` 100 bytes into the header of its ``member``-th member, as an interrupted copy would."""
    with tarfile.open(shard) as archive:
        cut = archive.getmembers()[member].offset + 100
    shard.write_bytes(shard.read_bytes()[:cut])
    return cut


@pytest.mark.parametrize("shuffled", [True, False], ids=["shuffled", "by-class"])
def test_a_shard_cut_in_a_tar_header_is_refused(tmp_path: Path, shuffled: bool) -> None:
    arrays, names = hub_data.digits({"train": 30, "test": 10})
    if not shuffled:
        arrays = by_class(arrays)
    shards = hub_data.write_shards(tmp_path / "shards", arrays, names, per_shard=30)
    cut = cut_in_a_header(shards / "train" / "0.tar", member=32)  # 16 samples whole, as 32 KiB of a shard was
    with pytest.raises(ZoofitError, match=rf"shard '.*0.tar' is cut short: it ends at byte {cut} without a tar's end"):
        load_data(f"wds:{shards}")


def test_an_unlabelled_split_is_left_out_and_counted(tmp_path: Path) -> None:
    """ImageNet's hub copy labels its test split -1: the split is not used, and --test-fraction holds one out."""
    arrays, names = hub_data.digits({"train": 40, "test": 5})
    arrays["test"] = (arrays["test"][0], np.full(5, -1))
    hub_data.hf_dataset_dict(arrays, names).save_to_disk(str(tmp_path / "unlabelled"))
    splits = load_data(f"hf:{tmp_path / 'unlabelled'}", test_fraction=0.25)
    assert len(splits.test) >= 10 and len(splits.train) + len(splits.val) + len(splits.test) == 40
    (skip,) = splits.skipped
    assert (skip.count, skip.reason, skip.examples) == (5, "rows without a label", ("row 0", "row 1", "row 2"))
    assert skip.where.endswith("unlabelled'[test]")
    assert load_data(f"hf:{tmp_path / 'unlabelled'}").test is None


def test_samples_without_a_label_and_unreadable_images_are_counted(digits, tmp_path: Path) -> None:
    import webdataset as wds

    arrays, names = digits
    shards = hub_data.write_shards(tmp_path / "shards", arrays, names)
    with wds.TarWriter(str(shards / "train" / "9.tar")) as writer:  # two images without a cls
        for i in range(2):
            writer.write({"__key__": f"x{i}", "png": hub_data.png(arrays["train"][0][i])})
    with wds.TarWriter(str(shards / "train" / "8.tar")) as writer:
        writer.write({"__key__": "broken", "png": b"not a png", "cls": b"3"})
    (shards / "train" / "nshards.txt").write_text("6")
    splits = load_data(f"wds:{shards}", val_fraction=0.5)
    assert len(splits.train) + len(splits.val) == 100
    assert [(s.count, s.reason) for s in splits.skipped] == [
        (2, "samples without an image or a cls"), (1, "unreadable images")
    ]  # fmt: skip
    assert splits.skipped[0].examples == ("x0", "x1") and "8.tar:broken" in splits.skipped[1].examples[0]


def test_the_cli_says_what_was_skipped_in_one_line(digits, tmp_path: Path) -> None:
    import webdataset as wds
    from typer.testing import CliRunner

    from tests.test_rank import write_tiny_zoo_file
    from zoofit.cli import app

    arrays, names = digits
    shards = hub_data.write_shards(tmp_path / "shards", arrays, names)
    with wds.TarWriter(str(shards / "test" / "9.tar")) as writer:
        writer.write({"__key__": "unlabelled", "png": hub_data.png(arrays["test"][0][0])})
    (shards / "test" / "nshards.txt").write_text("3")
    arguments = ["rank", "--data", f"wds:{shards}", "--zoo", str(write_tiny_zoo_file(tmp_path)), "--image-size", "32"]
    result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    line = f"skipped 1: 1 samples without an image or a cls in shard '{shards}/test/9.tar' (unlabelled)"
    assert f"\n{line}\n" in result.output
