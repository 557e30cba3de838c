"""What the terminal tables and report.html show of a run summary: one set of rows for both, values unformatted."""

from __future__ import annotations

from typing import Any

RESULT_COLUMNS = ("classifier", "accuracy", "NLL", "ECE", "GFLOPs/image", "members")
ROBUSTNESS_COLUMNS = (
    "test images",
    *(f"{m}: {c}" for m in ("accuracy", "NLL", "ECE") for c in ("ensemble", "best single")),
)
_CONDITION_LABELS = {"clean": "as they are", "mean": "mean of the corruptions"}


def result_rows(summary: dict[str, Any]) -> list[list[Any]]:
    """The ensemble, then the single-trial baselines: name, test accuracy, NLL, ECE, GFLOPs per image, members."""
    members = ", ".join(
        f"{m['model']} (lr={m['lr']:g}, seed={m['seed']}) x{m['weight']:.2f}" for m in summary["members"]
    )
    named = [("greedy ensemble", summary, members)]
    top = f"best of {summary['proxy']['name']}-top model"
    named += [(name, summary[key], summary[key]["model"]) for name, key in
              (("best single (by val)", "best_single"), (top, "top_ranked"))]  # fmt: skip
    if baseline := summary.get("seed_baseline"):
        named.append((f"{len(baseline['trials'])} seeds of best single", baseline, baseline["model"]))
    return [
        [name, m.get("test_accuracy"), m.get("test_nll"), m.get("test_ece"), m.get("gflops_per_image"), who]
        for name, m, who in named
    ]


def robustness_rows(report: dict[str, Any]) -> list[list[Any]]:
    """Per condition (clean, each corruption, their mean): its label, then accuracy, NLL and ECE of the ensemble
    and of the best single trial."""
    return [
        [_CONDITION_LABELS.get(condition, condition),
         *(by[c][m] for m in ("accuracy", "nll", "ece") for c in ("ensemble", "best_single"))]
        for condition, by in report.items()
        if isinstance(by, dict)
    ]  # fmt: skip
