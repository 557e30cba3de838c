"""The demo with three learning rates per model, its ensemble without and with greedy soups (``--members trial,soup``).

Runs ``zoofit run --data fashion-mnist --zoo demo --lrs 0.003,0.01,0.03 --shift-images 0`` into OUT, then the
same with ``--members trial,soup`` into the same folder (which reuses every trial and adds the soups), and records each
ensemble's test accuracy, NLL, ECE, GFLOPs per image and members, the soups and the best single trial.
Writes benchmarks/results/soup_demo-<cpu|gpu>.json; OUT keeps the run (for benchmarks/export.py).

    python benchmarks/soup_demo.py [--out runs/soup-demo]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, save  # noqa: E402

from zoofit.members import member_label  # noqa: E402
from zoofit.result import RunResult  # noqa: E402

COMMAND = ["run", "--data", "fashion-mnist", "--zoo", "demo", "--lrs", "0.003,0.01,0.03", "--shift-images", "0"]


def ensemble_figures(result: RunResult) -> dict[str, Any]:
    ensemble = result.ensemble
    return {
        "test": asdict(ensemble.test),
        "val_nll": ensemble.val_nll,
        "gflops_per_image": ensemble.gflops_per_image,
        "members": [f"{member_label(m)} x{m.weight:.2f}" for m in ensemble.members],
        "forward_passes": len(ensemble.members),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/soup-demo"))
    out = parser.parse_args().out
    figures: dict[str, Any] = {"command": " ".join(["zoofit", *COMMAND, "--out", str(out)]) + " --members trial[,soup]"}
    for name, extra in (("without_soup", ["--members", "trial"]), ("with_soup", ["--members", "trial,soup"])):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "zoofit.cli", *COMMAND, *extra, "--out", str(out)], check=True)
        result = RunResult.read(out)
        figures[name] = {**ensemble_figures(result), "wall_seconds": round(time.perf_counter() - start, 1),
                         "stage_seconds": result.stage_seconds}  # fmt: skip
    figures["best_single"] = asdict(result.best_single)
    figures["soups"] = [asdict(soup) for soup in result.soups]
    save("soup_demo", {**figures, "machine": describe()})


if __name__ == "__main__":
    main()
