"""Terminal output with rich: progress bars for long work and the tables the CLI prints."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichBar
from rich.table import Table

from zoofit.report.rows import (
    DOMAIN_COLUMNS,
    RESULT_COLUMNS,
    ROBUSTNESS_COLUMNS,
    WEIGHT_COLUMNS,
    domain_rows,
    per_class_columns,
    per_class_rows,
    result_rows,
    robustness_rows,
    weight_rows,
)
from zoofit.result import DomainResult, RobustnessResult, RunResult

if TYPE_CHECKING:  # only named in annotations: the report needs neither torch nor timm
    from zoofit.rank import Proxy, RankedModel
    from zoofit.zoo import Zoo


class _Task:
    def __init__(self, bar: RichBar, task_id: int) -> None:
        self._bar, self._id = bar, task_id

    def advance(self, amount: int = 1) -> None:
        self._bar.advance(self._id, amount)

    def describe(self, description: str) -> None:
        self._bar.update(self._id, description=description)


class RichProgress:
    """One rich progress bar per task, kept on screen when done (with its elapsed time)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._bar = RichBar(
            TextColumn("{task.description:<24}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar.live.is_started:  # where no task began, nothing was drawn, and no blank line follows
            self._bar.stop()

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[_Task]:
        if not self._bar.live.is_started:
            self._bar.start()
        task_id = self._bar.add_task(description, total=total)
        start = time.perf_counter()
        yield _Task(self._bar, task_id)
        if not self._console.is_terminal:  # no live bars in a log file: one line per finished task instead
            self._console.print(f"{description}: {total} done in {time.perf_counter() - start:.1f} s", highlight=False)


def ranking_table(ranking: Sequence[RankedModel], proxy: Proxy) -> Table:
    table = Table(title=f"Ranking by {proxy.title}", title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("model", no_wrap=True)
    for column in (proxy.label, "feature dim", "input px", "GFLOPs", "images/s", "seconds"):
        table.add_column(column, justify="right")
    for position, row in enumerate(ranking, start=1):
        speed = "cached" if row.images_per_second is None else f"{row.images_per_second:.0f}"
        table.add_row(
            str(position),
            row.model,
            f"{row.score:.4f}",
            str(row.feature_dim),
            str(row.input_size),
            f"{row.gflops:.2f}",
            speed,
            f"{row.seconds:.1f}",
        )
    return table


def zoo_table(zoo: Zoo, facts: list[dict[str, Any]]) -> Table:
    """The models of ``zoo`` with their facts (:func:`zoofit.zoo.hub.model_facts`)."""
    table = Table(title=f"zoo '{zoo.name}' ({len(zoo)} models)", title_justify="left", caption=zoo.description)
    table.add_column("id", no_wrap=True)
    for column in ("weights", "upstream", "params M", "GFLOPs", "input px", "licence"):
        table.add_column(column, justify="right" if column in ("params M", "GFLOPs", "input px") else "left")
    for row in facts:
        size = f"{row['input_size']}{' fixed' if row['fixed_input_size'] else ''}" if row["input_size"] else "-"
        numbers = [f"{row[key]:g}" if row[key] is not None else "-" for key in ("params_m", "gflops")]
        table.add_row(row["id"], row["weights"], row["upstream"] or "-", *numbers, size, row["license"] or "-")
    return table


def run_tables(result: RunResult) -> Group:
    """The test results of a run, then its robustness where it was measured."""
    tables = [run_table(result)]
    if result.ensemble.by_kind is not None:
        title = "The ensemble's weight by kind (upstream and downstream diversity)"
        tables.append(_table(title, WEIGHT_COLUMNS, weight_rows(result.ensemble.by_kind), bold_row=-1))
    if result.robustness:
        tables.append(robustness_table(result.robustness))
    if result.domains:
        tables.append(domains_table(result.domains))
    return Group(*tables)


def domains_table(domains: dict[str, DomainResult]) -> Table:
    """Accuracy, NLL and ECE of each classifier on each shifted domain."""
    return _table("Shifted domains (real distribution shift)", DOMAIN_COLUMNS, domain_rows(domains), bold_row=0)


def domain_tables(name: str, domain: DomainResult) -> Group:
    """A run's classifiers on one domain: their scores, then their accuracy per class."""
    return Group(
        domains_table({name: domain}),
        _table(f"Accuracy per class ({name})", per_class_columns(domain), per_class_rows(domain), bold_row=-1),
    )


def run_table(result: RunResult) -> Table:
    """The end-of-run comparison: the ensemble against the single-model baselines, on the test split."""
    return _table(f"Test results ({result.data})", RESULT_COLUMNS, result_rows(result), bold_row=0)


def robustness_table(report: RobustnessResult) -> Table:
    """Accuracy, NLL and ECE of the ensemble and the best single trial, clean and under each corruption."""
    title = f"Robustness ({report.images} test images, each corruption at severity {report.severity} of 5)"
    rows = robustness_rows(report)
    return _table(title, ROBUSTNESS_COLUMNS, rows, bold_row=len(rows) - 1)


def _table(title: str, columns: Sequence[str], rows: list[list[Any]], *, bold_row: int) -> Table:
    """Text as it is, left-aligned; numbers right-aligned to 4 decimals (a column is text if its first cell is)."""
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        text = bool(rows) and isinstance(rows[0][i], str)
        table.add_column(column, no_wrap=i == 0, justify="left" if text else "right")
    for i, row in enumerate(rows):
        cells = [cell if isinstance(cell, str) else _maybe(cell) for cell in row]
        table.add_row(*cells, style="bold" if i == bold_row else None)
    return table


def _maybe(value: float | None) -> str:
    if isinstance(value, int):
        return str(value)
    return "-" if value is None else f"{value:.4f}"


def prediction_rows(
    images: Sequence[Path], probs: np.ndarray, class_names: Sequence[str], top: int
) -> list[dict[str, Any]]:
    """Per image, the ``top`` classes with their probabilities, best first."""
    rows = []
    for image, row in zip(images, probs, strict=True):
        best = np.argsort(-row, kind="stable")[:top]
        entry: dict[str, Any] = {"image": str(image)}
        for rank, index in enumerate(best, start=1):
            entry[f"class_{rank}"] = class_names[index]
            entry[f"probability_{rank}"] = round(float(row[index]), 6)
        rows.append(entry)
    return rows


def predictions_table(rows: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="Predictions", title_justify="left")
    table.add_column("image", overflow="fold")
    table.add_column("top classes (probability)")
    for row in rows:
        ranks = sorted(int(key.split("_")[1]) for key in row if key.startswith("class_"))
        table.add_row(row["image"], ", ".join(f"{row[f'class_{r}']} ({row[f'probability_{r}']:.3f})" for r in ranks))
    return table


def suggestions_table(rows: Sequence[Any], shown: int = 20) -> Table:
    """The first ``shown`` of the suggested images (:class:`~zoofit.labelling.Suggestion` rows), best first."""
    table = Table(title=f"Label these first ({min(shown, len(rows))} of {len(rows)} shown)", title_justify="left")
    for column in ("image", "predicted", "probability", "score", "why"):
        table.add_column(column, overflow="fold", justify="right" if column in ("probability", "score") else "left")
    for row in rows[:shown]:
        table.add_row(row.path, row.predicted, f"{row.probability:.3f}", f"{row.score:.3f}", row.why)
    return table
