"""Image folders: ``ROOT/<class>/<image>``, or ``ROOT/train/<class>/<image>`` with optional ``val/`` and ``test/``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from zoofit.data.dataset import SourceData
from zoofit.data.decode import DEFAULT_MAX_SIDE, IMAGE_EXTENSIONS, is_image_file
from zoofit.data.skips import Skipped, happened
from zoofit.data.sources.base import PathSource
from zoofit.data.sources.labelled import decode_labelled_files
from zoofit.errors import ZoofitError
from zoofit.progress import Progress

log = logging.getLogger("zoofit")

SPLITS = ("train", "val", "test")
_EXTENSIONS = ", ".join(sorted(ext[1:] for ext in IMAGE_EXTENSIONS))


class ImageFolder(PathSource):
    """Any folder (given without a scheme): one subfolder per class, or per split and then per class."""

    noun = "image folder"
    form = "FOLDER"
    help = "an image folder: FOLDER/<class>/<image>, or FOLDER/train/<class>/<image> with val/ and test/"

    def recognises(self, path: Path) -> bool:
        return path.is_dir()

    def load(self, location: str, *, max_side: int, progress: Progress | None) -> SourceData:
        return load_image_folder(Path(location), max_side=max_side, progress=progress)


def load_image_folder(root: Path, *, max_side: int = DEFAULT_MAX_SIDE, progress: Progress | None = None) -> SourceData:
    """``ROOT/<class>/*`` (all training data) or ``ROOT/train/<class>/*`` with optional ``val/``, ``test/``."""
    folders = (
        {split: root / split for split in SPLITS if (root / split).is_dir()}
        if (root / "train").is_dir()
        else {"train": root}
    )
    files = {split: _class_folder_files(folder) for split, folder in folders.items()}
    loose = happened(*(_loose_images(folder) for folder in folders.values()))
    if not files["train"]:
        raise ZoofitError(
            f"no images found in '{root}'; expected {root}/<class>/<image> or {root}/train/<class>/<image> "
            f"({_EXTENSIONS})"
        )
    return decode_labelled_files(root.name or str(root), files, max_side=max_side, progress=progress, skipped=loose)


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
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = _images_under(class_dir)
        if not images:
            log.warning("skipping class folder %s: it has no images", class_dir)
            continue
        files.extend((path, class_dir.name) for path in images)
    return files


def _loose_images(folder: Path) -> Skipped | None:
    """The images directly in ``folder``, which has class folders: they have no class, so they are left out."""
    loose = sorted(p.name for p in folder.iterdir() if p.is_file() and is_image_file(p))
    if loose:
        log.warning("ignoring %d images directly in %s: images belong in %s/<class>/", len(loose), folder, folder)
    return Skipped.of(f"'{folder}'", "images outside a class folder", loose)
