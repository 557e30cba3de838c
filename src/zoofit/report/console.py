"""Terminal output with rich: progress bars for long work and the tables the CLI prints."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.progress import Progress as RichBar
from rich.table import Table

from zoofit.rank import RankedModel
from zoofit.zoo import Zoo


class _Task:
    def __init__(self, bar: RichBar, task_id: int) -> None:
        self._bar, self._id = bar, task_id

    def advance(self, amount: int = 1) -> None:
        self._bar.advance(self._id, amount)


class RichProgress:
    """One rich progress bar per task, kept on screen when done (with its elapsed time)."""

    def __init__(self, console: Console) -> None:
        self._bar = RichBar(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[_Task]:
        task_id = self._bar.add_task(description, total=total)
        yield _Task(self._bar, task_id)


def ranking_table(ranking: Sequence[RankedModel], *, k: int, metric: str) -> Table:
    table = Table(title=f"Leave-one-out {k}-NN ({metric}) ranking", title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("model", no_wrap=True)
    for column in ("kNN accuracy", "feature dim", "input px", "GFLOPs", "images/s", "seconds"):
        table.add_column(column, justify="right")
    for position, row in enumerate(ranking, start=1):
        speed = "cached" if row.images_per_second is None else f"{row.images_per_second:.0f}"
        table.add_row(
            str(position),
            row.model,
            f"{row.knn_accuracy:.4f}",
            str(row.feature_dim),
            str(row.input_size),
            f"{row.gflops:.2f}",
            speed,
            f"{row.seconds:.1f}",
        )
    return table


def zoo_table(zoo: Zoo) -> Table:
    table = Table(title=f"zoo '{zoo.name}' ({len(zoo)} models)", title_justify="left", caption=zoo.description)
    table.add_column("id", no_wrap=True)
    for column in ("timm architecture", "weights", "input px", "upstream", "licence"):
        table.add_column(column)
    for spec in zoo.models:
        size = str(spec.preprocessing.input_size) if spec.preprocessing else "timm default"
        table.add_row(spec.id, spec.arch, spec.weights, size, spec.upstream or "-", spec.license or "-")
    return table
