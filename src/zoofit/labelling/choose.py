"""``zoofit suggest``: the unlabelled images worth labelling next, chosen with a finished run's ensemble.

The pool streams through the ensemble a chunk at a time (each member's probabilities and the embedding member's
pre-logits from one pass); images the run already holds (by content digest), exact duplicates within the pool
and unreadable files are left out and counted; the strategy orders the rest, and near-duplicates (cosine
similarity of the embedding, against the labelled images and the images already suggested) are skipped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from zoofit.data.dataset import pixel_digest
from zoofit.device import default_batch_size, resolve_device
from zoofit.ensemble import EnsembleClassifier
from zoofit.labelling.labelled import read_labelled
from zoofit.labelling.pool import Pool, PoolLike, open_pool
from zoofit.labelling.strategies import STRATEGIES, Candidate, Scored, check_choice
from zoofit.progress import Progress, SilentProgress

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
    :func:`score_pool` then :func:`choose`.

    Examples
    --------
    >>> from zoofit import suggest
    >>> chosen = suggest("runs/fm", "unlabelled/", 200)                           # doctest: +SKIP
    >>> chosen.rows[0].path, chosen.rows[0].why                                   # doctest: +SKIP
    ('unlabelled/0412.png', 'members disagree (mutual information 0.412); far from every labelled image ...')
    """
    check_choice(count, strategy, near_duplicate)  # before the pool is read
    scored = score_pool(run, pool, device=device, precision=precision, batch_size=batch_size, progress=progress)
    return choose(scored, count, strategy=strategy, near_duplicate=near_duplicate, seed=seed)


@dataclass(frozen=True)
class ScoredPool:
    """A pool as a run's ensemble sees it, to choose from by any strategy: the images to choose among
    (``scored``; ``kept``, their indices in ``pool``), and those left out, by kind."""

    pool: Pool
    scored: Scored
    kept: list[int]
    class_names: tuple[str, ...]
    in_run: int  # already in the run's data (by content)
    duplicates: int  # exact copies of an earlier pool image
    unreadable: list[int]
    seconds: float


def score_pool(
    run: str | Path,
    pool: PoolLike,
    *,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> ScoredPool:
    """Every image of ``pool`` through the ensemble of the run folder ``run``, a chunk at a time (each member's
    probabilities and the embedding member's pre-logits from one pass), but those the run holds (by content
    digest), the exact copies of an earlier pool image and the unreadable ones (warned of, by name)."""
    started = time.perf_counter()
    root = Path(run)
    classifier = EnsembleClassifier.load(root, device=device, precision=precision)
    labelled = read_labelled(root)
    images = open_pool(pool)
    batch = batch_size or default_batch_size(resolve_device(device))
    seen: set[bytes] = set()
    kept, unreadable, in_run, duplicates = [], [], 0, 0
    probs, features = [], []
    with (progress or SilentProgress()).task("scoring the pool", total=len(images)) as task:
        for start, chunk in images.chunks(CHUNK):
            batch_images = []
            for index, image in enumerate(chunk, start):
                digest = None if image is None else pixel_digest(image)
                if digest is None:
                    unreadable.append(index)
                elif digest in labelled.digests:
                    in_run += 1
                elif digest in seen:
                    duplicates += 1
                else:
                    seen.add(digest)
                    kept.append(index)
                    batch_images.append(image)
            if batch_images:
                member_probs, embedding = classifier.embed(batch_images, labelled.member, batch_size=batch)
                probs.append(np.stack(member_probs))
                features.append(embedding)
            task.advance(len(chunk))
    weights = np.array([member.weight for member in classifier.members])
    centre = labelled.features.mean(axis=0)
    shape = (len(weights), 0, len(classifier.class_names))
    scored = Scored(
        np.concatenate(probs, axis=1) if probs else np.zeros(shape),
        weights / weights.sum(),
        _unit(np.concatenate(features) - centre if features else np.zeros((0, len(centre)))),
        _unit(labelled.features - centre),
    )
    return ScoredPool(
        images, scored, kept, classifier.class_names, in_run, duplicates, unreadable, time.perf_counter() - started
    )


def choose(
    pool: ScoredPool,
    count: int,
    *,
    strategy: str = DEFAULT_STRATEGY,
    near_duplicate: float = NEAR_DUPLICATE,
    seed: int = 0,
) -> Suggestions:
    """The ``count`` images of the scored ``pool`` to label first, by ``strategy``, near-duplicates skipped."""
    check_choice(count, strategy, near_duplicate)
    started = time.perf_counter()
    scored = pool.scored
    rng = np.random.default_rng(seed)
    candidates = STRATEGIES[strategy].candidates(scored, count, rng) if pool.kept else iter(())
    taken, skipped = take_distinct(candidates, scored, count, near_duplicate)
    rows = []
    for index, value, why in taken:
        mean = scored.mean[index]
        label = int(np.argmax(mean))
        name, probability = pool.pool.name(pool.kept[index]), round(float(mean[label]), 4)
        rows.append(Suggestion(name, "", pool.class_names[label], probability, round(value, 4), why))
    return Suggestions(
        rows, strategy, len(pool.pool), pool.in_run, pool.duplicates, skipped,
        [pool.pool.name(i) for i in pool.unreadable], len(scored.weights),
        pool.seconds + time.perf_counter() - started,
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


def _relative(name: str, folder: Path) -> str:
    """``name`` relative to ``folder`` where it is a file's path, else as it is."""
    return os.path.relpath(Path(name).resolve(), folder.resolve()) if Path(name).is_file() else name


def _unit(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return (features / np.maximum(norms, 1e-12)).astype(np.float32)
