"""A finished run folder as one self-contained HTML page: its tables and charts (inline SVG), no scripts, no downloads.

Everything comes from the run's own files (``summary.json``, ``ranking.json``, ``trials.csv``), so the page can be
rebuilt at any time with ``zoofit report``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from zoofit.errors import ZoofitError, first_line
from zoofit.layout import RANKING, TRIALS
from zoofit.report.charts import bar_chart, growth_chart, reliability_chart, scatter_chart
from zoofit.report.rows import (
    DOMAIN_COLUMNS,
    RESULT_COLUMNS,
    ROBUSTNESS_COLUMNS,
    WEIGHT_COLUMNS,
    domain_rows,
    result_rows,
    robustness_rows,
    weight_rows,
)
from zoofit.result import DomainResult, GrowthStep, ReliabilityBin, RobustnessResult, RunResult

PAGE_STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:980px;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.4em}td,th{padding:.25em .7em;border-bottom:1px solid #ddd}
td.n{text-align:right;font-variant-numeric:tabular-nums}h2{margin-top:1.8em}.note{color:#666}
svg{max-width:100%;height:auto;display:block;margin:.4em 0 1em}"""


def html_report(run: str | Path) -> str:
    """The page of the finished run folder ``run``."""
    root = Path(run)
    result = RunResult.read(root)
    try:
        ranking = json.loads((root / RANKING).read_text(encoding="utf-8"))["ranked"]
        with (root / TRIALS).open(newline="", encoding="utf-8") as handle:
            trials = list(csv.DictReader(handle))
        sections = [
            _overview(result),
            _weights(result),
            _growth(result.ensemble.growth),
            _reliability(result.reliability),
            _ranking(ranking, result.proxy.label),
            _trials(trials, {row["model"]: row["score"] for row in ranking}, result.proxy.label),
            _per_class(result.ensemble.per_class_accuracy),
            _robustness(result.robustness) if result.robustness else "",
            _domains(result.domains) if result.domains else "",
        ]
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise ZoofitError(
            f"run folder '{root}' was written by another zoofit version or was altered ({_missing(error)} is missing "
            "or unreadable); run 'zoofit run' into it again"
        ) from error
    title = f"zoofit run: {result.data}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/><title>{escape(title)}</title>'
        f"<style>{PAGE_STYLE}</style></head><body><h1>{escape(title)}</h1>{''.join(sections)}</body></html>\n"
    )


def _missing(error: Exception) -> str:
    """What ``error`` found missing: the key of a ``KeyError``, else its message."""
    return repr(error.args[0]) if isinstance(error, KeyError) and error.args else first_line(error)


def _overview(result: RunResult) -> str:
    stages = ", ".join(f"{name.replace('_', ' ')} {s:.0f} s" for name, s in result.stage_seconds.items())
    return (
        f"<p>Preset <b>{escape(result.preset)}</b>; {result.wall_seconds:.0f} s ({escape(stages)}).</p>"
        f"<h2>Test results</h2>{html_table(RESULT_COLUMNS, result_rows(result))}{_safeguard(result)}"
    )


def _safeguard(result: RunResult) -> str:
    """The selection safeguard's decision, as the console gives it (nothing where it was off)."""
    safeguard = result.ensemble.safeguard
    return "" if safeguard is None else f"<p class='note'>{escape(safeguard.describe())}</p>"


def _weights(result: RunResult) -> str:
    """How the ensemble's weight splits by kind of member, upstream model, depth and seeds."""
    if result.ensemble.by_kind is None:
        return ""
    return (
        "<h2>The ensemble's weight by kind</h2><p class='note'>Shares of the ensemble's weight: by kind of member "
        "(fine-tuned trials, soups, linear heads on frozen features), by upstream model (diversity of pre-training), "
        "by fine-tuning depth, and on trials of one model in several seeds (downstream diversity).</p>"
        f"{html_table(WEIGHT_COLUMNS, weight_rows(result.ensemble.by_kind))}"
    )


def _growth(growth: Sequence[GrowthStep]) -> str:
    """The ensemble as the greedy selection adds members: validation NLL (what it minimises) and test accuracy."""
    if not growth:
        return ""
    chart = growth_chart([g.model for g in growth], [g.val_nll for g in growth], [g.test_accuracy for g in growth])
    return (
        "<h2>Growth of the ensemble</h2><p class='note'>The greedy selection adds one trial per step (a trial may "
        f"come again); the best prefix by validation NLL is kept.</p>{chart}"
    )


