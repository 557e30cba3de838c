"""A bench folder's table in the terminal and as ``bench.html``: the table, the published figures beside it, and a
chart per group of the ensemble against each baseline (matplotlib, inline SVG), each task linking to its run's
``report.html``. Everything comes from ``bench.json``."""

from __future__ import annotations

import io
from html import escape
from pathlib import Path

from rich.console import Group
from rich.table import Table

from zoofit.bench.result import CLASSIFIERS, BenchResult, GroupResult, TaskResult
from zoofit.layout import REPORT
from zoofit.report.charts import COLOURS
from zoofit.report.html import PAGE_STYLE, html_table

_METRICS = (("accuracy", "accuracy"), ("nll", "NLL"), ("ece", "ECE"), ("gflops_per_image", "GFLOPs"))
_SHORT = {"ensemble": "ensemble", "best_single": "best single", "top_ranked": "top-ranked model",
          "seed_ensemble": "seed ensemble", "linear_probe": "logistic regression"}  # fmt: skip


def bench_tables(result: BenchResult) -> Group:
    """Per task, per group and the mean: each classifier's test accuracy / NLL; then the failed tasks."""
    present = [c for c in CLASSIFIERS if any(c in row for row in _scopes(result).values())]
    table = Table(title=f"Bench: suite {result.suite}, zoo {result.zoo}, preset {result.preset} (test accuracy / NLL)",
                  title_justify="left")  # fmt: skip
    for column in ("task", "group", *(_SHORT[c] for c in present), "wall s"):
        table.add_column(column, justify="left" if column in ("task", "group") else "right", no_wrap=column == "task")
    for task in result.tasks:
        if task.status == "done":
            wall = "-" if task.wall_seconds is None else f"{task.wall_seconds:.0f}"
            table.add_row(task.id, task.group, *(_pair(task.classifiers, c) for c in present), wall)
    for group in [*result.groups, result.mean]:
        label = "mean" if group is result.mean else f"{group.name} mean"
        table.add_row(label, f"{group.tasks} tasks", *(_pair(group.classifiers, c) for c in present), "",
                      style="bold")  # fmt: skip
    parts: list = [table]
    if weights := weight_rows(result):
        header, rows = weights
        parts.append(Table(title="The ensemble's weight by kind", title_justify="left"))
        for column in header:
            parts[-1].add_column(column, justify="left" if column == "task" else "right")
        for row in rows:
            parts[-1].add_row(*(cell if isinstance(cell, str) else f"{cell:.0%}" for cell in row))
    for task in result.tasks:
        if task.status == "failed":
            parts.append(f"task {task.id} failed: {task.reason}")
    if result.audit:
        parts.append(_audit_table(result))
    return Group(*parts)


def weight_rows(result: BenchResult) -> tuple[list[str], list[list]] | None:
    """Per done task, and their mean, the ensemble's weight by kind of member, its number of upstream models and
    its share on seeds of one model (None: no task records it)."""
    tasks = [task for task in result.tasks if task.status == "done" and task.weights is not None]
    if not tasks:
        return None
    kinds = list(dict.fromkeys(kind for task in tasks for kind in task.weights.kinds))
    rows = [[task.id, *(task.weights.kinds.get(k, 0.0) for k in kinds), str(len(task.weights.models)),
             task.weights.seeds] for task in tasks]  # fmt: skip
    means = [sum(row[i] for row in rows) / len(rows) for i in range(1, len(kinds) + 1)]
    rows.append(["mean", *means, "", sum(task.weights.seeds for task in tasks) / len(tasks)])
    return ["task", *kinds, "upstream models", "seeds of one model"], rows


def _pair(rows: dict, classifier: str) -> str:
    row = rows.get(classifier)
    return "-" if row is None else f"{row.accuracy:.4f} / {row.nll:.3f}"


def _scopes(result: BenchResult) -> dict[str, dict]:
    scopes = {task.id: task.classifiers for task in result.tasks}
    return scopes | {f"group {g.name}": g.classifiers for g in result.groups} | {"mean": result.mean.classifiers}


def _audit_table(result: BenchResult) -> Table:
    table = Table(
        title="Audit: each proxy against every model fine-tuned (Kendall's tau / regret)", title_justify="left"
    )
    audited = [task for task in result.tasks if task.audit]
    proxies = list(audited[0].audit.proxies)
    for column in ("task", *proxies):
        table.add_column(column, justify="left" if column == "task" else "right")
    for task in audited:
        table.add_row(task.id, *(_tau_regret(p.tau, p.regret) for p in task.audit.proxies.values()))
    table.add_row("mean", *(_tau_regret(result.audit.mean_tau[p], result.audit.mean_regret[p]) for p in proxies),
                  style="bold")  # fmt: skip
    return table


def _tau_regret(tau: float | None, regret: float) -> str:
    return f"{'-' if tau is None else f'{tau:+.2f}'} / {regret:.4f}"


