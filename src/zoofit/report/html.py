"""A finished run folder as one self-contained HTML page: its tables and SVG charts, no scripts, no downloads.

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
from zoofit.report.rows import RESULT_COLUMNS, ROBUSTNESS_COLUMNS, result_rows, robustness_rows
from zoofit.result import GrowthStep, ReliabilityBin, RobustnessResult, RunResult

#: Colours of the series, in order (the ensemble, or the only series, first); more series cycle through them.
COLOURS = ("#3b6ea5", "#d08c2b", "#5a9e4b", "#b0463c", "#7d5ba6", "#8c6d31")
_STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:980px;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.4em}td,th{padding:.25em .7em;border-bottom:1px solid #ddd}
td.n{text-align:right;font-variant-numeric:tabular-nums}h2{margin-top:1.8em}.note{color:#666}
svg text{font:12px system-ui,sans-serif}"""


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
            _growth(result.ensemble.growth),
            _reliability(result.reliability),
            _ranking(ranking, result.proxy.label),
            _trials(trials, {row["model"]: row["score"] for row in ranking}, result.proxy.label),
            _per_class(result.ensemble.per_class_accuracy),
            _robustness(result.robustness) if result.robustness else "",
        ]
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise ZoofitError(
            f"run folder '{root}' was written by another zoofit version or was altered ({_missing(error)} is missing "
            "or unreadable); run 'zoofit run' into it again"
        ) from error
    title = f"zoofit run: {result.data}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{''.join(sections)}</body></html>\n"
    )


def _missing(error: Exception) -> str:
    """What ``error`` found missing: the key of a ``KeyError``, else its message."""
    return repr(error.args[0]) if isinstance(error, KeyError) and error.args else first_line(error)


def _overview(result: RunResult) -> str:
    stages = ", ".join(f"{name.replace('_', ' ')} {s:.0f} s" for name, s in result.stage_seconds.items())
    return (
        f"<p>Preset <b>{escape(result.preset)}</b>; {result.wall_seconds:.0f} s ({escape(stages)}).</p>"
        f"<h2>Test results</h2>{_table(RESULT_COLUMNS, result_rows(result))}"
    )


def _growth(growth: Sequence[GrowthStep]) -> str:
    """The ensemble as the greedy selection adds members: validation NLL (what it minimises) and test accuracy."""
    if not growth:
        return ""
    steps = range(1, len(growth) + 1)
    nll = _plot([("validation NLL", [(i, g.val_nll) for i, g in zip(steps, growth, strict=True)])], "greedy step")
    accuracy = _plot([("test accuracy", [(i, g.test_accuracy) for i, g in zip(steps, growth, strict=True)])],
                     "greedy step", colour=1)  # fmt: skip
    added = ", ".join(f"{i}: {escape(g.model)}" for i, g in zip(steps, growth, strict=True))
    return (
        "<h2>Growth of the ensemble</h2><p class='note'>The greedy selection adds one trial per step (a trial may "
        f"come again); the best prefix by validation NLL is kept. Added: {added}.</p>{nll}{accuracy}"
    )


def _reliability(diagrams: dict[str, list[ReliabilityBin]]) -> str:
    """Accuracy against mean confidence per confidence bin: on the diagonal, a classifier is calibrated."""
    if not diagrams:
        return ""
    series = [
        (name.replace("_", " "), [(b.confidence, b.accuracy) for b in bins if b.count and b.confidence is not None])
        for name, bins in diagrams.items()
    ]
    chart = _plot(series, "mean confidence", "accuracy", span=((0.0, 1.0), (0.0, 1.0)), diagonal=True)
    return (
        f"<h2>Calibration: reliability diagram</h2><p class='note'>Test images in {len(next(iter(diagrams.values())))}"
        f" bins of the top probability: each point is a bin's accuracy against its mean confidence.</p>{chart}"
    )


def _ranking(ranking: list[dict[str, Any]], label: str) -> str:
    shares = all(0 <= row["score"] <= 1 for row in ranking)  # bars run from 0 to 1: an accuracy, not LogME
    chart = _bars([(row["model"], [row["score"]]) for row in ranking], [label]) if shares else ""
    table = _table(
        ["rank", "model", label, "input px", "GFLOPs", "weights"],
        [[i, r["model"], r["score"], r["input_size"], r["gflops"], r["weights"]] for i, r in enumerate(ranking, 1)],
    )
    return f"<h2>Ranking: {escape(label)} of frozen features</h2>{chart}{table}"


