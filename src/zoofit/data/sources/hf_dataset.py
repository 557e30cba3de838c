"""Hugging Face datasets: ``hf:NAME[:CONFIG][?image=COLUMN&label=COLUMN]``, read with the ``datasets`` library.

``NAME`` is a local folder (one ``save_to_disk`` wrote, or of parquet/arrow files) or a hub dataset repo
(``ORG/NAME``), which is fetched into huggingface_hub's cache once and read from there (offline with
``HF_HUB_OFFLINE=1``). The image column is the one ``Image`` feature and the label column the one ``ClassLabel``
(whose names become the class names; else the one string column); ``?image=``/``?label=`` name them where there
are several. A dataset's own code is never run: one that needs a loading script is refused.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from zoofit.data.dataset import SourceData
from zoofit.data.decode import EncodedImage, ImageFile
from zoofit.data.skips import Skipped
from zoofit.data.sources.base import Source, joined
from zoofit.data.sources.hub_repo import hub_snapshot
from zoofit.data.sources.labels_first import LabelledSplit, lazy_source_data, mapped_splits, require
from zoofit.errors import ZoofitError, first_line
from zoofit.progress import Progress

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_COLUMNS = ("image", "label")


class HfDataset(Source):
    """``hf:NAME[:CONFIG][?image=COLUMN&label=COLUMN]``: a local dataset folder or a hub dataset repo."""

    scheme = "hf"
    form = "hf:NAME[:CONFIG]"
    help = "a Hugging Face dataset, hub repo or local folder (?image=COL&label=COL names its columns)"

    def check(self, location: str) -> None:
        _parse(location)

    def resolved(self, location: str, base: Path) -> str:
        body, mark, query = location.partition("?")
        if not (base / body).exists() and ":" in body:  # NAME:CONFIG
            name, config = body.rsplit(":", 1)
            return f"{joined(base, name)}:{config}{mark}{query}"
        return f"{joined(base, body)}{mark}{query}"

    def load(self, location: str, *, max_side: int, progress: Progress | None) -> SourceData:
        name, config, columns = _parse(location)
        return load_hf_dataset(name, config, image=columns.get("image"), label=columns.get("label"))


def load_hf_dataset(
    name: str, config: str | None = None, *, image: str | None = None, label: str | None = None
) -> SourceData:
    """The dataset ``name`` (a local folder or a hub repo id), its ``config`` where it has several, with its labels
    read and its images left to decode (only those the protocol keeps)."""
    datasets = require("datasets", "hf:")

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    where = f"hf dataset '{name}'"
    folder = Path(name) if Path(name).exists() else hub_snapshot(name, where)
    scripts = sorted(p.name for p in folder.glob("*.py"))
    if scripts:
        raise ZoofitError(
            f"{where} needs a loading script ({', '.join(scripts)}), and zoofit never runs a dataset's code; "
            "give its parquet files (the hub's refs/convert/parquet branch) or a save_to_disk folder"
        )
    loaded = _open(folder, config, where)
    by_split = loaded if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    mapped = mapped_splits(list(by_split), where)
    first = by_split[next(iter(mapped))]
    image = _column(first.features, image, "image", datasets.Image, where)
    label, declared = _label_column(first.features, label, where)
    splits = {split: _labelled(by_split[source], image, label, f"{where}[{source}]")
              for source, split in mapped.items()}  # fmt: skip
    return lazy_source_data(folder.name if folder.name else name, splits, where, declared)


def _parse(location: str) -> tuple[str, str | None, dict[str, str]]:
    """``NAME``, ``CONFIG`` (or None) and the named columns of ``NAME[:CONFIG][?image=COL&label=COL]``."""
    body, _, query = location.partition("?")
    columns = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(columns) - set(_COLUMNS))
    if unknown or not all(columns.values()):
        raise ZoofitError(f"'hf:{location}': name columns as ?image=COLUMN&label=COLUMN, not '{query}'")
    name, config = body, None
    if not Path(body).exists() and ":" in body:
        name, config = body.rsplit(":", 1)
    if not name:
        raise ZoofitError("'hf:' needs a dataset: hf:ORG/NAME (a hub repo), or hf:FOLDER (save_to_disk or parquet)")
    if not Path(name).exists() and not _REPO_ID.match(name):
        raise ZoofitError(
            f"hf dataset '{name}' is neither an existing folder nor a hub repo id (ORG/NAME); check the spelling"
        )
    return name, config or None, columns


def _open(folder: Path, config: str | None, where: str) -> Any:
    """The dataset (or dict of splits) in ``folder``: as ``save_to_disk`` wrote it, or its data files."""
    import datasets

    saved = (folder / datasets.config.DATASETDICT_JSON_FILENAME).exists() or (
        folder / datasets.config.DATASET_STATE_JSON_FILENAME
    ).exists()
    try:
        if saved:
            if config is not None:
                raise ZoofitError(
                    f"{where} is a save_to_disk folder, which has no configurations; leave out ':{config}'"
                )
            _check_arrow_files(folder, where)
            return datasets.load_from_disk(str(folder))
        return datasets.load_dataset(str(folder), config)
    except ZoofitError:
        raise
    except (ValueError, OSError, RuntimeError, datasets.exceptions.DatasetsError) as error:  # pyarrow's too
        raise ZoofitError(f"{where} cannot be read: {first_line(error)}") from error


#: How an arrow stream ends (a continuation marker and a zero length): what ``save_to_disk``'s writer closes with.
_ARROW_END = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def _check_arrow_files(folder: Path, where: str) -> None:
    """Each arrow file a ``save_to_disk`` folder's ``state.json`` lists exists and ends as a closed arrow stream
    does: one cut short between its record batches would read as fewer rows."""
    for state in sorted(folder.rglob("state.json")):
        files = json.loads(state.read_text(encoding="utf-8")).get("_data_files", [])
        for path in (state.parent / entry["filename"] for entry in files):
            with open(path, "rb") as handle:  # a missing file is the caller's one-line error
                handle.seek(max(0, path.stat().st_size - len(_ARROW_END)))
                if handle.read() != _ARROW_END:
                    raise ZoofitError(
                        f"{where}: '{path}' is cut short (an arrow stream ends with its end marker); copy it again"
                    )


def _column(features: dict[str, Any], named: str | None, role: str, kind: type, where: str) -> str:
    """The column of ``kind`` (``named`` where given): the one there is, else a one-line error listing them."""
    candidates = [column for column, feature in features.items() if isinstance(feature, kind)]
    if named is not None:
        if named not in features:
            raise ZoofitError(f"{where} has no column '{named}' (it has {', '.join(features)}); name another")
        if role == "image" and not isinstance(features[named], kind):
            others = f": {', '.join(candidates)}" if candidates else ""
            raise ZoofitError(
                f"{where}: column '{named}' ({_kind(features[named])}) holds no images; name an Image column{others}"
            )
        return named
    if len(candidates) == 1:
        return candidates[0]
    found = (
        f"{len(candidates)} candidate {role} columns ({', '.join(candidates)})" if candidates else f"no {role} column"
    )
    return _ambiguous(where, found, role, list(features))


def _label_column(features: dict[str, Any], named: str | None, where: str) -> tuple[str, list[str] | None]:
    """The label column (a ``ClassLabel``, else the one string column) and its declared class names."""
    import datasets

    if named is None and not any(isinstance(f, datasets.ClassLabel) for f in features.values()):
        strings = [
            c for c, f in features.items() if isinstance(f, datasets.Value) and f.dtype in ("string", "large_string")
        ]
        if len(strings) != 1:
            found = f"{len(strings)} candidate label columns ({', '.join(strings)})" if strings else "no label column"
            _ambiguous(where, found, "label", list(features))
        named = strings[0]
    column = _column(features, named, "label", datasets.ClassLabel, where)
    feature = features[column]
    if isinstance(feature, datasets.ClassLabel):
        return column, list(feature.names)
    if not isinstance(feature, datasets.Value) or feature.dtype not in (
        "string",
        "large_string",
        "int64",
        "int32",
        "int16",
        "int8",
    ):
        raise ZoofitError(
            f"{where}: column '{column}' ({feature}) holds no class labels; name a ClassLabel, string or integer column"
        )
    return column, None


def _kind(feature: Any) -> str:
    """A column's feature as a message names it: ``Value('string')``, ``Image``."""
    return f"Value('{feature.dtype}')" if hasattr(feature, "dtype") else type(feature).__name__