def bench_html(root: str | Path) -> str:
    """The page of the bench folder ``root``."""
    result = BenchResult.read(root)
    title = f"zoofit bench: suite {result.suite}, zoo {result.zoo}"
    sections = [
        f"<p>Preset <b>{escape(result.preset)}</b>, executor {escape(result.executor)}"
        + (f", at most {result.test_images} test images per task" if result.test_images else "")
        + f"; {result.wall_seconds:.0f} s. Each task's name links to its run's report.</p>",
        _html_table(result),
        _html_weights(result),
        _references(result),
        *(_group_chart(result, group) for group in result.groups),
        _html_audit(result),
    ]
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/><title>{escape(title)}</title>'
        f"<style>{PAGE_STYLE}</style></head><body><h1>{escape(title)}</h1>{''.join(sections)}</body></html>\n"
    )


def _html_table(result: BenchResult) -> str:
    header = ["task", "group", "classifier", *(label for _, label in _METRICS), "wall s"]
    rows = []
    for task in result.tasks:
        link = f"<a href='{escape(task.run)}/{REPORT}'>{escape(task.id)}</a>"
        if task.status == "failed":
            rows.append([_Raw(link), task.group, _Raw(f"<i>failed: {escape(task.reason)}</i>"), "", "", "", "", ""])
            continue
        for i, (classifier, row) in enumerate(task.classifiers.items()):
            rows.append([_Raw(link) if i == 0 else "", task.group if i == 0 else "", CLASSIFIERS[classifier],
                         *(getattr(row, f) for f, _ in _METRICS), task.wall_seconds if i == 0 else ""])  # fmt: skip
    for group in [*result.groups, result.mean]:
        name = "mean over tasks" if group is result.mean else f"{group.name} (mean of {group.tasks})"
        for i, (classifier, row) in enumerate(group.classifiers.items()):
            rows.append([_Raw(f"<b>{escape(name)}</b>") if i == 0 else "", "", CLASSIFIERS[classifier],
                         *(getattr(row, f) for f, _ in _METRICS), ""])  # fmt: skip
    return f"<h2>Test results</h2>{html_table(header, rows)}"


def _html_weights(result: BenchResult) -> str:
    if (weights := weight_rows(result)) is None:
        return ""
    header, rows = weights
    return (
        "<h2>The ensemble's weight by kind</h2><p class='note'>Shares of each task's ensemble weight by kind of "
        "member, its number of upstream models, and its share on trials of one model in several seeds.</p>"
        f"{html_table(header, rows)}"
    )


class _Raw(str):
    """Markup that the table cell keeps as it is."""

    def __html__(self) -> str:
        return str(self)


def _references(result: BenchResult) -> str:
    if not result.references:
        return ""
    groups = sorted({g for r in result.references for g in r.groups})
    rows = [[r.label, r.mean, *(r.groups.get(g) for g in groups), r.source] for r in result.references]
    return (
        "<h2>Published figures (test accuracy, %)</h2><p class='note'>For reference, with their sources; measured "
        "on the official VTAB-1k splits, which this suite's protocol approximates (see the suite's description)."
        f"</p>{html_table(['', 'mean', *groups, 'source'], rows)}"
    )


def _group_chart(result: BenchResult, group: GroupResult) -> str:
    """Per task of the group (and its mean): test accuracy and NLL of the ensemble and of each baseline."""
    import matplotlib

    matplotlib.use("svg", force=False)
    from matplotlib.figure import Figure

    tasks: list[TaskResult] = [t for t in result.tasks if t.group == group.name and t.status == "done"]
    if not tasks:
        return ""
    names = [t.id for t in tasks] + ["mean"]
    scopes = [t.classifiers for t in tasks] + [group.classifiers]
    present = [c for c in CLASSIFIERS if any(c in s for s in scopes)]
    figure = Figure(figsize=(9, 3.4))
    width = 0.8 / len(present)
    for axis, (metric, label) in zip(figure.subplots(1, 2), _METRICS[:2], strict=True):
        for i, classifier in enumerate(present):
            xs = [j + (i - (len(present) - 1) / 2) * width for j, s in enumerate(scopes) if classifier in s]
            ys = [getattr(s[classifier], metric) for s in scopes if classifier in s]
            axis.bar(xs, ys, width, label=_SHORT[classifier], color=COLOURS[i % len(COLOURS)])
        axis.set_xticks(range(len(names)), names, rotation=20, ha="right")
        axis.set_ylabel(f"test {label}")
        axis.set_title(f"{label} ({'higher' if metric == 'accuracy' else 'lower'} is better)")
        axis.grid(axis="y", alpha=0.3)
    figure.axes[0].legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # inline: without the XML prologue
    return f"<h2>Group {escape(group.name)}: the ensemble against each baseline</h2>{svg}"


def _html_audit(result: BenchResult) -> str:
    if not result.audit:
        return ""
    audited = [t for t in result.tasks if t.audit]
    proxies = list(audited[0].audit.proxies)
    rows = [[t.id, *(x for p in t.audit.proxies.values() for x in (p.tau, p.regret, p.top_pick))] for t in audited]
    rows.append(["mean", *(x for p in proxies for x in (result.audit.mean_tau[p], result.audit.mean_regret[p], ""))])
    header = ["task", *(f"{p}: {k}" for p in proxies for k in ("tau", "regret", "top pick"))]
    return (
        "<h2>Audit: can the ranking be trusted here?</h2><p class='note'>Every model fine-tuned on every task; each "
        "proxy's Kendall tau with the fine-tuned test accuracies, and its regret (the best fine-tuned accuracy "
        f"minus that of the proxy's top pick). 'size' ranks larger models first.</p>{html_table(header, rows)}"
    )
