"""Datasets written from real images (scikit-learn digits, Fashion-MNIST) in every form ``hf:`` and ``wds:`` read:
an image folder, a ``save_to_disk`` folder, parquet files, WebDataset shards, and a Hugging Face hub cache."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

#: split -> (uint8 images N x H x W, integer labels)
Arrays = dict[str, tuple[np.ndarray, np.ndarray]]


def digits(per_split: dict[str, int] | None = None, size: int = 16) -> tuple[Arrays, list[str]]:
    """scikit-learn's digits (8x8, 17 grey levels) scaled to ``size`` px: the first ``per_split[split]`` images of
    each split in turn, and the class names "0".."9"."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    grey = (bunch.images * (255 / 16)).round().astype(np.uint8)
    grey = np.stack([np.asarray(Image.fromarray(g).resize((size, size), Image.Resampling.NEAREST)) for g in grey])
    arrays, start = {}, 0
    for split, count in (per_split or {"train": 60, "test": 20}).items():
        arrays[split] = (grey[start : start + count], bunch.target[start : start + count])
        start += count
    return arrays, [str(i) for i in range(10)]


def fashion_mnist(per_split: dict[str, int]) -> tuple[Arrays, list[str]]:
    """The first ``per_split[split]`` images of Fashion-MNIST's train (``train``, ``validation``) and test split."""
    from zoofit.data.sources import FASHION_MNIST_CLASSES, load_fashion_mnist

    data = load_fashion_mnist()
    arrays, start = {}, 0
    for split, count in per_split.items():
        source = data.test if split == "test" else data.train
        offset = 0 if split == "test" else start
        arrays[split] = (source.images[offset : offset + count, ..., 0], source.labels[offset : offset + count])
        start += 0 if split == "test" else count
    return arrays, list(FASHION_MNIST_CLASSES)


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_folder(root: Path, arrays: Arrays, names: list[str]) -> Path:
    """``root/<split>/<class>/<i>.png``, the splits as an image folder names them."""
    for split, (images, labels) in arrays.items():
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            folder = root / {"validation": "val"}.get(split, split) / names[label]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:05d}.png").write_bytes(png(image))
    return root


def hf_dataset_dict(arrays: Arrays, names: list[str], image: str = "image", label: str = "label"):  # noqa: ANN201
    """A ``datasets.DatasetDict`` with an ``Image`` and a ``ClassLabel`` column."""
    import datasets

    features = datasets.Features({image: datasets.Image(), label: datasets.ClassLabel(names=names)})
    return datasets.DatasetDict({
        split: datasets.Dataset.from_dict(
            {image: [{"bytes": png(x), "path": None} for x in images], label: labels.tolist()}, features=features
        )
        for split, (images, labels) in arrays.items()
    })  # fmt: skip


def write_parquet(root: Path, dataset_dict) -> Path:  # noqa: ANN001
    """``root/data/<split>-00000-of-00001.parquet``, the hub's layout of a datasets repo."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    for split, dataset in dataset_dict.items():
        dataset.to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return root


def write_shards(root: Path, arrays: Arrays, names: list[str] | None, per_shard: int = 25, ext: str = "png") -> Path:
    """The CLIP-benchmark layout: ``root/<split>/<n>.tar`` of ``s%07d.<ext>`` + ``.cls`` samples, ``nshards.txt``,
    and ``classnames.txt`` (where ``names`` is given; else each ``cls`` is the class's name)."""
    import webdataset as wds

    for split, (images, labels) in arrays.items():
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        shards = range(0, len(images), per_shard)
        for n, start in enumerate(shards):
            with wds.TarWriter(str(folder / f"{n}.tar")) as writer:
                for i in range(start, min(start + per_shard, len(images))):
                    label = str(labels[i]) if names is not None else f"class{labels[i]}"
                    writer.write({"__key__": f"s{i:07d}", ext: encode(images[i], ext), "cls": label.encode()})
        (folder / "nshards.txt").write_text(str(len(shards)))
    if names is not None:
        (root / "classnames.txt").write_text("\n".join(names) + "\n")
    return root


def encode(image: np.ndarray, ext: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format={"jpg": "JPEG"}.get(ext, ext.upper()), lossless=True)
    return buffer.getvalue()


def write_hub_dataset_cache(cache: Path, repo: str, files: Path) -> Path:
    """The layout huggingface_hub keeps a dataset repo in: each file of the folder ``files`` a blob named by its
    hash, linked from ``snapshots/<commit>/``, which ``refs/main`` names."""
    folder = cache / f"datasets--{repo.replace('/', '--')}"
    commit = hashlib.sha1(repo.encode()).hexdigest()
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "blobs").mkdir()
    for path in sorted(p for p in files.rglob("*") if p.is_file()):
        data = path.read_bytes()
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = folder / "snapshots" / commit / path.relative_to(files)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    return folder / "snapshots" / commit
