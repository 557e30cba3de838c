"""Whether experts of other upstream tasks help: the ``offline-diverse`` zoo (the demo's five ImageNet-family
models plus the MNIST digit CNN and the Keras CIFAR-10 CNN) on Fashion-MNIST and on scikit-learn's digits.

One run per data set (the ``quick`` preset, cut to fit a shared 2-core CPU: 60 steps per trial at 64 px, 2,000 test
images drawn at random; every model fine-tuned: ``top_k=7``; ``seed_baseline=3``), then, from
the same trials: where the ranking puts the experts, whether the greedy ensemble takes them, and the ensembles
chosen without them (the demo's five) and from the ranking's top 3 (what ``quick`` fine-tunes), beside the seed
ensemble of the best trial. Writes benchmarks/results/offline_diverse-<data sets>-cpu.json.

    python benchmarks/offline_diverse.py [--data fashion-mnist,digits] [--steps 60] [--image-size 64] [--test-images 2000]
        [--work DIR] [--smoke] [--rank-only 112]

The run folders stay under ``--work`` (default: a temporary folder), so a rerun there resumes them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, save  # noqa: E402

from zoofit import Ranker, ZooFit, load_data, preset  # noqa: E402
from zoofit.ensemble.greedy import average  # noqa: E402
from zoofit.evaluate.metrics import accuracy, nll  # noqa: E402
from zoofit.pipeline import select_ensemble  # noqa: E402
from zoofit.zoo import load_zoo  # noqa: E402

EXPERTS = ("mnist_cnn", "cifar10_cnn")


def digits_npz(path: Path, train: int = 1000, seed: int = 0) -> Path:
    """scikit-learn's 1,797 8 x 8 digits (0..16 scaled to 0..255) as an .npz: ``train`` images drawn at random
    for training (the protocol splits them into train and validation), the rest for testing."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)
    order = np.random.default_rng(seed).permutation(len(images))
    first, rest = order[:train], order[train:]
    np.savez(path, x=images[first], y=digits.target[first], x_test=images[rest], y_test=digits.target[rest])
    return path


def ensemble_of(trials: list[Any], val_labels: np.ndarray, test_labels: np.ndarray, config: Any) -> dict[str, Any]:
    """The greedy ensemble over ``trials`` (chosen on validation NLL as the run does), on the test split."""
    selection = select_ensemble(trials, val_labels, config, seed=0)  # the run's seed, as ZooFit(seed=0) selects
    probs = average([trial.test_probs for trial in trials], selection.counts)
    return {
        "members": {trials[i].model: round(float(selection.weights[i]), 3) for i in selection.members},
        "test_accuracy": round(accuracy(probs, test_labels), 4),
        "test_nll": round(nll(probs, test_labels), 4),
    }


def measure(data: str, folder: Path, config: Any, test_images: int | None) -> dict[str, Any]:
    splits = load_data(data)
    if test_images is not None and splits.test is not None and len(splits.test) > test_images:
        drawn = np.sort(np.random.default_rng(0).permutation(len(splits.test))[:test_images])
        splits = replace(splits, test=splits.test.subset(drawn))
    start = time.perf_counter()
    fit = ZooFit("offline-diverse", sweep=config, cache_dir=os.environ.get("ZOOFIT_CACHE_DIR"), workers=1)
    fit.fit(splits, folder / "run")
    ranking = [(row.model, round(row.score, 4)) for row in fit.ranker_.ranking_]
    trials = fit.trials_
    val, test = splits.val.labels, splits.test.labels
    every = ensemble_of(trials, val, test, config)
    top3 = {model for model, _ in ranking[:3]}
    result = fit.result_
    return {
        "data": data,
        "seconds": round(time.perf_counter() - start, 1),
        "ranking_knn": ranking,
        "experts_rank": {expert: [m for m, _ in ranking].index(expert) + 1 for expert in EXPERTS},
        "single_test_accuracy": {t.model: round(accuracy(t.test_probs, test), 4) for t in trials},
        "ensemble_all_seven": every,
        "experts_in_ensemble": sorted(set(every["members"]) & set(EXPERTS)),
        "ensemble_demo_five": ensemble_of([t for t in trials if t.model not in EXPERTS], val, test, config),
        "ensemble_ranking_top3": ensemble_of([t for t in trials if t.model in top3], val, test, config),
        "best_single": {"model": result.best_single.model, "test_accuracy": result.best_single.test.accuracy,
                        "test_nll": result.best_single.test.nll},
        "seed_baseline_3": {"test_accuracy": result.seed_baseline.test.accuracy,
                            "test_nll": result.seed_baseline.test.nll} if result.seed_baseline else None,
    }  # fmt: skip


def ranking_only(data: str, image_size: int) -> dict[str, Any]:
    """Where the kNN ranking puts each model at ``image_size`` (the experts at their own size), no fine-tuning."""
    start = time.perf_counter()
    ranker = Ranker("offline-diverse", image_size=image_size, own_size_if_needed=True,
                    cache_dir=os.environ.get("ZOOFIT_CACHE_DIR")).fit(load_data(data))  # fmt: skip
    ranking = [(row.model, round(row.score, 4), row.input_size) for row in ranker.ranking_]
    return {"seconds": round(time.perf_counter() - start, 1), "image_size": image_size, "ranking_knn": ranking,
            "experts_rank": {expert: [m for m, *_ in ranking].index(expert) + 1 for expert in EXPERTS}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion-mnist,digits")
    parser.add_argument("--steps", type=int, default=60, help="training steps of each trial (quick: 300)")
    parser.add_argument("--image-size", type=int, default=64, help="input size of the demo's models (quick: 112)")
    parser.add_argument("--test-images", type=int, default=2000, help="test images drawn at random (all: 0)")
    parser.add_argument("--work", type=Path, help="keep the run folders here (a rerun resumes them)")
    parser.add_argument("--rank-only", type=int, metavar="PX", help="only rank, at this size (quick: 112)")
    parser.add_argument("--smoke", action="store_true", help="30 steps at batch 16 (checks the script)")
    args = parser.parse_args()
    overrides = {"top_k": 7, "steps": (args.steps,), "image_size": args.image_size, "seed_baseline": 3, "refit": False,
                 "shift_images": 0}  # fmt: skip
    if args.smoke:
        overrides.update(steps=(30,), batch_size=16)
    config = preset("quick").override(**overrides)
    assert len(load_zoo("offline-diverse")) == 7
    figures: dict[str, Any] = {"machine": describe(), "load_average_before": os.getloadavg(), "sweep": overrides,
                               "test_images": args.test_images}  # fmt: skip
    try:
        figures["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        figures["commit"] = None
    with tempfile.TemporaryDirectory(prefix="zoofit-diverse-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        for data in args.data.split(","):
            location = str(digits_npz(work / "digits.npz")) if data == "digits" else data
            if args.rank_only:
                figures[data] = ranking_only(location, args.rank_only)
            else:
                figures[data] = measure(location, work / data, config, args.test_images or None)
            figures[data]["data"] = data
            print(json.dumps(figures[data], indent=1), flush=True)
    figures["load_average_after"] = os.getloadavg()
    kind = [f"rank{args.rank_only}"] if args.rank_only else ["smoke"] if args.smoke else []
    save("-".join(["offline_diverse", *args.data.split(","), *kind]), figures)


if __name__ == "__main__":
    main()
