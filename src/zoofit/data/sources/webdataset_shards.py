"""WebDataset tar shards: ``wds:LOCATION``, read with the ``webdataset`` library.

``LOCATION`` is a folder, a shard, a brace pattern (``shards/train-{000..009}.tar``) or ``hf://ORG/NAME``, a hub
dataset repo fetched into huggingface_hub's cache (offline with ``HF_HUB_OFFLINE=1``). A folder holds split
folders (``train/*.tar``, ``test/*.tar``, ``val/``: the CLIP-benchmark layout), or shards named by their split
(``train-000.tar``), or shards that are all training data; ``classnames.txt`` (one name a line) names the classes
its ``cls`` indices stand for. Each sample is an image (``webp``, ``png``, ``jpg`` or ``jpeg``) and a ``cls``
label (an index into ``classnames.txt``, else the class's name). Labels are read first, in one pass over the
shards, and the images the protocol keeps are read and decoded afterwards.
"""

from __future__ import annotations

import logging
import re
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zoofit.data.dataset import SourceData
from zoofit.data.decode import EncodedImage, ImageFile
from zoofit.data.sources.base import Source
from zoofit.data.sources.labels_first import SPLIT_NAMES, LabelledSplit, lazy_source_data, mapped_splits, require
from zoofit.errors import ZoofitError, first_line
from zoofit.progress import Progress

log = logging.getLogger("zoofit")

HUB_PREFIX = "hf://"
IMAGE_KEYS = ("webp", "png", "jpg", "jpeg")
LABEL_KEY = "cls"
CLASS_NAMES_FILE = "classnames.txt"
_SPLIT_PREFIX = re.compile(rf"^({'|'.join(SPLIT_NAMES)})[-_.]", re.IGNORECASE)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class WebDatasetShards(Source):
    """``wds:LOCATION``: tar shards in a folder, a brace pattern, or a hub dataset repo (``wds:hf://ORG/NAME``)."""

    scheme = "wds"

    def check(self, location: str) -> None:
        if location.startswith(HUB_PREFIX):
            _repo_id(location)
        elif not Path(location).is_dir():
            _shards(location)

    def load(self, location: str, *, max_side: int, progress: Progress | None) -> SourceData:
        return load_shards(location)


def load_shards(location: str) -> SourceData:
    """The shards at ``location`` (see the module docstring), labels read, images left to decode."""
    where = f"shards 'wds:{location}'"
    if location.startswith(HUB_PREFIX):
        folder = _hub_snapshot(_repo_id(location), where)
        name = folder.parent.parent.name.split("--")[-1]
    elif Path(location).is_dir():
        folder, name = Path(location), Path(location).resolve().name
    else:
        folder, name = None, Path(location).stem.split("-{")[0]
    by_split = _split_shards(folder, where) if folder is not None else {"train": _shards(location)}
    declared = _class_names(folder) if folder is not None else None
    mapped = mapped_splits(list(by_split), where)
    splits = {split: _labelled(by_split[source], declared, where) for source, split in mapped.items()}
    return lazy_source_data(name, splits, where, declared)


def _repo_id(location: str) -> str:
    repo = location[len(HUB_PREFIX) :].strip("/")
    if not _REPO_ID.match(repo):
        raise ZoofitError(f"'wds:{location}' names no hub dataset repo; write wds:hf://ORG/NAME")
    return repo


