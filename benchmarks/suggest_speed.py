"""How fast ``zoofit suggest`` scores a large pool: 50,000 Fashion-MNIST training images (28 px) through the
ensemble of a demo-shaped run, beside the plain ensemble prediction (``predict_proba``: the forward passes any use of
the ensemble pays) of the pool's first 10,000 images in the same process, compared per image.

The run is the demo's (``quick`` preset: 112 px, the top 3 models of the demo zoo) with 5 training steps instead
of 300: the speed of scoring depends on the members' networks and resolution, not on how well they were trained.

    python benchmarks/suggest_speed.py              # writes benchmarks/results/suggest_speed-cpu.json
    python benchmarks/suggest_speed.py --pool 2000  # a shorter look
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, save  # noqa: E402

from zoofit import ZooFit, preset  # noqa: E402
from zoofit.data import DataConfig, SourceData, load_source, make_splits  # noqa: E402
from zoofit.data.protocol import stratified_per_class  # noqa: E402
from zoofit.device import default_batch_size, resolve_device  # noqa: E402
from zoofit.ensemble import EnsembleClassifier  # noqa: E402
from zoofit.labelling.choose import choose, score_pool  # noqa: E402

NAME = "suggest_speed"
BASELINE = 10_000  # images the plain prediction is timed on


def demo_shaped_run(folder: Path) -> list[str]:
    """A run with the demo's members and resolution (5 steps each) in ``folder``; its members' models."""
    source = load_source("fashion-mnist")
    initial = stratified_per_class(source.train, 100, np.random.default_rng(0))
    data = SourceData("fashion-mnist", source.train.subset(initial), test=source.test.subset(np.arange(500)))
    sweep = preset("quick").override(steps=(5,), shift_images=0)
    fitted = ZooFit("demo", sweep=sweep, seed=0, workers=1).fit(make_splits(data, DataConfig("fashion-mnist")), folder)
    return [member.model for member in fitted.result_.ensemble.members]


def main(pool_size: int) -> dict[str, object]:
    source = load_source("fashion-mnist")
    pool = source.train.subset(np.arange(len(source.train) - pool_size, len(source.train)))
    with tempfile.TemporaryDirectory(prefix="zoofit-suggest-speed-") as folder:
        run = Path(folder) / "run"
        members = demo_shaped_run(run)
        started = time.perf_counter()
        scored = score_pool(run, pool)
        scoring = time.perf_counter() - started
        started = time.perf_counter()
        chosen = choose(scored, 200)
        choosing = time.perf_counter() - started
        classifier = EnsembleClassifier.load(run)
        started = time.perf_counter()
        baseline = pool.images[:BASELINE]
        classifier.predict_proba(baseline, batch_size=default_batch_size(resolve_device("auto")))  # as score_pool
        predicting = time.perf_counter() - started
    figures = {
        "machine": describe(),
        "pool": pool_size, "image_size": 112, "members": members,
        "score_pool_seconds": round(scoring, 1), "images_per_second": round(pool_size / scoring, 1),
        "choose_200_seconds": round(choosing, 2), "strategy": chosen.strategy,
        "predict_proba_images": len(baseline), "predict_proba_seconds": round(predicting, 1),
        "predict_images_per_second": round(len(baseline) / predicting, 1),
        "scoring_over_predict_per_image": round((scoring / pool_size) / (predicting / len(baseline)), 3),
    }  # fmt: skip
    save(NAME, figures)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=50_000, help="pool images (default 50,000)")
    print(main(parser.parse_args().pool))
