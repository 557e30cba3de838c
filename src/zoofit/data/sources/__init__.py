"""Data sources: a registry with one entry per kind of data, each turning its string into :class:`SourceData`.

A source is named by a string of one of the forms its entry declares (``SOURCES.describe()`` lists them with their
help: an image folder, ``csv:PATH``, ``fashion-mnist``, ``hf:NAME[:CONFIG]``, ``wds:LOCATION``, ...).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from zoofit.data.dataset import SourceData
from zoofit.data.decode import DEFAULT_MAX_SIDE
from zoofit.data.sources.base import PathSource, Source, joined
from zoofit.data.sources.csv_file import CsvFile, load_csv
from zoofit.data.sources.dsprites import DSprites
from zoofit.data.sources.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    FASHION_MNIST_ENV,
    FashionMnist,
    load_fashion_mnist,
)
from zoofit.data.sources.folder import ImageFolder, image_files, load_image_folder
from zoofit.data.sources.hf_dataset import HfDataset, load_hf_dataset
from zoofit.data.sources.npz_file import NpzFile, load_npz
from zoofit.data.sources.packaged import Digits, LfwSubset
from zoofit.data.sources.scenes import Scenes
from zoofit.data.sources.webdataset_shards import WebDatasetShards, load_shards
from zoofit.errors import ZoofitError
from zoofit.progress import Progress
from zoofit.registry import Registry

#: Every source, in the order that recognises a string: first by its scheme, then (for an existing path
#: without one) by :meth:`Source.recognises`, so a ``.csv`` folder is read as a CSV file, not as a folder.
SOURCES: Registry[Source] = Registry(
    "data source",
    (
        (s.name, s)
        for s in (
            FashionMnist(),
            Digits(),
            LfwSubset(),
            DSprites(),
            Scenes(),
            HfDataset(),
            WebDatasetShards(),
            CsvFile(),
            NpzFile(),
            ImageFolder(),
        )
    ),
)


def load_source(source: str, *, max_side: int = DEFAULT_MAX_SIDE, progress: Progress | None = None) -> SourceData:
    """Read the data named by ``source`` (see the module docstring for the accepted forms)."""
    entry, location = resolve(source)
    data = entry.load(location, max_side=max_side, progress=progress)
    return replace(data, default_train_per_class=entry.default_train_per_class)


def check_source(source: str) -> None:
    """Fail at once, before any image is read, where ``source`` names nothing there is to read."""
    entry, location = resolve(source)
    entry.check(location)


def resolved(source: str, base: Path) -> str:
    """``source`` with its location seen from the folder ``base`` (a suite file's): ``hf:DIR``, ``wds:DIR`` or
    ``csv:FILE`` relative to it, as a plain path is."""
    for entry in SOURCES.values():
        location = entry.named_by(source)
        if location is not None and location:
            return f"{entry.scheme}:{entry.resolved(location, base)}"
    return joined(base, source)


def resolve(source: str) -> tuple[Source, str]:
    """The entry of :data:`SOURCES` that reads ``source``, and the location it reads."""
    for entry in SOURCES.values():
        location = entry.named_by(source)
        if location is not None:
            return entry, location
    path = Path(source)
    if not path.exists():
        raise ZoofitError(f"data path '{source}' does not exist; give one of {', '.join(SOURCES.forms())}")
    for entry in SOURCES.values():
        if entry.recognises(path):
            return entry, source
    raise ZoofitError(f"data path '{source}' is a file zoofit cannot read; give one of {', '.join(SOURCES.forms())}")


__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_ENV",
    "SOURCES",
    "CsvFile",
    "DSprites",
    "Digits",
    "FashionMnist",
    "HfDataset",
    "ImageFolder",
    "LfwSubset",
    "NpzFile",
    "PathSource",
    "Scenes",
    "Source",
    "WebDatasetShards",
    "check_source",
    "image_files",
    "load_csv",
    "load_fashion_mnist",
    "load_hf_dataset",
    "load_image_folder",
    "load_npz",
    "load_shards",
    "load_source",
    "resolve",
    "resolved",
]
