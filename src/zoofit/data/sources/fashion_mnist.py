"""Fashion-MNIST, built in: ``fashion-mnist`` (the Debian package's files) or ``fashion-mnist:DIR``."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from zoofit.data.dataset import ImageSet, SourceData
from zoofit.data.sources.base import Source
from zoofit.errors import ZoofitError, first_line
from zoofit.progress import Progress

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


class FashionMnist(Source):
    """The 60k/10k splits; its protocol mirrors VTAB-1k (100 training images per class)."""

    scheme = "fashion-mnist"
    form = "fashion-mnist[:DIR]"
    help = "Fashion-MNIST (its 60k/10k splits; 100 training images per class, as VTAB-1k)"
    bare = True
    default_train_per_class = 100

    def check(self, location: str) -> None:
        _fashion_mnist_files(location or None)

    def load(self, location: str, *, max_side: int, progress: Progress | None) -> SourceData:
        return load_fashion_mnist(location or None)


def load_fashion_mnist(directory: str | None = None) -> SourceData:
    """The 60k/10k Fashion-MNIST splits from the Debian package (or ``directory``, or $ZOOFIT_FASHION_MNIST_DIR)."""
    train_x, train_y, test_x, test_y = (_read_idx(p) for p in _fashion_mnist_files(directory))
    for images, labels, split in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
        if len(images) != len(labels):
            raise ZoofitError(
                f"Fashion-MNIST's {split} files hold {len(images)} images but {len(labels)} labels; reinstall them"
            )
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
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:  # a file cut short ends before gzip's end-of-stream marker
        raise ZoofitError(f"{path} cannot be read ({first_line(error)}); reinstall dataset-fashion-mnist") from error
    ndim = raw[3] if len(raw) > 3 else 0  # one too short for its header fails the check below
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(raw) < 4 or raw[2] != 0x08 or len(raw) - offset != int(np.prod(shape)):
        raise ZoofitError(f"{path} is not a valid uint8 IDX file; reinstall dataset-fashion-mnist")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)
