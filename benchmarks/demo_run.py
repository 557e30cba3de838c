"""End-to-end figures of the README demo: `zoofit run --data fashion-mnist --zoo demo` (default preset).

Fresh run folder and cache, so it includes fetching and converting the demo weights and every feature
extraction. Records wall time, peak RSS, and the ensemble's test accuracy and NLL against the best single trial,
clean and averaged over the corruptions of the robustness evaluation.
Writes benchmarks/results/demo_run-<preset>-<cpu|gpu>.json.

    python benchmarks/demo_run.py [--preset paper] [other zoofit run options...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import run_fresh, save  # noqa: E402


def read_summary(out: Path) -> dict[str, Any]:
    summary = json.loads((out / "summary.json").read_text())
    return {
        "preset": summary["preset"],
        "test_accuracy": summary["test_accuracy"],
        "test_nll": summary["test_nll"],
        "test_ece": summary["test_ece"],
        "members": [f"{m['model']} lr={m['lr']:g} x{m['weight']:.2f}" for m in summary["members"]],
        "gflops_per_image": summary["gflops_per_image"],
        "stage_seconds": summary["stage_seconds"],
        "best_single": summary["best_single"],
        "top_ranked": summary["top_ranked"],
        "ensemble_beats_best_single_nll": summary["test_nll"] < summary["best_single"]["test_nll"],
        "robustness_mean": (summary["robustness"] or {}).get("mean"),
    }


if __name__ == "__main__":
    figures = run_fresh(["run", "--data", "fashion-mnist", "--zoo", "demo", *sys.argv[1:]], read_summary)
    save(f"demo_run-{figures['preset']}", figures)