def _reliability(diagrams: dict[str, list[ReliabilityBin]]) -> str:
    """Accuracy against mean confidence per confidence bin: on the diagonal, a classifier is calibrated."""
    if not diagrams:
        return ""
    series = []
    for name, bins in diagrams.items():
        full = [b for b in bins if b.count and b.confidence is not None and b.accuracy is not None]
        series.append((name.replace("_", " "), [b.confidence for b in full], [b.accuracy for b in full],
                       [b.count for b in full]))  # fmt: skip
    return (
        f"<h2>Calibration: reliability diagram</h2><p class='note'>Test images in {len(next(iter(diagrams.values())))}"
        f" bins of the top probability: each point is a bin's accuracy against its mean confidence.</p>"
        f"{reliability_chart(series)}"
    )


def _ranking(ranking: list[dict[str, Any]], label: str) -> str:
    shares = all(0 <= row["score"] <= 1 for row in ranking)  # bars from 0 to 1: an accuracy, not LogME
    chart = bar_chart([row["model"] for row in ranking], [(label, [row["score"] for row in ranking])], label,
                      unit_range=shares) if ranking else ""  # fmt: skip
    table = html_table(
        ["rank", "model", label, "input px", "GFLOPs", "weights"],
        [[i, r["model"], r["score"], r["input_size"], r["gflops"], r["weights"]] for i, r in enumerate(ranking, 1)],
    )
    return f"<h2>Ranking: {escape(label)} of frozen features</h2>{chart}{table}"


def _trials(trials: list[dict[str, str]], scores: dict[str, float], label: str) -> str:
    points = [
        (
            scores[t["model"]],
            float(t["test_accuracy"]),
            f"{t['model']} {t.get('kind') or 'trial'} lr={float(t['lr']):g} freeze={t['freeze_stride']}",
        )
        for t in trials
        if t["model"] in scores and t.get("test_accuracy")
    ]
    table = html_table(
        [
            "model",
            "kind",
            "lr",
            "steps",
            "freeze stride",
            "seed",
            "val accuracy",
            "test accuracy",
            "test NLL",
            "seconds",
        ],
        [
            [
                t["model"],
                t.get("kind") or "trial",
                float(t["lr"]),
                int(t["steps"]),
                int(t["freeze_stride"]),
                int(t["seed"]),
                *(_float(t.get(key)) for key in ("val_accuracy", "test_accuracy", "test_nll", "seconds")),
            ]
            for t in trials
        ],  # fmt: skip
    )
    return (
        f"<h2>Fine-tuned trials</h2><p class='note'>Each trial's test accuracy against its model's {escape(label)}: "
        f"how well the cheap ranking foretold fine-tuning.</p>{scatter_chart(points, label, 'test accuracy') if points else ''}{table}"
    )


def _per_class(accuracy: dict[str, float | None]) -> str:
    if not accuracy:
        return ""
    chart = bar_chart(list(accuracy), [("ensemble", list(accuracy.values()))], "test accuracy", unit_range=True)
    return f"<h2>Test accuracy of the ensemble per class</h2>{chart}"


def _robustness(report: RobustnessResult) -> str:
    rows = robustness_rows(report)
    chart = bar_chart([row[0] for row in rows], [("ensemble", [row[1] for row in rows]),
                      ("best single", [row[2] for row in rows])], "test accuracy", unit_range=True)  # fmt: skip
    return (
        f"<h2>Robustness to distribution shift</h2><p class='note'>{report.images} test images, each ImageNet-C "
        f"corruption at severity {report.severity} of 5.</p>{chart}{html_table(ROBUSTNESS_COLUMNS, rows)}"
    )


def _domains(domains: dict[str, DomainResult]) -> str:
    series = list(next(iter(domains.values())).scores)
    chart = bar_chart(list(domains), [(c.replace("_", " "), [d.scores[c].accuracy if c in d.scores else None
                      for d in domains.values()]) for c in series], "test accuracy", unit_range=True)  # fmt: skip
    given = "; ".join(f"{escape(name)}: {escape(d.data)}" for name, d in domains.items())
    return (
        f"<h2>Shifted domains</h2><p class='note'>Accuracy on labelled images of other domains ({given}), their "
        f"classes matched to the run's by name.</p>{chart}{html_table(DOMAIN_COLUMNS, domain_rows(domains))}"
    )


def _float(text: str | None) -> float | None:
    """A CSV cell's number (None where empty)."""
    return float(text) if text else None


def html_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(str(cell))}</th>" for cell in header)
    body = "".join("<tr>" + "".join(_cell(cell) for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if hasattr(value, "__html__"):  # markup made here (a link), kept as it is
        return f"<td>{value.__html__()}</td>"
    if isinstance(value, float):
        return f"<td class='n'>{value:.1f}</td>" if abs(value) >= 10 else f"<td class='n'>{value:.4f}</td>"
    if isinstance(value, int) or value is None:
        return f"<td class='n'>{'-' if value is None else value}</td>"
    return f"<td>{escape(str(value))}</td>"
