"""Figures of the ranking demo: `zoofit rank --data fashion-mnist --zoo demo` at the models' own resolution.

Fresh cache (weights fetched and converted, features extracted). Records wall time and each model's score (by
default its 1-NN cosine leave-one-out accuracy) on the 1,000 Fashion-MNIST training images, the correctness check
of weights, conversion and preprocessing (expected 0.74-0.85). Writes benchmarks/results/demo_rank-<cpu|gpu>.json.

    python benchmarks/demo_rank.py [--precision fp32] [other zoofit rank options...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import run_fresh, save  # noqa: E402


def read_ranking(out: Path) -> dict[str, Any]:
    rows = json.loads((out / "ranking.json").read_text())["ranked"]
    keys = ("proxy", "score", "input_size", "images_per_second", "seconds")
    return {"ranking": {row["model"]: {key: row[key] for key in keys} for row in rows}}


if __name__ == "__main__":
    options = sys.argv[1:]
    figures = run_fresh(["rank", "--data", "fashion-mnist", "--zoo", "demo", *options], read_ranking)
    precision = options[options.index("--precision") + 1] if "--precision" in options else "auto"
    save(f"demo_rank-{precision}", figures)
