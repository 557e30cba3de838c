"""Which safeguard keeps the ensemble selection from fitting a small validation set: the fallback to the single best
candidate (where the ensemble's validation NLL gain over it is within noise), bagging, or both.

The candidates are built from real numbers: a true model (random logits over 10 classes, labels drawn from its
probabilities) and 30 candidates, each the true logits plus noise, at a temperature. Two regimes:

- ``overfit``: the candidates' noise is mostly shared (correlated errors, as trials of similar models make), and a
  third of them are strongly over-confident (logits x3 to x5); ensembling gains little, and an over-confident
  candidate that happens to be right on the validation images costs dearly on the held-out ones.
- ``diverse``: independent noise, temperatures near 1; averaging cancels noise, so the ensemble truly helps (the
  safeguard must not give that up).

Each regime with 20 and 200 validation images, judged on 10,000 held-out images, over ``--seeds`` draws. Writes
benchmarks/results/selection_safeguard-cpu.json: per case and selection, the mean held-out NLL, how often it is
worse than the single best's, and how often the safeguard fell back.

    python benchmarks/selection_safeguard.py [--seeds 200]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, describe  # noqa: E402

from zoofit.ensemble import Selection, average, bagged_select, greedy_select  # noqa: E402
from zoofit.ensemble.safeguard import guarded  # noqa: E402
from zoofit.evaluate import image_nll, nll  # noqa: E402

CLASSES, CANDIDATES, HELD_OUT = 10, 30, 10_000
VALIDATION_SIZES = (20, 200)


@dataclass(frozen=True)
class Regime:
    """How candidates are drawn: the noise scale of the first (``None``: as the others) and of the others, the
    share of their noise all of them share, and how many are over-confident (logits x3 to x5; the others x0.8 to
    x1.2)."""

    first: float | None
    noise: tuple[float, float]  # the range of each candidate's noise scale
    shared: float
    confident: int


REGIMES = {
    "overfit": Regime(first=0.3, noise=(1.0, 2.5), shared=0.5, confident=CANDIDATES // 3),
    "diverse": Regime(first=None, noise=(1.0, 2.0), shared=0.0, confident=0),
}


@dataclass(frozen=True)
class Case:
    """Candidates' probabilities on validation and held-out images, with the labels."""

    val_probs: list[np.ndarray]
    val_labels: np.ndarray
    test_probs: list[np.ndarray]
    test_labels: np.ndarray


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def case(regime: str, seed: int, val_images: int, held_out: int = HELD_OUT, candidates: int = CANDIDATES) -> Case:
    """One draw of ``regime``: ``candidates`` noisy copies of a true model on ``val_images`` + ``held_out`` images."""
    rule, rng = REGIMES[regime], np.random.default_rng(seed)
    images = val_images + held_out
    truth = rng.normal(scale=2.0, size=(images, CLASSES))
    labels = (rng.random((images, 1)) > np.cumsum(_softmax(truth), axis=1)).sum(axis=1).clip(0, CLASSES - 1)
    common = rng.normal(size=(images, CLASSES))
    probs = []
    for index in range(candidates):
        own = rng.normal(size=(images, CLASSES))
        scale = rule.first if index == 0 and rule.first is not None else rng.uniform(*rule.noise)
        noise = scale * (rule.shared * common + np.sqrt(1 - rule.shared**2) * own)
        temperature = rng.uniform(3, 5) if candidates - index <= rule.confident else rng.uniform(0.8, 1.2)
        probs.append(_softmax(temperature * (truth + noise)))
    return Case([p[:val_images] for p in probs], labels[:val_images], [p[val_images:] for p in probs],
                labels[val_images:])  # fmt: skip


def _bagged(probs: list[np.ndarray], labels: np.ndarray, seed: int = 0) -> Selection:
    return bagged_select(probs, labels, seed=seed)


def in_sample(selection: Selection, probs: list[np.ndarray], labels: np.ndarray, seed: int) -> Selection:
    """The other fallback measured: the single best where the lower end of a 90% paired bootstrap interval of the
    selection's gain on the very images it was chosen on is at most 0."""
    single = greedy_select(probs, labels, max_steps=1)
    differences = image_nll(probs[single.members[0]], labels) - image_nll(average(probs, selection.counts), labels)
    draws = np.random.default_rng(seed).integers(0, len(labels), size=(2000, len(labels)))
    return single if np.quantile(differences[draws].mean(axis=1), 0.05) <= 0 else selection


#: The selections compared, by name: each from the validation probabilities, labels and a seed.
SELECTIONS: dict[str, Callable[[list[np.ndarray], np.ndarray, int], Selection]] = {
    "single best": lambda probs, labels, seed: greedy_select(probs, labels, max_steps=1),
    "greedy": lambda probs, labels, seed: greedy_select(probs, labels),
    "bagged": _bagged,
    "greedy + in-sample fallback": lambda probs, labels, seed: in_sample(
        greedy_select(probs, labels), probs, labels, seed
    ),
    "greedy + out-of-bag fallback": lambda probs, labels, seed: guarded(greedy_select, probs, labels, seed=seed),
    "bagged + out-of-bag fallback": lambda probs, labels, seed: guarded(
        functools.partial(_bagged, seed=seed), probs, labels, seed=seed
    ),
}


def held_out_nll(drawn: Case, selection: Selection) -> float:
    return nll(average(drawn.test_probs, selection.counts), drawn.test_labels)


def measure(regime: str, val_images: int, seeds: int) -> dict[str, object]:
    """Each selection's held-out NLL over ``seeds`` draws, and how it compares with the single best's."""
    scores: dict[str, list[float]] = {name: [] for name in SELECTIONS}
    fell_back: dict[str, list[bool]] = {name: [] for name in SELECTIONS if "out-of-bag" in name}
    oracle = []
    for seed in range(seeds):
        drawn = case(regime, seed, val_images)
        oracle.append(min(nll(p, drawn.test_labels) for p in drawn.test_probs))
        for name, select in SELECTIONS.items():
            selection = select(drawn.val_probs, drawn.val_labels, seed)
            scores[name].append(held_out_nll(drawn, selection))
            if selection.safeguard is not None:
                fell_back[name].append(selection.safeguard.fell_back)
    single = np.array(scores["single best"])
    return {
        "regime": regime,
        "validation_images": val_images,
        "seeds": seeds,
        "best_candidate_held_out_nll": round(float(np.mean(oracle)), 4),
        "selections": {
            name: {
                "held_out_nll": round(float(np.mean(values)), 4),
                "held_out_nll_sem": round(float(np.std(values) / np.sqrt(seeds)), 4),
                "worse_than_single_best": round(float(np.mean(np.array(values) > single + 1e-9)), 3),
                **({"fell_back": round(float(np.mean(fell_back[name])), 3)} if name in fell_back else {}),
            }
            for name, values in scores.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    args = parser.parse_args()
    start = time.perf_counter()
    cases = []
    for regime in REGIMES:
        for val_images in VALIDATION_SIZES:
            cases.append(measure(regime, val_images, args.seeds))
            print(json.dumps(cases[-1]), flush=True)
    figures = {
        "command": f"python benchmarks/selection_safeguard.py --seeds {args.seeds}",
        "seconds": round(time.perf_counter() - start, 1),
        "cases": cases,
        "machine": describe(),
    }
    path = RESULTS / "selection_safeguard-cpu.json"
    path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
