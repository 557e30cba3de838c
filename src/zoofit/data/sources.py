"""Data sources: each turns one kind of user input into :class:`SourceData`.

A source is named by a string: an image folder, ``csv:PATH`` (or a ``.csv`` path), a ``.npz`` path,
or the built-in ``fashion-mnist`` (``fashion-mnist:DIR`` for another location).
"""

from __future__ import annotations

import csv
import gzip
import logging
import os
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zoofit.data.dataset import ImageSet, SourceData, encode_labels, stack_if_uniform
from zoofit.data.decode import DEFAULT_MAX_SIDE, IMAGE_EXTENSIONS, decode_many, is_image_file
from zoofit.errors import ZoofitError
from zoofit.progress import Progress

log = logging.getLogger("zoofit")

SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}

_FILE_KINDS = {"csv": "CSV file", "npz": "numpy file"}  # how messages name a source file

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_ENV = "ZOOFIT_FASHION_MNIST_DIR"
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# (path, label) pairs per split
LabelledFiles = dict[str, list[tuple[Path, str]]]


def load_source(source: str, *, max_side: int = DEFAULT_MAX_SIDE, progress: Progress | None = None) -> SourceData:
    """Read the data named by ``source`` (see the module docstring for the accepted forms)."""
    kind, location = _resolve(source)
    if kind == "fashion-mnist":
        return load_fashion_mnist(location or None)
    if kind == "csv":
        return load_csv(Path(location), max_side=max_side, progress=progress)
    if kind == "npz":
        return load_npz(Path(location))
    return load_image_folder(Path(location), max_side=max_side, progress=progress)


def check_source(source: str) -> None:
    """Fail at once, before any image is read, where ``source`` names nothing there is to read."""
    kind, location = _resolve(source)
    if kind == "fashion-mnist":
        _fashion_mnist_files(location or None)
    elif not Path(location).exists():
        raise ZoofitError(f"{_FILE_KINDS[kind]} '{location}' does not exist")


def _resolve(source: str) -> tuple[str, str]:
    """``(kind, location)`` of ``source``: ``fashion-mnist`` (its folder, or empty), ``csv``, ``npz`` or
    ``folder``."""
    if source == "fashion-mnist" or source.startswith("fashion-mnist:"):
        return "fashion-mnist", source.partition(":")[2]
    if source.startswith(("csv:", "npz:")):
        return source[:3], source[4:]
    path = Path(source)
    if not path.exists():
        raise ZoofitError(
            f"data path '{source}' does not exist; give an image folder, a .csv or .npz file, or 'fashion-mnist'"
        )
    if path.suffix.lower() in (".csv", ".npz"):
        return path.suffix.lower()[1:], source
    if path.is_dir():
        return "folder", source
    raise ZoofitError(f"data path '{source}' is a file zoofit cannot read; give a folder, a .csv or a .npz file")


# ---------------------------------------------------------------- image folders


_EXTENSIONS = ", ".join(sorted(ext[1:] for ext in IMAGE_EXTENSIONS))


def load_image_folder(root: Path, *, max_side: int = DEFAULT_MAX_SIDE, progress: Progress | None = None) -> SourceData:
    """``ROOT/<class>/*`` (all training data) or ``ROOT/train/<class>/*`` with optional ``val/``, ``test/``."""
    if (root / "train").is_dir():
        files = {split: _class_folder_files(root / split) for split in SPLITS if (root / split).is_dir()}
    else:
        files = {"train": _class_folder_files(root)}
    if not files["train"]:
        raise ZoofitError(
            f"no images found in '{root}'; expected {root}/<class>/<image> or {root}/train/<class>/<image> "
            f"({_EXTENSIONS})"
        )
    return _decode_labelled_files(root.name or str(root), files, max_side=max_side, progress=progress)


def image_files(paths: Sequence[Path]) -> list[Path]:
    """``paths`` with each folder among them replaced by the image files beneath it, sorted."""
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise ZoofitError(f"image '{path}' does not exist; give image files or folders of them")
        if not path.is_dir():
            files.append(path)
        elif found := _images_under(path):
            files.extend(found)
        else:
            raise ZoofitError(f"folder '{path}' holds no images ({_EXTENSIONS}); give image files or folders of them")
    return files


