"""The executor protocol, and the executor that runs units one after another in this process."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Generic, Protocol, TypeVar

from zoofit.progress import Progress

S = TypeVar("S")
I = TypeVar("I")  # noqa: E741
R = TypeVar("R")
H = TypeVar("H", bound=Hashable)  # a handle of a submitted unit (a future, a Ray object reference)

#: A unit of work: ``unit(shared, item, progress) -> result``; module-level, so that other processes can call it.
Unit = Callable[[S, I, Progress], R]


class Executor(Protocol):
    """Runs units of work somewhere and hands their results back, as they finish."""

    workers: int  # units at once

    def check(self) -> None:
        """Before any work: make sure units can run (a cluster answers), else raise one line."""
        ...

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

    def check(self) -> None:
        """Nothing to check: units run here."""

    def map(self, unit: Unit[S, I, R], shared: S, items: Sequence[I], progress: Progress) -> Iterator[tuple[int, R]]:
        with torch_threads(self.threads):
            for index, item in enumerate(items):
                yield index, unit(shared, item, progress)


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Within: torch's CPU operations run on ``count`` threads (``None``: unchanged)."""
    import torch  # here, not at import: the CLI lists the executors before torch loads

    saved = torch.get_num_threads()
    set_torch_threads(count or saved)
    try:
        yield
    finally:
        set_torch_threads(saved)


def cpu_cores() -> int:
    """The CPU cores this process should use: ``OMP_NUM_THREADS`` where it is set (how a machine shared by several
    jobs gives each its part: two processes each on all cores run several times slower than each on its own),
    else the cores its CPU affinity allows."""
    told = os.environ.get("OMP_NUM_THREADS", "").strip()
    if told.isdigit() and int(told) >= 1:
        return int(told)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def set_torch_threads(count: int) -> None:
    """From now on, torch's CPU operations in this process run on ``count`` threads."""
    import torch

    torch.set_num_threads(count)


class Failed(Generic[R]):
    """The outcome of a unit that raised ``error`` (its own error: the map stops starting units)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def windowed(
    items: Sequence[I],
    window: int,
    submit: Callable[[I], H],
    finished: Callable[[Collection[H]], Iterable[H]],
    outcome: Callable[[H], R | Failed[R]],
) -> Iterator[tuple[int, R]]:
    """The map of :class:`Executor` over handles: keep ``window`` units submitted (the next free worker takes the
    next unit, and a failure stops the rest, not one more queued), yielding each result as ``finished`` (some of
    the running handles, once one is done) returns it. ``outcome`` gives a handle's result, or :class:`Failed`
    for the unit's own error; what it raises (a dead worker) ends the map at once."""
    pending = deque(enumerate(items))
    running: dict[H, int] = {}
    failure: BaseException | None = None
    while running or (pending and failure is None):
        while pending and failure is None and len(running) < window:
            index, item = pending.popleft()
            running[submit(item)] = index
        for handle in sorted(finished(list(running)), key=running.__getitem__):
            index = running.pop(handle)
            result = outcome(handle)
            if isinstance(result, Failed):
                failure = failure or result.error
            else:
                yield index, result
    if failure is not None:
        raise failure
