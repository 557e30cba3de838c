"""``zoofit suggest``: the unlabelled images worth labelling next, chosen with a finished run's ensemble.

The pool streams through the ensemble a chunk at a time (each member's probabilities and the embedding member's
pre-logits from one pass); images the run already holds (by content digest), exact duplicates within the pool
and unreadable files are left out and counted; the strategy orders the rest, and near-duplicates (cosine
similarity of the embedding, against the labelled images and the images already suggested) are skipped.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from zoofit.data.dataset import pixel_digest
from zoofit.device import default_batch_size, resolve_device
from zoofit.ensemble import EnsembleClassifier
from zoofit.errors import ParameterError
from zoofit.labelling.labelled import Labelled, read_labelled
from zoofit.labelling.pool import Pool, PoolLike, open_pool
from zoofit.labelling.strategies import STRATEGIES, Candidate, Scored
from zoofit.progress import Progress, SilentProgress

log = logging.getLogger("zoofit")
CHUNK = 512  # pool images decoded and scored at a time
DEFAULT_STRATEGY = STRATEGIES.names()[0]
#: Cosine similarity of two images' (centred) embeddings from which the second is a near-duplicate of the first.
NEAR_DUPLICATE = 0.98


@dataclass(frozen=True)
class Suggestion:
    """One image to label: ``path`` (a file, or ``DATA#SPLIT/INDEX``), ``label`` (empty, to fill in), the
    ensemble's ``predicted`` class and its ``probability``, the strategy's ``score`` and ``why``."""

    path: str
    label: str
    predicted: str
    probability: float
    score: float
    why: str


#: The columns of the CSV ``zoofit suggest`` writes (``path,label`` first: what ``--data FILE.csv`` reads).
CSV_COLUMNS = tuple(f.name for f in fields(Suggestion))


@dataclass(frozen=True)
class Suggestions:
    """What :func:`suggest` chose (``rows``, best first) and what it left out of the pool, counted."""

    rows: list[Suggestion]
    strategy: str
    pool: int  # images in the pool
    in_run: int  # already in the run's data (by content)
    duplicates: int  # exact copies of an earlier pool image
    near_duplicates: int  # skipped while choosing: too close to a labelled or an already suggested image
    unreadable: list[str] = field(default_factory=list)  # the files that could not be read
    members: int = 0
    seconds: float = 0.0

    @property
    def candidates(self) -> int:
        return self.pool - self.in_run - self.duplicates - len(self.unreadable)

    def describe(self) -> str:
        """One line: how many images were chosen from what, and every image left out and why."""
        unreadable = f", {len(self.unreadable)} unreadable" if self.unreadable else ""
        return (
            f"{len(self.rows)} of {self.pool} pool images suggested ({self.strategy}): {self.in_run} already in the "
            f"run, {self.duplicates} duplicates within the pool, {self.near_duplicates} near-duplicates skipped"
            f"{unreadable}; {self.seconds:.1f} s"
        )

    def csv_rows(self, folder: Path) -> list[dict[str, object]]:
        """The rows as a CSV in ``folder`` holds them: an image file's path relative to it (as ``--data FILE.csv``
        reads it)."""
        return [{**asdict(row), "path": _relative(row.path, folder)} for row in self.rows]


def suggest(
    run: str | Path,
    pool: PoolLike,
    count: int,
    *,
    strategy: str = DEFAULT_STRATEGY,
    near_duplicate: float = NEAR_DUPLICATE,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> Suggestions:
    """The ``count`` images of ``pool`` worth labelling first for the finished run folder ``run``, by
    ``strategy`` (see :data:`~zoofit.labelling.STRATEGIES`); images the run holds are never suggested, nor an image
    whose embedding is at least ``near_duplicate`` cosine-similar to a labelled or an already suggested one.

    Examples
    --------
    >>> from zoofit import suggest
    >>> chosen = suggest("runs/fm", "unlabelled/", 200)                           # doctest: +SKIP
    >>> chosen.rows[0].path, chosen.rows[0].why                                   # doctest: +SKIP
    ('unlabelled/0412.png', 'members disagree (mutual information 0.412); far from every labelled image ...')
    """
    chooser = STRATEGIES.get(strategy)
    if count < 1:
        raise ParameterError.of("count", f"must be at least 1, not {count}")
    if not 0.0 < near_duplicate <= 1.0:
        raise ParameterError.of("near_duplicate", f"must be in (0, 1], not {near_duplicate}")
    started = time.perf_counter()
    root = Path(run)
    classifier = EnsembleClassifier.load(root, device=device, precision=precision)
    chooser.check(len(classifier.members))
    labelled = read_labelled(root)
    images = open_pool(pool)
    batch = batch_size or default_batch_size(resolve_device(device))
    scores = _score(classifier, images, labelled, labelled.member, batch, progress or SilentProgress())
    weights = np.array([member.weight for member in classifier.members])
    centre = labelled.features.mean(axis=0)
    scored = Scored(
        scores.probs, weights / weights.sum(), _unit(scores.features - centre), _unit(labelled.features - centre)
    )
    candidates = chooser.candidates(scored, count, np.random.default_rng(seed)) if len(scores.kept) else iter(())
    taken, skipped = take_distinct(candidates, scored, count, near_duplicate)
    rows = []
    for index, value, why in taken:
        mean = scored.mean[index]
        label = int(np.argmax(mean))
        name, probability = images.name(scores.kept[index]), round(float(mean[label]), 4)
        rows.append(Suggestion(name, "", classifier.class_names[label], probability, round(value, 4), why))
    return Suggestions(
        rows, strategy, len(images), scores.in_run, scores.duplicates, skipped,
        [images.name(i) for i in scores.unreadable], len(classifier.members), time.perf_counter() - started,
    )  # fmt: skip


def take_distinct(
    candidates: Iterable[Candidate], scored: Scored, count: int, near_duplicate: float
) -> tuple[list[Candidate], int]:
    """The first ``count`` of ``candidates`` that are no near-duplicates (cosine similarity ``near_duplicate`` or
    more) of a labelled image or of one taken before, and how many were skipped as such."""
    labelled = (scored.features @ scored.labelled.T).max(axis=1, initial=-1.0)
    taken: list[Candidate] = []
    skipped = 0
    for candidate in candidates:
        if len(taken) == count:
            break
        index = candidate[0]
        earlier = scored.features[[t[0] for t in taken]] @ scored.features[index]
        if labelled[index] >= near_duplicate or (earlier >= near_duplicate).any():
            skipped += 1
        else:
            taken.append(candidate)
    return taken, skipped


@dataclass(frozen=True)
class _Scores:
    probs: np.ndarray  # members x N x classes of the N images to choose among
    features: np.ndarray  # N x D, their embeddings
    kept: list[int]  # their indices in the pool
    in_run: int
    duplicates: int
    unreadable: list[int]


def _score(
    classifier: EnsembleClassifier, images: Pool, labelled: Labelled, member: int, batch_size: int, progress: Progress
) -> _Scores:
    """Every pool image through the ensemble, a chunk at a time; the images left out, by kind."""
    seen: set[bytes] = set()
    kept, unreadable, in_run, duplicates = [], [], 0, 0
    probs, features = [], []
    index = 0
    with progress.task("scoring the pool", total=len(images)) as task:
        for chunk in images.chunks(CHUNK):
            batch = []
            for image in chunk:
                if image is None:
                    unreadable.append(index)
                else:
                    digest = pixel_digest(image)
                    if digest in labelled.digests:
                        in_run += 1
                    elif digest in seen:
                        duplicates += 1
                    else:
                        seen.add(digest)
                        kept.append(index)
                        batch.append(image)
                index += 1
            if batch:
                member_probs, embedding = classifier.embed(batch, member, batch_size=batch_size)
                probs.append(np.stack(member_probs))
                features.append(embedding)
            task.advance(len(chunk))
    classes, members = len(classifier.class_names), len(classifier.members)
    return _Scores(
        np.concatenate(probs, axis=1) if probs else np.zeros((members, 0, classes)),
        np.concatenate(features) if features else np.zeros((0, labelled.features.shape[1]), np.float32),
        kept, in_run, duplicates, unreadable,
    )  # fmt: skip


def _relative(name: str, folder: Path) -> str:
    """``name`` relative to ``folder`` where it is a file's path, else as it is."""
    return os.path.relpath(Path(name).resolve(), folder.resolve()) if Path(name).is_file() else name


def _unit(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return (features / np.maximum(norms, 1e-12)).astype(np.float32)
