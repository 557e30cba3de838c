"""How to choose the images worth labelling: strategies by name (``--strategy``).

A strategy turns the pool as the ensemble sees it (:class:`Scored`) into candidates, best first: each with its
score and why it was chosen. The caller takes them in that order, skipping near-duplicates, until it has enough;
a strategy that spreads its picks (``diverse``) hears of each one as it is taken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar, Protocol

import numpy as np

from zoofit.errors import ParameterError
from zoofit.registry import Registry

#: A candidate: its index in the pool's scored images, its score (higher: label it sooner), and why.
Candidate = tuple[int, float, str]


@dataclass(frozen=True)
class Scored:
    """The pool's images as the ensemble sees them: each member's probabilities (``members`` x N x classes), the
    members' ``weights`` (summing to 1), the images' ``features`` and the labelled images' ``labelled`` features
    (unit rows, in the embedding member's pre-logit space, centred on the labelled images' mean)."""

    probs: np.ndarray
    weights: np.ndarray
    features: np.ndarray
    labelled: np.ndarray

    @cached_property
    def mean(self) -> np.ndarray:
        """The ensemble's probabilities, N x classes."""
        return np.tensordot(self.weights, self.probs, axes=1)

    @cached_property
    def entropy(self) -> np.ndarray:
        """The entropy of the ensemble's prediction (nats)."""
        return _entropy(self.mean)

    @cached_property
    def disagreement(self) -> np.ndarray:
        """The mutual information between the prediction and the member (BALD over an ensemble): the entropy of
        the average less the members' average entropy; 0 where the members agree, however unsure they are."""
        return np.maximum(self.entropy - np.tensordot(self.weights, _entropy(self.probs), axes=1), 0.0)


class Strategy(Protocol):
    name: ClassVar[str]
    help: ClassVar[str]

    def candidates(self, scored: Scored, count: int, rng: np.random.Generator) -> Iterator[Candidate]:
        """The pool's images, best first, ``count`` of them to be taken."""


#: The strategies by name; the first is the default, chosen by ``benchmarks/active_labelling.py``: the one strategy
#: ahead of ``random`` at every round (docs/suggest.md).
STRATEGIES: Registry[Strategy] = Registry("strategy")


def register(strategy: type[Strategy]) -> type[Strategy]:
    STRATEGIES.add(strategy.name, strategy())
    return strategy


@register
class Disagreement:
    name = "disagreement"
    help = (
        "the images the ensemble's members disagree on most (mutual information between the members; entropy for "
        "one member)"
    )

    def candidates(self, scored: Scored, count: int, rng: np.random.Generator) -> Iterator[Candidate]:
        yield from _ranked(*_weight(scored))


@register
class Diverse:
    name = "diverse"
    help = (
        "unsure, then spread: the 10 x count images the ensemble is least sure of (entropy, the members' "
        "disagreement included), grouped by k-means into count clusters of the embedding; each cluster's most "
        "uncertain image, the surest clusters last"
    )
    shortlist = 10  # candidates per image asked for

    def candidates(self, scored: Scored, count: int, rng: np.random.Generator) -> Iterator[Candidate]:
        # Spread by clusters, not by distance: the image farthest from every labelled one is an outlier, which a
        # label teaches little at a few hundred labels (Hacohen et al. 2022); a cluster's most uncertain image is
        # uncertain and typical of what the ensemble is unsure of (the cluster-margin idea, Citovsky et al. 2021).
        uncertainty = scored.entropy
        shortlist = np.argsort(-uncertainty, kind="stable")[: self.shortlist * count]
        clusters = _clusters(scored.features[shortlist], min(count, len(shortlist)), rng)
        firsts = {}  # each cluster's most uncertain image (the shortlist is sorted)
        for position, cluster in enumerate(clusters):
            firsts.setdefault(int(cluster), position)
        chosen = sorted(firsts.values())
        sizes = np.bincount(clusters)
        for position in chosen:
            index = int(shortlist[position])
            size = int(sizes[clusters[position]])
            yield (
                index,
                float(uncertainty[index]),
                f"{_unsure(float(uncertainty[index]))}; the most uncertain of a cluster of {size}",
            )
        rest = np.setdiff1d(np.arange(len(uncertainty)), shortlist[chosen], assume_unique=True)
        for index in rest[
            np.argsort(-uncertainty[rest], kind="stable")
        ]:  # near-duplicates skipped: more, by uncertainty
            yield int(index), float(uncertainty[index]), _unsure(float(uncertainty[index]))


@register
class Entropy:
    name = "entropy"
    help = "the images whose ensemble prediction is least certain (entropy of the averaged probabilities)"

    def candidates(self, scored: Scored, count: int, rng: np.random.Generator) -> Iterator[Candidate]:
        yield from _ranked(scored.entropy, _unsure)


@register
class Random:
    name = "random"
    help = "images drawn at random (seeded): the baseline the others are measured against"

    def candidates(self, scored: Scored, count: int, rng: np.random.Generator) -> Iterator[Candidate]:
        for index in rng.permutation(len(scored.mean)):
            yield int(index), 0.0, "drawn at random"


def check_choice(count: int, strategy: str, near_duplicate: float) -> None:
    """Raise :class:`ParameterError` for a choice :func:`choose` cannot make."""
    STRATEGIES.get(strategy)
    if count < 1:
        raise ParameterError.of("count", f"must be at least 1, not {count}")
    if not 0.0 < near_duplicate <= 1.0:
        raise ParameterError.of("near_duplicate", f"must be in (0, 1], not {near_duplicate}")


def _disagree(value: float) -> str:
    return f"members disagree (mutual information {value:.3f})"


def _unsure(value: float) -> str:
    return f"the ensemble is unsure (entropy {value:.3f} nats)"


def _weight(scored: Scored) -> tuple[np.ndarray, Callable[[float], str]]:
    """The disagreement and its words; the entropy where the ensemble has one member (which cannot disagree)."""
    return (scored.disagreement, _disagree) if len(scored.weights) > 1 else (scored.entropy, _unsure)


def _ranked(values: np.ndarray, why: Callable[[float], str]) -> Iterator[Candidate]:
    """Every image, largest ``values`` first, with ``why`` its value."""
    for index in np.argsort(-values, kind="stable"):
        yield int(index), float(values[index]), why(float(values[index]))


def _clusters(features: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Each row's cluster of ``count`` k-means clusters (one k-means++ start, seeded by ``rng``)."""
    from sklearn.cluster import KMeans

    if count <= 1:
        return np.zeros(len(features), dtype=np.int64)
    seed = int(rng.integers(2**31))
    return KMeans(count, n_init=1, random_state=seed).fit_predict(features).astype(np.int64)


def _entropy(probs: np.ndarray) -> np.ndarray:
    return -(probs * np.log(np.clip(probs, 1e-12, 1.0))).sum(axis=-1)
