"""What a run knows of its labelled images, for ``zoofit suggest``: every image's content digest (train,
validation and test), and the pre-logit features of the training images (train + validation) in the embedding
member's space, written by the run into ``labelled.safetensors`` beside its ensemble.

The embedding is the ensemble's heaviest member's pre-logits: fine-tuned on the run's classes, so distances
follow what tells the classes apart, and computed in the same pass as that member's probabilities for a pool (no
second model; no zoo needed, only the run folder). The frozen features of the ranking's top model would need the
zoo's weights at suggestion time and a second pass over the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open

from zoofit.data import Splits
from zoofit.ensemble import EnsembleClassifier
from zoofit.errors import ZoofitError, first_line
from zoofit.layout import LABELLED, MANIFEST
from zoofit.robustness import read_json
from zoofit.store import write_tensors


@dataclass(frozen=True)
class Labelled:
    """A run's images: ``digests`` (a set of 16-byte content hashes), the ``features`` (N x D) of its training
    images in the space of the ``member``-th member, and that member's trial."""

    digests: frozenset[bytes]
    features: np.ndarray
    member: int
    trial: str


def embedding_member(weights: list[float]) -> int:
    """The member whose pre-logits place images: the heaviest of the ensemble's ``weights`` (the first of equals)."""
    return int(np.argmax(weights))


def record_labelled(root: Path, splits: Splits, *, device: str, precision: str, batch_size: int) -> None:
    """Write the run folder ``root``'s ``labelled.safetensors`` for ``splits``, its ensemble already written; a
    record of the same ensemble member and images is kept as it is (a rerun rebuilds no model)."""
    entries = ensemble_entries(root)
    member = embedding_member([float(entry["weight"]) for entry in entries])
    trial = entries[member]["trial"]
    digests = np.concatenate([split.digests() for split in (splits.train, splits.val, splits.test) if split])
    if _recorded(root / LABELLED, trial, digests):
        return
    classifier = EnsembleClassifier.load(root, device=device, precision=precision)
    features = classifier.features(splits.ranking_set.images, member, batch_size=batch_size)
    tensors = {"digests": torch.from_numpy(digests), "features": torch.from_numpy(features.astype(np.float32))}
    write_tensors(root / LABELLED, tensors, {"member": str(member), "trial": trial})


def _recorded(path: Path, trial: str, digests: np.ndarray) -> bool:
    """Whether ``path`` already records ``trial``'s features of the images whose content ``digests`` are given."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            same_member = (handle.metadata() or {}).get("trial") == trial
            return same_member and np.array_equal(handle.get_tensor("digests").numpy(), digests)
    except (SafetensorError, OSError):
        return False


def read_labelled(root: Path) -> Labelled:
    """The record of the run folder ``root``; a one-line error where it is missing (a run of an older zoofit) or
    was written for another ensemble than the folder's."""
    trial_keys = [entry["trial"] for entry in ensemble_entries(root)]
    path = Path(root) / LABELLED
    redo = f"run 'zoofit run' into '{root}' again (it resumes: nothing is trained again)"
    if not path.is_file():
        raise ZoofitError(f"run folder '{root}' has no {LABELLED} (which images it holds); {redo}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            digests, features = handle.get_tensor("digests").numpy(), handle.get_tensor("features").numpy()
        member, trial = int(meta["member"]), meta["trial"]
    except (SafetensorError, OSError, KeyError, ValueError) as error:
        raise ZoofitError(f"run folder '{root}' has an unreadable {LABELLED} ({first_line(error)}); {redo}") from error
    if not 0 <= member < len(trial_keys) or trial_keys[member] != trial:
        raise ZoofitError(f"run folder '{root}': {LABELLED} was written for another ensemble; {redo}")
    return Labelled(frozenset(bytes(row) for row in digests), features, member, trial)


def ensemble_entries(root: Path) -> list[dict]:
    """The manifest entries of the run folder ``root``'s ensemble, in its manifest's order."""
    return read_json(Path(root) / MANIFEST, f"run folder '{root}'")["members"]