def _images_under(folder: Path) -> list[Path]:
    """Image files beneath ``folder``, sorted, outside hidden folders (such as ``.ipynb_checkpoints``)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and is_image_file(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _class_folder_files(folder: Path) -> list[tuple[Path, str]]:
    files: list[tuple[Path, str]] = []
    loose = [p for p in folder.iterdir() if p.is_file() and is_image_file(p)]
    if loose:
        log.warning("ignoring %d images directly in %s: images belong in %s/<class>/", len(loose), folder, folder)
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = _images_under(class_dir)
        if not images:
            log.warning("skipping class folder %s: it has no images", class_dir)
            continue
        files.extend((path, class_dir.name) for path in images)
    return files


# ---------------------------------------------------------------- CSV


def load_csv(path: Path, *, max_side: int = DEFAULT_MAX_SIDE, progress: Progress | None = None) -> SourceData:
    """A CSV with columns ``path,label`` and optionally ``split`` (train/val/test); paths relative to it."""
    if not path.is_file():
        raise ZoofitError(f"{_FILE_KINDS['csv']} '{path}' does not exist")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    except (UnicodeDecodeError, csv.Error) as error:
        raise ZoofitError(f"CSV '{path}' is not readable UTF-8 CSV text ({error}); save it as UTF-8 CSV") from error
    missing = [c for c in ("path", "label") if c not in columns]
    if missing:
        raise ZoofitError(
            f"CSV '{path}' lacks the column(s) {', '.join(missing)}; it has [{', '.join(columns)}] "
            "and needs a header 'path,label' (optionally ',split')"
        )
    files: LabelledFiles = defaultdict(list)
    absent: list[str] = []
    for line, row in enumerate(rows, start=2):
        split = _SPLIT_ALIASES.get(row.get("split", "train").lower() or "train")
        if split is None:
            raise ZoofitError(f"CSV '{path}' line {line}: split '{row['split']}' is not one of train, val, test")
        if not row["label"]:
            raise ZoofitError(f"CSV '{path}' line {line}: the label is empty; every row needs one")
        image = Path(row["path"]) if os.path.isabs(row["path"]) else path.parent / row["path"]
        if not row["path"] or not image.is_file():
            absent.append(f"line {line}: {row['path'] or '(empty)'}")
            continue
        files[split].append((image, row["label"]))
    if absent:
        raise ZoofitError(
            f"CSV '{path}' names {len(absent)} image(s) that do not exist (e.g. {absent[0]}); "
            "paths are relative to the CSV's folder"
        )
    if not files["train"]:
        raise ZoofitError(f"CSV '{path}' has no training rows")
    return _decode_labelled_files(path.stem, dict(files), max_side=max_side, progress=progress)


def _decode_labelled_files(name: str, files: LabelledFiles, *, max_side: int, progress: Progress | None) -> SourceData:
    """Decode every split's files, dropping unreadable ones, and label them with the training classes."""
    decoded: dict[str, tuple[list[np.ndarray], list[str]]] = {}
    for split, entries in files.items():
        images = decode_many(
            [p for p, _ in entries], max_side=max_side, progress=progress, description=f"decoding {split} images"
        )
        kept = [(image, label) for image, (_, label) in zip(images, entries, strict=True) if image is not None]
        if not kept:
            raise ZoofitError(f"none of the {len(entries)} {split} images of '{name}' could be read")
        decoded[split] = ([image for image, _ in kept], [label for _, label in kept])
    class_names, train_labels, others = encode_labels(
        decoded["train"][1], **{s: decoded[s][1] if s in decoded else None for s in ("val", "test")}
    )

    def image_set(split: str, labels: np.ndarray | None) -> ImageSet | None:
        if labels is None:
            return None
        return ImageSet(stack_if_uniform(decoded[split][0]), labels, class_names)

    return SourceData(
        name,
        image_set("train", train_labels),
        image_set("val", others["val"]),
        image_set("test", others["test"]),
    )


# ---------------------------------------------------------------- numpy