def _hub_snapshot(repo: str, where: str) -> Path:
    """The local folder of the hub dataset repo ``repo``'s shards and class names, fetched into the cache."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    patterns = [CLASS_NAMES_FILE, "*.tar", "*/*.tar"]
    try:
        return Path(snapshot_download(repo, repo_type="dataset", allow_patterns=patterns))
    except RepositoryNotFoundError as error:
        raise ZoofitError(f"{where}: no hub dataset repo '{repo}' (or it is private); check its id") from error
    except LocalEntryNotFoundError as error:
        raise ZoofitError(
            f"{where} are not in the hub cache and the hub cannot be reached ({first_line(error)}); "
            "download them once online (unset HF_HUB_OFFLINE)"
        ) from error
    except (HfHubHTTPError, OSError) as error:
        raise ZoofitError(f"{where} could not be fetched from the hub: {first_line(error)}") from error


def _shards(pattern: str) -> list[str]:
    """The shard files a path or brace pattern names, each one existing."""
    paths = list(require("braceexpand", "wds:").braceexpand(pattern)) if "{" in pattern else [pattern]
    missing = [path for path in paths if not Path(path).is_file()]
    if missing:
        raise ZoofitError(
            f"shard '{missing[0]}' does not exist ({len(missing)} of {len(paths)} missing); "
            "give a folder of .tar shards, a shard, or a brace pattern such as shards/train-{000..009}.tar"
        )
    return paths


def _split_shards(folder: Path, where: str) -> dict[str, list[str]]:
    """The shards of each split of ``folder``: its split folders', else its shards grouped by their names'
    split prefix, else all of them as training data."""
    nested = {d.name: sorted(map(str, d.glob("*.tar"))) for d in sorted(folder.iterdir()) if d.is_dir()}
    nested = {split: shards for split, shards in nested.items() if shards}
    if nested:
        return nested
    shards = sorted(folder.glob("*.tar"))
    if not shards:
        raise ZoofitError(f"{where} holds no .tar shards (in it or in train/, test/ folders)")
    grouped: dict[str, list[str]] = {}
    for shard in shards:
        prefix = _SPLIT_PREFIX.match(shard.name)
        grouped.setdefault(prefix.group(1).lower() if prefix else "train", []).append(str(shard))
    return grouped


def _class_names(folder: Path) -> list[str] | None:
    path = folder / CLASS_NAMES_FILE
    if not path.is_file():
        return None
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _samples(shard: str, wanted: Callable[[str, str], bool]) -> Iterator[dict[str, Any]]:
    """The samples of one shard, in order, holding the files ``wanted(key, extension)`` accepts (the others are
    skipped unread); a shard that is not a tar is a one-line error naming it."""
    wds = require("webdataset", "wds:")
    from webdataset.tariterators import base_plus_ext

    def select(name: str) -> bool:
        key, extension = base_plus_ext(name)
        return key is not None and wanted(key, extension)

    try:
        yield from wds.WebDataset([shard], shardshuffle=False, empty_check=False, select_files=select)
    except (tarfile.TarError, EOFError, ValueError) as error:
        raise ZoofitError(
            f"shard '{shard}' is not a readable tar file ({first_line(error)}); write shards with webdataset.TarWriter"
        ) from error


def _labelled(shards: list[str], declared: list[str] | None, where: str) -> LabelledSplit:
    """A split's labels, from one pass over its shards reading their labels alone, and a reader of the images
    at chosen positions (a second pass over the shards that hold them)."""
    located: list[tuple[str, str]] = []  # (shard, key) of each labelled image
    labels: list[str] = []
    for shard in shards:
        for key, value in _shard_labels(shard, where):
            labels.append(_label(value, declared, shard, key))
            located.append((shard, key))

    def fetch(indices: np.ndarray) -> list[ImageFile]:
        wanted = {located[i]: position for position, i in enumerate(indices.tolist())}
        found: list[ImageFile] = [EncodedImage("", b"")] * len(wanted)
        for shard in dict.fromkeys(shard for shard, _ in wanted):
            keys = {key for s, key in wanted if s == shard}
            for sample in _samples(shard, lambda key, extension: extension in IMAGE_KEYS and key in keys):  # noqa: B023
                data = next(sample[key] for key in IMAGE_KEYS if key in sample)
                found[wanted[(shard, sample["__key__"])]] = EncodedImage(f"{shard}:{sample['__key__']}", data)
        return found

    return LabelledSplit(labels, fetch)


def _shard_labels(shard: str, where: str) -> list[tuple[str, bytes]]:
    """Each labelled image's key and ``cls`` in ``shard``, reading no image (a sample without one is skipped)."""
    with_image: set[str] = set()

    def label_only(key: str, extension: str) -> bool:
        if extension in IMAGE_KEYS:
            with_image.add(key)
        return extension == LABEL_KEY

    samples = [(sample["__key__"], sample[LABEL_KEY]) for sample in _samples(shard, label_only)]
    labelled = [(key, value) for key, value in samples if key in with_image]
    if len(labelled) < len(samples):
        log.warning("%s: skipping %d samples of %s without an image (%s)", where, len(samples) - len(labelled),
                    shard, "/".join(IMAGE_KEYS))  # fmt: skip
    return labelled


def _label(value: bytes, declared: list[str] | None, shard: str, key: str) -> str:
    text = value.decode("utf-8").strip()
    if declared is None:
        return text
    if not text.isdigit() or int(text) >= len(declared):
        raise ZoofitError(
            f"shard '{shard}', sample '{key}': cls '{text}' is not an index into {CLASS_NAMES_FILE} "
            f"(0..{len(declared) - 1}); fix the shard or the class names"
        )
    return declared[int(text)]
