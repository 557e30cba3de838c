"""The report's charts: matplotlib figures rendered to inline SVG (text kept as text), so the page stays one
self-contained file that any browser shows offline.

Each function returns one ``<svg>`` element. Figures are built on their own ``Figure`` (no pyplot state), with
ticks, gridlines and the values written where a reader needs them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

#: Colours of the series, in order (the ensemble, or the only series, first); more series cycle through them.
COLOURS = ("#3b6ea5", "#d08c2b", "#5a9e4b", "#b0463c", "#7d5ba6", "#8c6d31")
_STYLE = {
    "svg.fonttype": "none",  # text stays text: small, selectable, drawn in the page's font
    "font.family": "sans-serif",
    "font.size": 10,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#888888",
}


@rc_context(_STYLE)
def growth_chart(models: Sequence[str], val_nll: Sequence[float], test_accuracy: Sequence[float]) -> str:
    """The greedy selection step by step: validation NLL (what it minimises) above, test accuracy below; each step
    is named by the model it added, and the kept prefix (lowest validation NLL) is marked."""
    steps = range(1, len(models) + 1)
    best = min(steps, key=lambda i: (val_nll[i - 1], i))  # the earliest of equal NLLs, as the selection keeps
    figure = Figure(figsize=(8.6, 3.2 + 0.075 * max(map(len, models))), layout="constrained")
    nll_axes, accuracy_axes = figure.subplots(2, 1, sharex=True)
    for axes, values, label, colour, fmt in (
        (nll_axes, val_nll, "validation NLL", COLOURS[0], "{:.4f}"),
        (accuracy_axes, test_accuracy, "test accuracy", COLOURS[1], "{:.4f}"),
    ):
        axes.plot(steps, values, marker="o", markersize=4, color=colour)
        axes.set_ylabel(label)
        axes.axvline(best, color="#999999", linestyle="--", linewidth=1)
        axes.annotate(fmt.format(values[best - 1]), (best, values[best - 1]), xytext=(6, 6),
                      textcoords="offset points", color=colour)  # fmt: skip
    nll_axes.set_title(f"kept: the first {best} step{'s' * (best > 1)} (lowest validation NLL)", fontsize=10,
                       loc="left", color="#555555")  # fmt: skip
    accuracy_axes.set_xticks(list(steps), [f"{i}  {m}" for i, m in zip(steps, models, strict=True)],
                             rotation=60, ha="right", rotation_mode="anchor", fontsize=9)  # fmt: skip
    accuracy_axes.set_xlabel("greedy step: the trial's model it added")
    return _svg(figure, "growth")


@rc_context(_STYLE)
def reliability_chart(series: Sequence[tuple[str, Sequence[float], Sequence[float], Sequence[int]]]) -> str:
    """Accuracy against mean confidence per bin, one line per classifier (``(name, confidences, accuracies,
    counts)``), over the diagonal a calibrated classifier would follow; below, how many images each bin holds."""
    figure = Figure(figsize=(5.6, 7.0), layout="constrained")
    main, counts = figure.subplots(2, 1, sharex=True, height_ratios=(4, 1.2))
    main.plot((0, 1), (0, 1), color="#aaaaaa", linestyle="--", linewidth=1, label="calibrated")
    width = 0.8 / (15 * max(len(series), 1))
    for j, (name, confidence, accuracy, count) in enumerate(series):
        colour = COLOURS[j % len(COLOURS)]
        main.plot(confidence, accuracy, marker="o", markersize=4, color=colour, label=name)
        counts.bar([c + (j - (len(series) - 1) / 2) * width for c in confidence], count, width=width, color=colour)
    main.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy of the bin")
    main.set_xticks([i / 10 for i in range(11)])
    main.set_yticks([i / 10 for i in range(11)])
    main.legend(loc="upper left")
    counts.set(xlabel="mean confidence of the bin (top probability)", ylabel="images")
    counts.yaxis.set_major_locator(MaxNLocator(4, integer=True))
    return _svg(figure, "reliability")


@rc_context(_STYLE)
def bar_chart(
    labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], x_label: str, *, unit_range: bool
) -> str:
    """Horizontal bars, one group per label and one bar per series, each with its value written at its end; from 0
    to 1 when ``unit_range`` (accuracies), else over the values' own range."""
    bar = 0.8 / len(series)
    figure = Figure(figsize=(8.6, 0.7 + 0.28 * len(labels) * len(series) + 0.12 * len(labels)), layout="constrained")
    axes = figure.subplots()
    for j, (name, values) in enumerate(series):
        offsets = [i + (j - (len(series) - 1) / 2) * bar for i in range(len(labels))]
        drawn = [(y, v) for y, v in zip(offsets, values, strict=True) if v is not None]
        if not drawn:
            continue
        bars = axes.barh([y for y, _ in drawn], [v for _, v in drawn], height=bar * 0.9,
                         color=COLOURS[j % len(COLOURS)], label=name)  # fmt: skip
        axes.bar_label(bars, fmt="%.3f" if unit_range else "%.4g", padding=3, fontsize=9)
    axes.set_yticks(range(len(labels)), labels)
    axes.invert_yaxis()  # the first label on top, as in the table
    axes.grid(axis="y", visible=False)
    if unit_range:
        axes.set_xlim(0, 1.08)  # room for the last value's label
        axes.set_xticks([i / 10 for i in range(11)])
    else:
        axes.margins(x=0.12)
    axes.set_xlabel(x_label)
    if len(series) > 1:
        axes.legend(loc="lower right")
    return _svg(figure, "bars-" + "-".join(labels))


@rc_context(_STYLE)
def scatter_chart(points: Sequence[tuple[float, float, str]], x_label: str, y_label: str) -> str:
    """Labelled points (``(x, y, label)``) on axes spanning their own range."""
    figure = Figure(figsize=(8.6, 4.6), layout="constrained")
    axes = figure.subplots()
    axes.scatter([p[0] for p in points], [p[1] for p in points], color=COLOURS[0], zorder=3)
    for x, y, label in points:
        axes.annotate(f"{label} ({y:.4f})", (x, y), xytext=(6, 4), textcoords="offset points", fontsize=9)
    axes.margins(x=0.25, y=0.15)
    axes.set(xlabel=x_label, ylabel=y_label)
    axes.xaxis.set_major_locator(MaxNLocator(8))
    return _svg(figure, "scatter")


def _svg(figure: Figure, name: str) -> str:
    """``figure`` as an ``<svg>`` element to put inline in a page; ``name`` keeps its element ids apart from those of
    the page's other charts, and makes them the same on every run."""
    buffer = io.StringIO()
    with rc_context({"svg.hashsalt": name}):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]
