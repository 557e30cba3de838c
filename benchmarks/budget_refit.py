"""The demo with and without --refit and with each --selection, side by side; then the demo under --time-limit.

Part 1 (variants): `zoofit run --data fashion-mnist --zoo demo` four times into ONE run folder: greedy and bagged
selection, each without and with --refit. Trials are content-keyed, so the sweep trains once and the refits once;
the four differ only in what they select and refit. Records the ensemble's test accuracy, NLL and ECE and the
load average around each.

Part 2 (time limits): the default run (no limit) into a fresh folder, timed; then fresh runs with --time-limit at
a third, two thirds and the whole of its time, each with its wall time, test accuracy and what it cut; and a limit
too small to train, which must be refused before training.

Writes benchmarks/results/budget_refit-<part>-cpu.json (figures so far after each run, so a stopped run keeps them).

    python benchmarks/budget_refit.py [--part variants|limits|refusal|all] [--limits S,S] [--name SUFFIX]
        [--work DIR] [zoofit run options...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import torch  # noqa: E402
from common import RESULTS, describe  # noqa: E402

DEMO = ["run", "--data", "fashion-mnist", "--zoo", "demo"]


def command(extra: list[str]) -> list[str]:
    """``zoofit run`` on the demo with the ``extra`` options, which may name other ``--data``."""
    return [*(["run", "--zoo", "demo"] if "--data" in extra else DEMO), *extra]


VARIANTS = {
    "greedy": ["--selection", "greedy", "--no-refit"],
    "bagged": ["--selection", "bagged", "--no-refit"],
    "greedy+refit": ["--selection", "greedy", "--refit"],
    "bagged+refit": ["--selection", "bagged", "--refit"],
}
FRACTIONS = (1 / 3, 2 / 3, 1.0)


def machine() -> dict[str, Any]:
    """The machine, as every figure of this benchmark is kept with: CPU, its kernels' instruction set, commit."""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return {
        **describe(),
        "lscpu_model": model,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "commit": commit.stdout.strip(),
    }


def zoofit(arguments: list[str]) -> dict[str, Any]:
    """Run ``zoofit ARGUMENTS``; its exit code, wall seconds, last output line and the load around it."""
    before = os.getloadavg()
    start = time.perf_counter()
    done = subprocess.run(["zoofit", *arguments], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    return {
        "command": " ".join(["zoofit", *arguments]),
        "exit_code": done.returncode,
        "wall_seconds": round(wall, 1),
        "load_average_before": [round(x, 2) for x in before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "last_line": lines[-1] if lines else "",
        "cut_lines": [line for line in lines if "time limit" in line],
    }


def scores(out: Path) -> dict[str, Any]:
    summary = json.loads((out / "summary.json").read_text())
    row = {}
    for name in ("ensemble", "before_refit"):
        if summary.get(name):
            test = summary[name]["test"]
            row[name] = {**test, "mean": round((test["accuracy"] + test["nll"] + test["ece"]) / 3, 4)}
    row["units"] = summary["units"]
    row["plan"] = summary.get("plan")
    search, evaluation = summary["sweep"]["search"], summary["sweep"]["evaluation"]
    row["sweep"] = {**{k: search[k] for k in ("top_k", "lrs", "steps")}, "shift_images": evaluation["shift_images"]}
    return row


def save(figures: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"budget_refit-{figures['part']}-cpu.json").write_text(json.dumps(figures, indent=2) + "\n")


def variants(work: Path, extra: list[str], figures: dict[str, Any]) -> None:
    out = work / "variants"
    rows = figures.setdefault("variants", {})
    for name, options in VARIANTS.items():
        rows[name] = zoofit([*command(extra), *options, "--out", str(out)])
        if rows[name]["exit_code"] == 0:
            rows[name].update(scores(out))
        save(figures)


def limits(work: Path, extra: list[str], figures: dict[str, Any], given: list[int] | None = None) -> None:
    """The default run (no limit), then runs under time limits: ``given`` seconds, else a third, two thirds and the
    whole of the default run's. The default run fills the feature cache the others find."""
    rows = figures.setdefault("limits", {})
    rows["default"] = zoofit([*command(extra), "--out", str(work / "default")])
    rows["default"].update(scores(work / "default"))
    save(figures)
    seconds = given or [round(rows["default"]["wall_seconds"] * fraction) for fraction in FRACTIONS]
    for limit in seconds:
        out = work / f"limit-{limit}"
        row = rows[f"{limit}s"] = zoofit([*command(extra), "--time-limit", f"{limit}s", "--out", str(out)])
        row["limit_seconds"] = limit
        row["within_10_percent"] = row["wall_seconds"] <= 1.1 * limit
        if row["exit_code"] == 0:
            row.update(scores(out))
        save(figures)


def refusal(work: Path, extra: list[str], figures: dict[str, Any]) -> None:
    """A limit too small to train: refused in one line, before any trial."""
    rows = figures.setdefault("limits", {})
    out = work / "too-small"
    row = rows["too_small"] = zoofit([*command(extra), "--time-limit", "5s", "--out", str(out)])
    row["refused_before_training"] = row["exit_code"] == 2 and not list((out / "trials").glob("*"))
    save(figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=("variants", "limits", "refusal", "all"), default="all")
    parser.add_argument("--work", type=Path, default=Path("/tmp/zoofit-budget-refit"))
    parser.add_argument("--limits", help="comma-separated seconds (default: fractions of the default run's time)")
    parser.add_argument("--name", default="", help="a suffix of the results file, for runs side by side")
    known, extra = parser.parse_known_args()
    figures: dict[str, Any] = {"part": known.part + known.name, "extra_options": extra, "machine": machine()}
    if known.part in ("variants", "all"):
        variants(known.work, extra, figures)
    if known.part in ("limits", "all"):
        limits(known.work, extra, figures, [int(x) for x in known.limits.split(",")] if known.limits else None)
    if known.part in ("refusal", "all"):
        refusal(known.work, extra, figures)
    figures["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    save(figures)
    print(json.dumps(figures, indent=2))
