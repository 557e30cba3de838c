"""WebDataset tar shards: ``wds:LOCATION``, read with the ``webdataset`` library.

``LOCATION`` is a folder, a shard, a brace pattern (``shards/train-{000..009}.tar``) or ``hf://ORG/NAME``, a hub
dataset repo fetched into huggingface_hub's cache (offline with ``HF_HUB_OFFLINE=1``). A folder holds split
folders (``train/*.tar``, ``test/*.tar``, ``val/``: the CLIP-benchmark layout), or shards named by their split
(``train-000.tar``), or shards that are all training data; ``classnames.txt`` (one name a line) names the classes
its ``cls`` indices stand for. Each sample is an image (``webp``, ``png``, ``jpg`` or ``jpeg``) and a ``cls``
label (an index into ``classnames.txt``, else the class's name), its members named as webdataset names them.
Labels are read first, in one pass over the shards that skips the images' bytes and notes where they lie; then
only the bytes of the images the protocol keeps are read, and decoded. (webdataset's own iterator streams every
shard whole, twice here: measured 5x slower than this in ``benchmarks/data_sources.py``.)
"""

from __future__ import annotations

import logging
import re
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from zoofit.data.dataset import SourceData
from zoofit.data.decode import EncodedImage, ImageFile
from zoofit.data.sources.base import Source
from zoofit.data.sources.hub_repo import hub_snapshot
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
        folder = hub_snapshot(_repo_id(location), where, [CLASS_NAMES_FILE, "*.tar", "*/*.tar"])
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


def _labelled(shards: list[str], declared: list[str] | None, where: str) -> LabelledSplit:
    """A split's labels, from one pass over its shards that reads their labels and skips their images' bytes
    (noting where each lies), and a reader of the images at chosen positions (only their bytes are read)."""
    located: list[tuple[str, str, int, int]] = []  # (shard, key, offset, size) of each labelled image
    labels: list[str] = []
    for shard in shards:
        for key, value, offset, size in _shard_index(shard, where):
            labels.append(_label(value, declared, shard, key))
            located.append((shard, key, offset, size))

    def fetch(indices: np.ndarray) -> list[ImageFile]:
        by_shard: dict[str, list[int]] = {}
        for i in indices.tolist():
            by_shard.setdefault(located[i][0], []).append(i)
        read: dict[int, bytes] = {}
        for shard, positions in by_shard.items():
            with open(shard, "rb") as handle:
                for i in sorted(positions, key=lambda i: located[i][2]):  # in the order they lie
                    handle.seek(located[i][2])
                    read[i] = handle.read(located[i][3])
        return [EncodedImage(f"{located[i][0]}:{located[i][1]}", read[i]) for i in indices.tolist()]

    return LabelledSplit(labels, fetch)


def _shard_index(shard: str, where: str) -> list[tuple[str, bytes, int, int]]:
    """Each labelled sample of ``shard``, in order: its key, its ``cls`` and where its image's bytes lie (offset,
    size). Members are named and grouped into samples as webdataset does (``base_plus_ext``); the tar is read
    with random access, so an image's bytes are skipped, not read. A sample without an image is skipped with a
    warning; a shard that is not a tar is a one-line error naming it."""
    base_plus_ext = require("webdataset.tariterators", "wds:").base_plus_ext
    samples: dict[str, dict[str, Any]] = {}
    try:
        with tarfile.open(shard) as archive:
            for member in archive:
                key, extension = base_plus_ext(member.name) if member.isfile() else (None, None)
                if key is None:
                    continue
                sample = samples.setdefault(key, {})
                if extension == LABEL_KEY:
                    sample[LABEL_KEY] = archive.extractfile(member).read()
                elif extension in IMAGE_KEYS and "image" not in sample:
                    sample["image"] = (member.offset_data, member.size)
    except (tarfile.TarError, EOFError) as error:
        raise ZoofitError(
            f"shard '{shard}' is not a readable tar file ({first_line(error)}); write shards with webdataset.TarWriter"
        ) from error
    labelled = [(key, s[LABEL_KEY], *s["image"]) for key, s in samples.items() if LABEL_KEY in s and "image" in s]
    if len(labelled) < len(samples):
        log.warning("%s: skipping %d samples of %s without an image (%s) or a %s", where,
                    len(samples) - len(labelled), shard, "/".join(IMAGE_KEYS), LABEL_KEY)  # fmt: skip
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