def _ambiguous(where: str, found: str, role: str, columns: list[str]) -> str:
    raise ZoofitError(
        f"{where} has {found}; name the {role} column: hf:NAME?{role}=COLUMN (its columns: {', '.join(columns)})"
    )


def _labelled(split: Any, image: str, label: str, where: str) -> LabelledSplit:
    """A split's labels (read from its label column alone), each by its name in this split's own ``ClassLabel``
    (splits encoded apart number their classes apart), and a reader of its images' bytes (decoded later). Rows
    without a label (None, or a ``ClassLabel``'s -1) are left out, counted."""
    import datasets

    feature = split.features.get(label)
    if feature is None:
        raise ZoofitError(f"{where} has no column '{label}' (it has {', '.join(split.features)}); name another")
    names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    values = split.select_columns([label]).with_format("arrow")[:][label].to_pylist()
    unlabelled = [i for i, v in enumerate(values) if v is None or (names is not None and v < 0)]
    if names is not None and (beyond := [v for v in values if v is not None and v >= len(names)]):
        raise ZoofitError(
            f"{where}: label {beyond[0]} is beyond its ClassLabel's {len(names)} names; fix the column's names"
        )
    rows = np.setdiff1d(np.arange(len(values)), unlabelled)
    labels = [names[values[i]] if names is not None else str(values[i]) for i in rows]
    images = split.select_columns([image]).with_format("arrow")

    def fetch(indices: np.ndarray) -> list[ImageFile]:
        if not len(indices):
            return []
        cells = images[rows[indices].tolist()][image].to_pylist()
        return [_image_file(cell, f"{where}[{row}]") for cell, row in zip(cells, rows[indices], strict=True)]

    skipped = Skipped.of(where, "rows without a label", [f"row {i}" for i in unlabelled])
    return LabelledSplit(labels, fetch, (skipped,) if skipped else ())


def _image_file(cell: dict[str, Any] | None, name: str) -> ImageFile:
    """An ``Image`` cell (its bytes, or the path of its file) as what :func:`~zoofit.data.decode.decode_image`
    reads; an empty cell reads as an unreadable image."""
    if cell and cell.get("bytes"):
        return EncodedImage(name, cell["bytes"])
    if cell and cell.get("path"):
        return Path(cell["path"])
    return EncodedImage(name, b"")
