"""End-to-end figures of the README demo: `zoofit run --data fashion-mnist --zoo demo` with the default preset.

Runs the command in a fresh run folder and a fresh cache (so it includes fetching and converting the demo
weights and every feature extraction), then records wall time, peak RSS, test accuracy and NLL of the
ensemble against the best single trial. Writes benchmarks/results/demo_run-<cpu|gpu>.json.

    python benchmarks/demo_run.py [--preset paper] [extra zoofit run options...]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from machine import describe  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main(extra: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="zoofit-bench-") as folder:
        out, cache = Path(folder) / "run", Path(folder) / "cache"
        command = ["zoofit", "run", "--data", "fashion-mnist", "--zoo", "demo", "--out", str(out), *extra]
        start = time.perf_counter()
        subprocess.run(command, check=True, env={**os.environ, "ZOOFIT_CACHE_DIR": str(cache)})
        wall = time.perf_counter() - start
        summary = json.loads((out / "summary.json").read_text())
    peak_rss_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # ru_maxrss is in KiB
    machine = describe()
    figures = {
        "command": " ".join(command[:6] + extra),
        "wall_seconds": round(wall, 1),
        "peak_rss_gib": round(peak_rss_gib, 2),
        "preset": summary["preset"],
        "test_accuracy": summary["test_accuracy"],
        "test_nll": summary["test_nll"],
        "test_ece": summary["test_ece"],
        "members": [f"{m['model']} lr={m['lr']:g} x{m['weight']:.2f}" for m in summary["members"]],
        "gflops_per_image": summary["gflops_per_image"],
        "best_single": summary["best_single"],
        "knn_top": summary["knn_top"],
        "ensemble_beats_best_single_nll": summary["test_nll"] < summary["best_single"]["test_nll"],
        "machine": machine,
    }
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / f"demo_run-{'gpu' if machine['gpu'] else 'cpu'}-{summary['preset']}.json"
    target.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    print(f"wrote {target}")


if __name__ == "__main__":
    main(sys.argv[1:])
