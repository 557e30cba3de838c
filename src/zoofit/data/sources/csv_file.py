"""CSV files: columns ``path,label`` and optionally ``split``, each path relative to the CSV's folder."""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path

from zoofit.data.dataset import SourceData
from zoofit.data.decode import DEFAULT_MAX_SIDE
from zoofit.data.sources.base import PathSource
from zoofit.data.sources.labelled import LabelledFiles, decode_labelled_files
from zoofit.errors import ZoofitError
from zoofit.progress import Progress

_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


class CsvFile(PathSource):
    """``csv:PATH``, or a path ending in ``.csv``."""

    scheme = "csv"
    form = "csv:PATH or *.csv"
    help = "a CSV file of path,label (and split) rows, each path relative to the file"
    noun = "CSV file"
    suffixes = (".csv",)

    def load(self, location: str, *, max_side: int, progress: Progress | None) -> SourceData:
        return load_csv(Path(location), max_side=max_side, progress=progress)


def load_csv(path: Path, *, max_side: int = DEFAULT_MAX_SIDE, progress: Progress | None = None) -> SourceData:
    """A CSV with columns ``path,label`` and optionally ``split`` (train/val/test); paths relative to it."""
    if not path.is_file():
        raise ZoofitError(f"{CsvFile.noun} '{path}' does not exist")
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
    return decode_labelled_files(path.stem, dict(files), max_side=max_side, progress=progress)