def load_npz(path: Path) -> SourceData:
    """A ``.npz`` with ``x`` (uint8, N x H x W or N x H x W x C) and ``y``; optional ``x_val``/``y_val``,
    ``x_test``/``y_test`` and ``class_names``."""
    if not path.is_file():
        raise ZoofitError(f"{_FILE_KINDS['npz']} '{path}' does not exist")
    if not zipfile.is_zipfile(path):
        raise ZoofitError(f"numpy file '{path}' is not an .npz archive; write x and y with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise ZoofitError(f"cannot read numpy file '{path}': {error}") from error
    if "x" not in arrays or "y" not in arrays:
        raise ZoofitError(f"numpy file '{path}' needs arrays 'x' and 'y'; it has {sorted(arrays)}")
    given_names = arrays.get("class_names")
    splits: dict[str, tuple[np.ndarray, list[str]]] = {}
    for split, suffix in (("train", ""), ("val", "_val"), ("test", "_test")):
        x_key, y_key = "x" + suffix, "y" + suffix
        if x_key not in arrays:
            continue
        images = _check_npz_images(path, x_key, arrays[x_key])
        labels = np.asarray(arrays.get(y_key, []))
        if labels.ndim != 1 or len(labels) != len(images):
            raise ZoofitError(f"numpy file '{path}': '{y_key}' must be a vector with one label per image of '{x_key}'")
        if given_names is not None:
            if labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= len(given_names):
                raise ZoofitError(
                    f"numpy file '{path}': '{y_key}' must index 'class_names' (0..{len(given_names) - 1})"
                )
            names = [str(given_names[i]) for i in labels]
        else:
            names = [str(label) for label in labels]
        splits[split] = (images, names)
    class_names, train_labels, others = encode_labels(
        splits["train"][1], **{s: splits[s][1] if s in splits else None for s in ("val", "test")}
    )
    if given_names is not None:  # keep the user's class order and names
        order = [str(n) for n in given_names if str(n) in class_names]
        remap = np.array([order.index(n) for n in class_names])
        class_names = tuple(order)
        train_labels = remap[train_labels]
        others = {k: None if v is None else remap[v] for k, v in others.items()}
    labelled = {"train": train_labels, **others}
    sets = {s: ImageSet(splits[s][0], labelled[s], class_names) for s in splits}
    return SourceData(path.stem, sets["train"], sets.get("val"), sets.get("test"))


def _check_npz_images(path: Path, key: str, images: np.ndarray) -> np.ndarray:
    if images.dtype != np.uint8:
        raise ZoofitError(f"numpy file '{path}': '{key}' must be uint8 pixels (0..255), not {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ZoofitError(
            f"numpy file '{path}': '{key}' must be N x H x W (grey) or N x H x W x 3 (RGB), not {images.shape}"
        )
    return images


# ---------------------------------------------------------------- Fashion-MNIST


def load_fashion_mnist(directory: str | None = None) -> SourceData:
    """The 60k/10k Fashion-MNIST splits from the Debian package (or ``directory``, or $ZOOFIT_FASHION_MNIST_DIR)."""
    train_x, train_y, test_x, test_y = (_read_idx(p) for p in _fashion_mnist_files(directory))
    return SourceData(
        "fashion-mnist",
        ImageSet(train_x[..., None], train_y, FASHION_MNIST_CLASSES),
        None,
        ImageSet(test_x[..., None], test_y, FASHION_MNIST_CLASSES),
    )


def _fashion_mnist_files(directory: str | None) -> list[Path]:
    """Its four files (train images, labels, test images, labels); an error saying how to install them."""
    root = Path(directory or os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR)
    needed = [
        root / f"{split}-{kind}-ubyte.gz" for split in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")
    ]
    missing = [p.name for p in needed if not p.is_file()]
    if missing:
        raise ZoofitError(
            f"Fashion-MNIST not found in {root} (missing {', '.join(missing)}); install it with "
            f"'apt-get install -y dataset-fashion-mnist' or set {FASHION_MNIST_ENV} to its folder"
        )
    return needed


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format): big-endian magic, dimension sizes, then uint8 data."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if raw[2] != 0x08 or len(raw) - offset != int(np.prod(shape)):
        raise ZoofitError(f"{path} is not a valid uint8 IDX file; reinstall dataset-fashion-mnist")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)
