"""Labelled image files (from a folder tree or a CSV), decoded into :class:`SourceData`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zoofit.data.dataset import ImageSet, SourceData, encode_labels, stack_if_uniform
from zoofit.data.decode import decode_many
from zoofit.data.skips import Skipped, happened
from zoofit.errors import ZoofitError
from zoofit.progress import Progress

# (path, label) pairs per split
LabelledFiles = dict[str, list[tuple[Path, str]]]


def decode_labelled_files(
    name: str, files: LabelledFiles, *, max_side: int, progress: Progress | None, skipped: Sequence[Skipped] = ()
) -> SourceData:
    """Decode every split's files, dropping unreadable ones (counted, beside the ``skipped`` the source found),
    and label them with the training classes."""
    decoded: dict[str, tuple[list[np.ndarray], list[str]]] = {}
    unreadable: list[Skipped | None] = []
    for split, entries in files.items():
        images = decode_many(
            [p for p, _ in entries], max_side=max_side, progress=progress, description=f"decoding {split} images"
        )
        kept = [(image, label) for image, (_, label) in zip(images, entries, strict=True) if image is not None]
        if not kept:
            raise ZoofitError(f"none of the {len(entries)} {split} images of '{name}' could be read")
        decoded[split] = ([image for image, _ in kept], [label for _, label in kept])
        lost = [str(path) for image, (path, _) in zip(images, entries, strict=True) if image is None]
        unreadable.append(Skipped.of(f"the {split} split of '{name}'", "unreadable images", lost))
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
        skipped=(*skipped, *happened(*unreadable)),
    )
