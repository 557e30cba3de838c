"""`zoofit bench --suite offline --zoo demo` end to end, then the same command again (which should reuse every
task's finished work), with the wall time of each, the machine and its load (the machine may be shared).

Records the table (per task, per group, mean: the ensemble and each baseline), and per task whether the ensemble's
test NLL is lower than the best single trial's and its accuracy at least as high. The commands run as
`python -m zoofit.cli`, so the zoofit on this Python's path is measured; the cache is the usual one.
Writes benchmarks/results/bench_offline-<cpu|gpu>.json.

    python benchmarks/bench_offline.py [--out runs/bench] [other zoofit bench options, e.g. --test-images 500]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, save  # noqa: E402

from zoofit.bench import BenchResult  # noqa: E402


def timed(command: list[str]) -> dict[str, Any]:
    """Run ``command``; its wall time and the load average before and after."""
    before = os.getloadavg()
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return {"wall_seconds": round(time.perf_counter() - start, 1), "load_before": before, "load_after": os.getloadavg()}


def verdicts(result: BenchResult) -> dict[str, dict[str, Any]]:
    """Per done task: the ensemble's NLL below the best single trial's, and its accuracy at least as high?"""
    out = {}
    for task in result.tasks:
        if task.status != "done":
            continue
        ensemble, single = task.classifiers["ensemble"], task.classifiers["best_single"]
        out[task.id] = {"lower_nll": ensemble.nll < single.nll, "accuracy_at_least": ensemble.accuracy >= single.accuracy,
                        "accuracy_gain": ensemble.accuracy - single.accuracy, "nll_gain": single.nll - ensemble.nll}  # fmt: skip
    return out


def main(arguments: list[str]) -> dict[str, Any]:
    out = arguments[arguments.index("--out") + 1] if "--out" in arguments else "runs/bench"
    rest = [a for i, a in enumerate(arguments) if a != "--out" and (i == 0 or arguments[i - 1] != "--out")]
    command = [sys.executable, "-m", "zoofit.cli", "bench", "--suite", "offline", "--zoo", "demo", "--out", out, *rest]
    first = timed(command)
    again = timed(command)
    result = BenchResult.read(out)
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {
        "command": " ".join(["zoofit", *command[3:]]),
        "first_run": first,
        "rerun": again,
        "tasks": [
            {
                "id": t.id,
                "group": t.group,
                "status": t.status,
                "reason": t.reason,
                "splits": t.splits,
                "classifiers": {c: asdict(r) for c, r in t.classifiers.items()},
            }
            for t in result.tasks
        ],  # fmt: skip
        "groups": [asdict(g) for g in result.groups],
        "mean": asdict(result.mean),
        "ensemble_vs_best_single": verdicts(result),
        "machine": {
            **describe(),
            "lscpu_model": next(
                (line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), None
            ),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        },  # fmt: skip
        "git_commit": commit,
    }


if __name__ == "__main__":
    save("bench_offline", main(sys.argv[1:]))
