"""What the per-image feature cache saves when labelled data grows: the demo zoo ranked on 1,000 Fashion-MNIST
training images, then on those plus 200 others (the labels a round of `zoofit suggest` adds), beside a cold
ranking of the same 1,200 images; one process, one ranking after another, at the quick preset's 112 px.

The warm and cold rankings start with the converted weights of the usual cache (linked into their own empty
caches), so both pay the same loading and differ only in the features they extract. Records each ranking's wall
time and images extracted (summed over the models), and whether the grown ranking's scores equal the cold one's.
Writes benchmarks/results/grown_data-<cpu|gpu>.json.

    python benchmarks/grown_data.py [--first 1000] [--added 200] [--image-size 112]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, save  # noqa: E402

from zoofit import Ranker  # noqa: E402
from zoofit.data import ImageSet  # noqa: E402
from zoofit.data.sources.fashion_mnist import load_fashion_mnist  # noqa: E402
from zoofit.store import cache_root  # noqa: E402


def ranked(images: ImageSet, cache: Path, image_size: int) -> dict[str, Any]:
    """Rank the demo zoo on ``images`` with ``cache``: wall time, images extracted, each model's score."""
    start = time.perf_counter()
    ranking = Ranker("demo", image_size=image_size, cache_dir=cache).fit(images).ranking_
    return {
        "images": len(images),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "images_extracted": sum(row.images_extracted for row in ranking),
        "scores": {row.model: row.score for row in ranking},
    }


def empty_cache_with_weights(folder: Path) -> Path:
    """An empty cache, the new folder ``folder``, that reads the usual cache's converted weights."""
    folder.mkdir()
    (folder / "weights").symlink_to(cache_root() / "weights", target_is_directory=True)
    return folder


def main(first: int, added: int, image_size: int) -> dict[str, Any]:
    train = load_fashion_mnist().train
    drawn = np.random.default_rng(0).choice(len(train), first + added, replace=False)
    labelled, grown = train.subset(drawn[:first]), train.subset(drawn)
    with tempfile.TemporaryDirectory(prefix="zoofit-grown-") as folder:
        warm, cold = (empty_cache_with_weights(Path(folder) / name) for name in ("warm", "cold"))
        before = ranked(labelled, warm, image_size)
        after = ranked(grown, warm, image_size)
        fresh = ranked(grown, cold, image_size)
    differences = [abs(after["scores"][model] - score) for model, score in fresh["scores"].items()]
    return {
        "zoo": "demo",
        "image_size": image_size,
        "first_ranking": before,
        "grown_ranking": after,
        "cold_ranking": fresh,
        "grown_vs_cold_speedup": round(fresh["wall_seconds"] / after["wall_seconds"], 2),
        "same_order": list(after["scores"]) == list(fresh["scores"]),
        "largest_score_difference": max(differences),
        "machine": describe(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=int, default=1000)
    parser.add_argument("--added", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=112)
    arguments = parser.parse_args()
    save("grown_data", main(arguments.first, arguments.added, arguments.image_size))
