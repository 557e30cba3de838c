"""WebDataset tar shards: ``wds:LOCATION``, read with the ``webdataset`` library.

``LOCATION`` is a folder, a shard, a brace pattern (``shards/train-{000..009}.tar``) or ``hf://ORG/NAME``, a hub
dataset repo fetched into huggingface_hub's cache (offline with ``HF_HUB_OFFLINE=1``). A folder holds split
folders (``train/*.tar``, ``test/*.tar``, ``val/``: the CLIP-benchmark layout), or shards named by their split
(``train-000.tar``), or shards that are all training data; ``classnames.txt`` (one name a line) names the classes
its ``cls`` indices stand for, and a split folder's ``nshards.txt`` how many shards it holds (checked). Each sample
is an image (``webp``, ``png``, ``jpg`` or ``jpeg``) and a ``cls`` label as text (an index into ``classnames.txt``,
else the class's name), its members named as webdataset names them; a shard must end as a tar does (checked).
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
from zoofit.data.skips import Skipped, happened
from zoofit.data.sources.base import Source, joined
from zoofit.data.sources.hub_repo import hub_snapshot
from zoofit.data.sources.labels_first import SPLIT_NAMES, LabelledSplit, lazy_source_data, mapped_splits, require
from zoofit.errors import ZoofitError, first_line
from zoofit.progress import Progress

log = logging.getLogger("zoofit")

HUB_PREFIX = "hf://"
IMAGE_KEYS = ("webp", "png", "jpg", "jpeg")
LABEL_KEY = "cls"
CLASS_NAMES_FILE = "classnames.txt"
SHARD_COUNT_FILE = "nshards.txt"
_SPLIT_PREFIX = re.compile(rf"^({'|'.join(SPLIT_NAMES)})[-_.]", re.IGNORECASE)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class WebDatasetShards(Source):
    """``wds:LOCATION``: tar shards in a folder, a brace pattern, or a hub dataset repo (``wds:hf://ORG/NAME``)."""

    scheme = "wds"
    form = "wds:LOCATION"
    help = "WebDataset shards: a folder, a brace pattern or hf://ORG/NAME"

    def check(self, location: str) -> None:
        if location.startswith(HUB_PREFIX):
            _repo_id(location)
        elif not Path(location).is_dir():
            _shards(location)

    def load(self, location: str, *, max_side: int, progress: Progress | None) -> SourceData:
        return load_shards(location)

    def resolved(self, location: str, base: Path) -> str:
        if "{" in location and not Path(location).is_absolute() and (base / location).parent.is_dir():
            return str(base / location)  # a brace pattern, whose folder is there
        return joined(base, location)


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
    for split, shards in nested.items():
        _check_count(folder / split, len(shards), where)
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


def _check_count(folder: Path, found: int, where: str) -> None:
    """A split folder's shards are as many as its ``nshards.txt`` (the CLIP-benchmark layout's count) says."""
    count = folder / SHARD_COUNT_FILE
    if not count.is_file():
        return
    expected = count.read_text(encoding="utf-8").strip()
    if expected != str(found):
        raise ZoofitError(
            f"{where}: '{folder}' holds {found} shards but its {SHARD_COUNT_FILE} says {expected or 'nothing'}; "
            "copy the missing shards (or fix the count)"
        )


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
    skipped: list[Skipped] = []
    for shard in shards:
        samples, incomplete = _shard_index(shard, where)
        skipped.extend(happened(incomplete))
        for key, value, offset, size in samples:
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

    return LabelledSplit(labels, fetch, tuple(skipped))


def _shard_index(shard: str, where: str) -> tuple[list[tuple[str, bytes, int, int]], Skipped | None]:
    """Each labelled sample of ``shard``, in order: its key, its ``cls`` and where its image's bytes lie (offset,
    size); and the samples without an image or a label, skipped. Members are named and grouped into samples as
    webdataset does (``base_plus_ext``); the tar is read with random access, so an image's bytes are skipped, not
    read. A shard that is not a tar, or is cut short (see :func:`_check_end`), is a one-line error naming it."""
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
            _check_end(archive, shard)
    except (tarfile.TarError, EOFError) as error:
        raise ZoofitError(
            f"shard '{shard}' is not a readable tar file ({first_line(error)}); write shards with webdataset.TarWriter"
        ) from error
    labelled = [(key, s[LABEL_KEY], *s["image"]) for key, s in samples.items() if LABEL_KEY in s and "image" in s]
    incomplete = [key for key, s in samples.items() if LABEL_KEY not in s or "image" not in s]
    if incomplete:
        log.warning("%s: skipping %d samples of %s without an image (%s) or a %s", where,
                    len(incomplete), shard, "/".join(IMAGE_KEYS), LABEL_KEY)  # fmt: skip
    return labelled, Skipped.of(f"shard '{shard}'", f"samples without an image or a {LABEL_KEY}", incomplete)


def _check_end(archive: tarfile.TarFile, shard: str) -> None:
    """A tar ends with two zero blocks; tarfile stops quietly where a shard cut short ends in a member's header,
    as if the shard held fewer samples. Refuse that, naming the shard."""
    handle = archive.fileobj
    handle.seek(archive.offset)
    end = handle.read(2 * tarfile.BLOCKSIZE)
    if end != bytes(2 * tarfile.BLOCKSIZE):
        raise ZoofitError(
            f"shard '{shard}' is cut short: it ends at byte {archive.offset + len(end)} without a tar's end blocks "
            "(an interrupted copy?); copy or write it again"
        )


def _label(value: bytes, declared: list[str] | None, shard: str, key: str) -> str:
    """A sample's ``cls`` as its class name: text, an index into the declared class names where there are some
    (as webdataset writes ``str(index)``), else the name itself; anything else is a one-line error."""
    try:
        text = value.decode("utf-8").strip()
    except UnicodeDecodeError:
        text = None
    if text is None or not text or not text.isprintable():
        raise ZoofitError(
            f"shard '{shard}', sample '{key}': cls is {len(value)} bytes that are not a class as text; "
            "write cls as text (str(index).encode(), or the class's name)"
        )
    if declared is None:
        return text
    if not text.isdigit() or int(text) >= len(declared):
        raise ZoofitError(
            f"shard '{shard}', sample '{key}': cls '{text}' is not an index into {CLASS_NAMES_FILE} "
            f"(0..{len(declared) - 1}); fix the shard or the class names"
        )
    return declared[int(text)]