def _trials(trials: list[dict[str, str]], scores: dict[str, float], label: str) -> str:
    points = [
        (scores[t["model"]], float(t["test_accuracy"]), f"{t['model']} lr={float(t['lr']):g}")
        for t in trials
        if t["model"] in scores and t.get("test_accuracy")
    ]
    table = _table(
        ["model", "lr", "steps", "seed", "val accuracy", "test accuracy", "test NLL", "seconds"],
        [
            [
                t["model"],
                float(t["lr"]),
                int(t["steps"]),
                int(t["seed"]),
                *(_float(t.get(key)) for key in ("val_accuracy", "test_accuracy", "test_nll", "seconds")),
            ]
            for t in trials
        ],  # fmt: skip
    )
    return (
        f"<h2>Fine-tuned trials</h2><p class='note'>Each trial's test accuracy against its model's {escape(label)}: "
        f"how well the cheap ranking foretold fine-tuning.</p>{_scatter(points, label) if points else ''}{table}"
    )


def _per_class(accuracy: dict[str, float | None]) -> str:
    chart = _bars([(name, [value]) for name, value in accuracy.items()], ["ensemble"])
    return f"<h2>Test accuracy of the ensemble per class</h2>{chart}" if accuracy else ""


def _robustness(report: RobustnessResult) -> str:
    rows = robustness_rows(report)
    chart = _bars([(row[0], row[1:3]) for row in rows], ["ensemble", "best single"])  # the two accuracies
    return (
        f"<h2>Robustness to distribution shift</h2><p class='note'>{report.images} test images, each ImageNet-C "
        f"corruption at severity {report.severity} of 5.</p>{chart}{_table(ROBUSTNESS_COLUMNS, rows)}"
    )


def _float(text: str | None) -> float | None:
    """A CSV cell's number (None where empty)."""
    return float(text) if text else None


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
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


def _bars(rows: Sequence[tuple[str, Sequence[float | None]]], series: Sequence[str], bars_width: int = 440) -> str:
    """Horizontal bars from 0 to 1, one group per row, one bar per series."""
    label_width = 16 + 9 * max((len(label) for label, _ in rows), default=0)  # at most about 9 px a character
    bar, gap, top = 14, 8, 4
    group = bar * len(series) + gap
    height = top + group * len(rows) + 24
    parts = []
    for i, (label, values) in enumerate(rows):
        y = top + i * group
        parts.append(f"<text x='{label_width - 6}' y='{y + bar * len(series) / 2 + 4}' text-anchor='end'>"
                     f"{escape(label)}</text>")  # fmt: skip
        for j, value in enumerate(values):
            if value is None:  # nothing to draw (a class without test images)
                continue
            length = max(0.0, min(1.0, value)) * bars_width
            row_top = y + j * bar
            parts.append(f"<rect x='{label_width}' y='{row_top}' width='{length:.1f}' height='{bar - 2}' "
                         f"fill='{COLOURS[j % len(COLOURS)]}'/><text x='{label_width + length + 4:.1f}' y='{row_top + bar - 4}'>"
                         f"{value:.3f}</text>")  # fmt: skip
    legend = "".join(
        f"<rect x='{label_width + 130 * j}' y='{height - 14}' width='10' height='10' fill='{COLOURS[j % len(COLOURS)]}'/>"
        f"<text x='{label_width + 130 * j + 14}' y='{height - 5}'>{escape(name)}</text>"
        for j, name in enumerate(series)
    )
    width = label_width + bars_width + 60
    return f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img'>{''.join(parts)}{legend}</svg>"


