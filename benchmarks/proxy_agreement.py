"""How well each ranking proxy foretells fine-tuning: Kendall's tau, over the five demo models on Fashion-MNIST-1k,
between a proxy's scores and the test accuracies the models reach fine-tuned, next to baselines that rank by size.

One `zoofit run --data fashion-mnist --zoo demo --top-k 5 --shift-images 0` fine-tunes every model (its best trial
by validation accuracy gives the model's test accuracy, from trials.csv); then `zoofit rank --proxy NAME` scores the
same 1,000 training images at the sweep's resolution, from the features the run cached, for every registered
proxy. The size baselines rank a larger model (more parameters, more GFLOPs per image) higher. The commands run
as `python -m zoofit.cli`, so the zoofit on this Python's path is measured; the cache is the usual one.
Writes benchmarks/results/proxy_agreement-<cpu|gpu>.json.

    python benchmarks/proxy_agreement.py [other zoofit run options, e.g. --preset paper]
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import timm
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, save  # noqa: E402

from zoofit.rank.proxies import PROXIES  # noqa: E402
from zoofit.zoo import load_zoo  # noqa: E402

DATA = ["--data", "fashion-mnist", "--zoo", "demo"]


def zoofit(*arguments: str) -> float:
    """Run ``zoofit ARGUMENTS``; its wall time."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "zoofit.cli", *arguments], check=True)
    return time.perf_counter() - start


def fine_tuned_accuracy(run: Path) -> dict[str, float]:
    """Each model's test accuracy: that of its best trial by validation accuracy (then lower validation NLL)."""
    with (run / "trials.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))

    def best(model: str) -> dict[str, str]:
        trials = [row for row in rows if row["model"] == model]
        return max(trials, key=lambda row: (float(row["val_accuracy"]), -float(row["val_nll"])))

    return {model: float(best(model)["test_accuracy"]) for model in {row["model"] for row in rows}}


def parameters() -> dict[str, int]:
    """Each demo model's parameters without its classifier (random weights: only the count matters)."""
    specs = load_zoo("demo").models
    return {
        s.id: sum(p.numel() for p in timm.create_model(s.arch, num_classes=0, **s.arch_kwargs).parameters())
        for s in specs
    }


def agreement(scores: dict[str, float], accuracy: dict[str, float]) -> dict[str, Any]:
    models = sorted(accuracy)
    tau, p_value = kendalltau([scores[m] for m in models], [accuracy[m] for m in models])
    top = max(models, key=lambda m: (scores[m], m))
    return {
        "kendall_tau": round(float(tau), 3),
        "p_value": round(float(p_value), 3),
        "top_model": top,
        "top_model_accuracy": accuracy[top],
        "scores": scores,
    }


def main(run_options: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="zoofit-proxies-") as folder:
        run = Path(folder) / "run"
        run_seconds = zoofit("run", *DATA, "--top-k", "5", "--shift-images", "0", *run_options, "--out", str(run))
        accuracy = fine_tuned_accuracy(run)
        summary = json.loads((run / "summary.json").read_text())
        size = str(summary["sweep"]["search"]["image_size"] or "own")  # None: each model's own
        gflops = {row["model"]: row["gflops"] for row in json.loads((run / "ranking.json").read_text())["ranked"]}
        proxies = {}
        for name in PROXIES:
            out = Path(folder) / name
            seconds = zoofit("rank", *DATA, "--proxy", name, "--image-size", size, "--out", str(out))
            ranking = json.loads((out / "ranking.json").read_text())["ranked"]
            proxies[name] = {
                "label": PROXIES[name].label,
                **agreement({row["model"]: row["score"] for row in ranking}, accuracy),
                "score_seconds": round(sum(row["seconds"] for row in ranking), 2),  # features cached: the proxy
                "command_seconds": round(seconds, 1),
            }
    baselines = {
        "parameters": agreement({k: float(v) for k, v in parameters().items()}, accuracy),
        "gflops": agreement(gflops, accuracy),
    }
    return {
        "command": " ".join(["zoofit", "run", *DATA, "--top-k", "5", "--shift-images", "0", *run_options]),
        "preset": summary["preset"],
        "image_size": int(size),
        "run_seconds": round(run_seconds, 1),
        "fine_tuned_test_accuracy": dict(sorted(accuracy.items(), key=lambda item: -item[1])),
        "proxies": proxies,
        "size_baselines": baselines,
        "machine": describe(),
    }


def table(figures: dict[str, Any]) -> str:
    rows = [(f"{name} ({entry['label']})", entry) for name, entry in figures["proxies"].items()]
    rows += [(f"size: {name}", entry) for name, entry in figures["size_baselines"].items()]
    lines = [f"{'ranking by':<28} {'tau':>6} {'p':>6}  top model (its fine-tuned accuracy)"]
    lines += [
        f"{name:<28} {e['kendall_tau']:>6.2f} {e['p_value']:>6.2f}  {e['top_model']} ({e['top_model_accuracy']:.4f})"
        for name, e in rows
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    figures = main(sys.argv[1:])
    save("proxy_agreement", figures)
    print(table(figures))
