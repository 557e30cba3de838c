"""The executor protocol, and the executor that runs units one after another in this process."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, TypeVar

import torch

from zoofit.progress import Progress

S = TypeVar("S")
I = TypeVar("I")  # noqa: E741
R = TypeVar("R")

#: A unit of work: ``unit(shared, item, progress) -> result``; module-level, so that other processes can call it.
Unit = Callable[[S, I, Progress], R]


class Executor(Protocol):
    """Runs units of work somewhere and hands their results back, as they finish."""

    workers: int  # units at once

    def map(self, unit: Unit[S, I, R], shared: S, items: Sequence[I], progress: Progress) -> Iterator[tuple[int, R]]:
        """Yield ``(index, unit(shared, items[index], progress))`` for each item as it finishes, starting them
        in ``items``' order, each on the next free worker. The units report through ``progress`` (the caller's,
        wherever they run). When a unit fails, no other starts; those running finish and are yielded, then its
        error is raised."""
        ...


class InProcess:
    """Units one after another, here (on ``threads`` CPU threads; default: as many as now)."""

    workers = 1

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def map(self, unit: Unit[S, I, R], shared: S, items: Sequence[I], progress: Progress) -> Iterator[tuple[int, R]]:
        with torch_threads(self.threads):
            for index, item in enumerate(items):
                yield index, unit(shared, item, progress)


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Within: torch's CPU operations run on ``count`` threads (``None``: unchanged)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(count or saved)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
