"""Fault injection: every source kind's container cut short at 20 seeded byte offsets (an interrupted copy) either
reads completely or is one line of error; where a source skips what it cannot read, it says how many. Never a
shorter dataset without a word."""

from __future__ import annotations

import gzip
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests import hub_data
from zoofit.data import load_source
from zoofit.errors import ZoofitError

CUTS = 20

#: kind -> (writes the container into a folder and returns its --data string, the file of it to cut)
Writer = Callable[[Path, hub_data.Arrays, list[str]], tuple[str, Path]]


def saved(root: Path, arrays: hub_data.Arrays, names: list[str]) -> tuple[str, Path]:
    hub_data.hf_dataset_dict(arrays, names).save_to_disk(str(root), max_shard_size="4KB")
    return f"hf:{root}", max(root.glob("train/*.arrow"), key=lambda p: p.stat().st_size)


def parquet(root: Path, arrays: hub_data.Arrays, names: list[str]) -> tuple[str, Path]:
    hub_data.write_parquet(root, hub_data.hf_dataset_dict(arrays, names))
    return f"hf:{root}", root / "data" / "train-00000-of-00001.parquet"


def shards(root: Path, arrays: hub_data.Arrays, names: list[str]) -> tuple[str, Path]:
    hub_data.write_shards(root, arrays, names, per_shard=40)
    return f"wds:{root}", root / "train" / "0.tar"


def npz(root: Path, arrays: hub_data.Arrays, names: list[str]) -> tuple[str, Path]:
    root.mkdir(parents=True)
    (x, y), (x_test, y_test) = arrays["train"], arrays["test"]
    np.savez(root / "digits.npz", x=x, y=y, x_test=x_test, y_test=y_test, class_names=np.array(names))
    return str(root / "digits.npz"), root / "digits.npz"


def folder(root: Path, arrays: hub_data.Arrays, names: list[str]) -> tuple[str, Path]:
    hub_data.write_folder(root, arrays, names)
    return str(root), sorted((root / "train").rglob("*.png"))[7]


def idx(root: Path, arrays: hub_data.Arrays, names: list[str]) -> tuple[str, Path]:
    """Fashion-MNIST's form: gzipped IDX files (big-endian magic and sizes, then the bytes)."""
    root.mkdir(parents=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        for kind, array in (("images-idx3", arrays[split][0]), ("labels-idx1", arrays[split][1].astype(np.uint8))):
            header = bytes([0, 0, 8, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
            with gzip.open(root / f"{prefix}-{kind}-ubyte.gz", "wb") as handle:
                handle.write(header + array.tobytes())
    return f"fashion-mnist:{root}", root / "train-images-idx3-ubyte.gz"


KINDS: dict[str, Writer] = {
    "hf-saved": saved, "hf-parquet": parquet, "wds": shards, "npz": npz, "folder": folder, "fashion-mnist": idx
}  # fmt: skip


def read_all(source: str) -> tuple[dict[str, list[str]], int]:
    """Each split's labels by name, every image decoded, and how many items the source and decoding skipped."""
    data = load_source(source, max_side=64)
    labels, skipped = {}, sum(s.count for s in data.skipped)
    for split in ("train", "val", "test"):
        images = getattr(data, split)
        if images is None:
            continue
        decoded, unreadable = images.decoded(split, 64)
        skipped += unreadable.count if unreadable else 0
        labels[split] = [decoded.class_names[label] for label in decoded.labels]
    return labels, skipped


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path: Path, monkeypatch) -> None:
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")


@pytest.mark.parametrize("kind", KINDS)
def test_a_container_cut_short_reads_whole_or_fails_in_one_line(kind: str, tmp_path: Path) -> None:
    arrays, names = hub_data.digits({"train": 40, "test": 10}, size=8)
    source, target = KINDS[kind](tmp_path / "whole", arrays, names)
    whole, none_skipped = read_all(source)
    assert none_skipped == 0 and len(whole["train"]) == 40
    size = target.stat().st_size
    outcomes = []
    for cut in sorted(random.Random(kind).sample(range(size), CUTS)):
        copy = tmp_path / f"cut-{cut}"
        shutil.copytree(tmp_path / "whole", copy, symlinks=True)
        (copy / target.relative_to(tmp_path / "whole")).write_bytes(target.read_bytes()[:cut])
        try:
            read, skipped = read_all(source.replace(str(tmp_path / "whole"), str(copy)))
        except ZoofitError as error:
            assert "\n" not in str(error), (cut, str(error))
            outcomes.append("error")
            continue
        lost = sum(len(labels) for labels in whole.values()) - sum(len(labels) for labels in read.values())
        assert lost == skipped, f"{kind} cut at {cut} of {size} bytes: {lost} items lost, {skipped} said"
        outcomes.append("skipped" if skipped else "whole")
        if not skipped:
            assert read == whole, (kind, cut)
    assert outcomes.count("error") + outcomes.count("skipped") >= CUTS // 2, outcomes  # the cuts were seen
