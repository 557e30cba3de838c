"""The selection's safeguard against fitting a small validation set: where the selection, judged on validation
images it did not see, does no better than the single best candidate, the single best is delivered instead.

The gain is estimated out of bag (Efron's bootstrap of a whole procedure): the selection is run again on a
resample of the validation images (drawn with replacement) and the single best candidate chosen on the same
resample; both are scored on the images the resample left out, and the per-image differences of NLL (the single
best's minus the selection's) are pooled over the resamples. An in-sample comparison cannot see the selection's
own fit: greedy selection never loses to the single best on the images it was chosen on. Measured against
bagging and an in-sample bootstrap on cases built to overfit: ``benchmarks/selection_safeguard.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from zoofit.ensemble.greedy import Safeguard, Selection, average, greedy_select
from zoofit.evaluate import image_nll

#: The reported interval's coverage (quantiles of the resamples' mean gains).
LEVEL = 0.9
#: Resamples of the validation images, each with the selection run again.
RESAMPLES = 50


def guarded(
    select: Callable[[list[np.ndarray], np.ndarray], Selection],
    val_probs: Sequence[np.ndarray],
    labels: np.ndarray,
    *,
    seed: int = 0,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    **budget,
) -> Selection:
    """``select`` (a selection, its settings bound) on ``val_probs``, kept where its out-of-bag gain over the single
    best candidate is above 0, else that candidate alone; either way with its :class:`Safeguard`. ``budget``
    (``max_members``, ``max_gflops``, ``gflops``) bounds the single best as it bounds the selection."""
    probs = list(val_probs)
    selection = select(probs, labels)
    single = greedy_select(probs, labels, max_steps=1, **budget)
    rng = np.random.default_rng(seed)
    pooled, gains = [], []
    for _ in range(resamples):
        drawn = rng.integers(0, len(labels), len(labels))
        left_out = np.setdiff1d(np.arange(len(labels)), drawn)
        if not left_out.size:
            continue
        inside = [p[drawn] for p in probs]
        chosen = select(inside, labels[drawn]).counts
        best = greedy_select(inside, labels[drawn], max_steps=1, **budget).members[0]
        outside = [p[left_out] for p in probs]
        differences = image_nll(outside[best], labels[left_out]) - image_nll(average(outside, chosen), labels[left_out])
        pooled.append(differences)
        gains.append(differences.mean())
    gain = float(np.concatenate(pooled).mean()) if pooled else 0.0
    low, high = np.quantile(gains, [(1 - level) / 2, (1 + level) / 2]) if gains else (0.0, 0.0)
    fell_back = gain <= 0 and selection.members != single.members
    decision = Safeguard(single.members[0], gain, float(low), float(high), level, fell_back)
    return replace(single if fell_back else selection, safeguard=decision)