def _plot(
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    x_label: str,
    y_label: str = "",
    *,
    span: tuple[tuple[float, float], tuple[float, float]] | None = None,
    diagonal: bool = False,
    colour: int = 0,
    size: int = 320,
) -> str:
    """Lines through points, one per series (colours from ``colour`` on), on axes spanning ``span`` (default the
    points' own range, padded); ``diagonal`` draws y = x."""
    margin = 48
    points = [p for _, line in series for p in line]
    if span is None:
        pad = lambda low, high: (low - max((high - low) * 0.1, 0.01), high + max((high - low) * 0.1, 0.01))  # noqa: E731
        span = (pad(min(p[0] for p in points), max(p[0] for p in points)),
                pad(min(p[1] for p in points), max(p[1] for p in points)))  # fmt: skip
    (x0, x1), (y0, y1) = span
    inner = size - 2 * margin

    def xy(x: float, y: float) -> tuple[float, float]:
        return margin + (x - x0) / (x1 - x0) * inner, size - margin - (y - y0) / (y1 - y0) * inner

    def at(x: float, y: float) -> str:
        return "{:.1f},{:.1f}".format(*xy(x, y))

    parts = [
        f"<polyline points='{at(x0, y0)} {at(x1, y0)}' stroke='#888' fill='none'/>"
        f"<polyline points='{at(x0, y0)} {at(x0, y1)}' stroke='#888' fill='none'/>"
        f"<text x='{size / 2}' y='{size - 12}' text-anchor='middle'>{escape(x_label)} ({x0:.3g} to {x1:.3g})</text>"
        f"<text x='14' y='{size / 2}' transform='rotate(-90 14 {size / 2})' text-anchor='middle'>"
        f"{escape(y_label or series[0][0])} ({y0:.3g} to {y1:.3g})</text>"
    ]
    if diagonal:
        parts.append(f"<polyline points='{at(x0, y0)} {at(x1, y1)}' stroke='#bbb' stroke-dasharray='4' fill='none'/>")
    for j, (name, line) in enumerate(series):
        fill = COLOURS[(colour + j) % len(COLOURS)]
        parts.append(f"<polyline points='{' '.join(at(x, y) for x, y in line)}' stroke='{fill}' fill='none'/>")
        parts += [f"<circle cx='{xy(x, y)[0]:.1f}' cy='{xy(x, y)[1]:.1f}' r='3' fill='{fill}'>"
                  f"<title>{escape(name)}: {x:.3g}, {y:.4f}</title></circle>" for x, y in line]  # fmt: skip
        parts.append(f"<rect x='{margin + 8}' y='{margin - 30 + 16 * j}' width='10' height='10' fill='{fill}'/>"
                     f"<text x='{margin + 22}' y='{margin - 21 + 16 * j}'>{escape(name)}</text>")  # fmt: skip
    return f"<svg xmlns='http://www.w3.org/2000/svg' width='{size}' height='{size}' role='img'>{''.join(parts)}</svg>"


def _scatter(points: Sequence[tuple[float, float, str]], x_label: str, size: int = 420) -> str:
    """Points on axes spanning their own range (padded), each labelled."""
    margin = 48
    xs, ys = [p[0] for p in points], [p[1] for p in points]

    def span(values: list[float]) -> tuple[float, float]:
        low, high = min(values), max(values)
        pad = max((high - low) * 0.15, 0.01)
        return low - pad, high + pad

    (x0, x1), (y0, y1) = span(xs), span(ys)
    inner = size - 2 * margin

    def at(x: float, y: float) -> tuple[float, float]:
        return margin + (x - x0) / (x1 - x0) * inner, size - margin - (y - y0) / (y1 - y0) * inner

    dots = "".join(
        f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='4' fill='{COLOURS[0]}'><title>{escape(label)}</title></circle>"
        f"<text x='{cx + 6:.1f}' y='{cy - 6:.1f}'>{escape(label)}</text>"
        for (cx, cy), label in ((at(x, y), label) for x, y, label in points)
    )
    axes = (
        f"<line x1='{margin}' y1='{size - margin}' x2='{size - margin}' y2='{size - margin}' stroke='#888'/>"
        f"<line x1='{margin}' y1='{margin}' x2='{margin}' y2='{size - margin}' stroke='#888'/>"
        f"<text x='{size / 2}' y='{size - 12}' text-anchor='middle'>{escape(x_label)} ({x0:.3f} to {x1:.3f})</text>"
        f"<text x='14' y='{size / 2}' transform='rotate(-90 14 {size / 2})' text-anchor='middle'>"
        f"test accuracy ({y0:.3f} to {y1:.3f})</text>"
    )
    return f"<svg xmlns='http://www.w3.org/2000/svg' width='{size + 260}' height='{size}' role='img'>{axes}{dots}</svg>"
