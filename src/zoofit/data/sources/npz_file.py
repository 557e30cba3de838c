"""Numpy files: ``x`` and ``y`` (and optionally ``x_val``/``y_val``, ``x_test``/``y_test``, ``class_names``)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from zoofit.data.dataset import ImageSet, SourceData, encode_labels
from zoofit.data.sources.base import PathSource
from zoofit.errors import ZoofitError
from zoofit.progress import Progress


class NpzFile(PathSource):
    """``npz:PATH``, or a path ending in ``.npz``; its images are already decoded."""

    scheme = "npz"
    form = "npz:PATH or *.npz"
    help = "decoded images in a numpy file: x, y (and x_val, y_val, x_test, y_test, class_names)"
    noun = "numpy file"
    suffixes = (".npz",)

    def load(self, location: str, *, max_side: int, progress: Progress | None) -> SourceData:
        return load_npz(Path(location))


def load_npz(path: Path) -> SourceData:
    """A ``.npz`` with ``x`` (uint8, N x H x W or N x H x W x C) and ``y``; optional ``x_val``/``y_val``,
    ``x_test``/``y_test`` and ``class_names``."""
    if not path.is_file():
        raise ZoofitError(f"{NpzFile.noun} '{path}' does not exist")
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
        images = _check_images(path, x_key, arrays[x_key])
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
    class_names, train_labels, others = encode_labels(  # in the user's class order, where given
        splits["train"][1],
        order=None if given_names is None else [str(n) for n in given_names],
        **{s: splits[s][1] if s in splits else None for s in ("val", "test")},
    )
    labelled = {"train": train_labels, **others}
    sets = {s: ImageSet(splits[s][0], labelled[s], class_names) for s in splits}
    return SourceData(path.stem, sets["train"], sets.get("val"), sets.get("test"))


def _check_images(path: Path, key: str, images: np.ndarray) -> np.ndarray:
    if images.dtype != np.uint8:
        raise ZoofitError(f"numpy file '{path}': '{key}' must be uint8 pixels (0..255), not {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ZoofitError(
            f"numpy file '{path}': '{key}' must be N x H x W (grey) or N x H x W x 3 (RGB), not {images.shape}"
        )
    return images
