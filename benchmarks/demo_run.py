"""End-to-end figures of the README demo: `zoofit run --data fashion-mnist --zoo demo` (default preset).

Fresh run folder and cache, so it includes fetching and converting the demo weights and every feature
extraction. Records wall time, peak RSS, and the ensemble's test accuracy and NLL against the best single trial,
clean and averaged over the corruptions of the robustness evaluation.
Writes benchmarks/results/demo_run-<preset>-<cpu|gpu>.json.

    python benchmarks/demo_run.py [--preset paper] [other zoofit run options...]
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from common import run_fresh, save  # noqa: E402

from zoofit.result import RunResult  # noqa: E402


def read_summary(out: Path) -> dict[str, Any]:
    result = RunResult.read(out)
    ensemble = result.ensemble
    return {
        "preset": result.preset,
        "test_accuracy": ensemble.test.accuracy,
        "test_nll": ensemble.test.nll,
        "test_ece": ensemble.test.ece,
        "members": [f"{m.model} lr={m.settings.lr:g} x{m.weight:.2f}" for m in ensemble.members],
        "gflops_per_image": ensemble.gflops_per_image,
        "stage_seconds": result.stage_seconds,
        "best_single": asdict(result.best_single),
        "top_ranked": asdict(result.top_ranked),
        "ensemble_beats_best_single_nll": ensemble.test.nll < result.best_single.test.nll,
        "robustness_mean": asdict(result.robustness)["conditions"]["mean"] if result.robustness else None,
    }


if __name__ == "__main__":
    figures = run_fresh(["run", "--data", "fashion-mnist", "--zoo", "demo", *sys.argv[1:]], read_summary)
    save(f"demo_run-{figures['preset']}", figures)
