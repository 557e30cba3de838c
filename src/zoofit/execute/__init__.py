"""Executors: where units of work run (here, in local worker processes, later on Ray), chosen by name.

A unit is ``unit(shared, item, progress) -> result``, a module-level function: ``shared`` is what every unit of
a map needs (sent to each worker once), ``item`` the one unit's input. An executor returns each unit's result
to the caller, which alone writes the store; nothing above this seam knows where a unit ran.
"""

from __future__ import annotations

from collections.abc import Callable

from zoofit.errors import ParameterError
from zoofit.execute.base import Executor, InProcess, Unit
from zoofit.execute.processes import LocalProcesses, WorkerDied


def local(workers: int) -> Executor:
    """This process for one worker; more: that many spawned worker processes on this machine."""
    return InProcess() if workers == 1 else LocalProcesses(workers)


#: Executors by name: a factory of an executor for ``workers`` units at once.
EXECUTORS: dict[str, Callable[[int], Executor]] = {"local": local}


def named(name: str, workers: int) -> Executor:
    """The executor ``name`` running ``workers`` units at once."""
    if name not in EXECUTORS:
        raise ParameterError.of("executor", f"must be one of {', '.join(sorted(EXECUTORS))}, not {name!r}")
    return EXECUTORS[name](check_workers(workers))


def check_workers(workers: int) -> int:
    """``workers``, if it is a number of units to run at once."""
    if workers < 1:
        raise ParameterError.of("workers", f"must be at least 1, not {workers}")
    return workers


__all__ = [
    "EXECUTORS",
    "Executor",
    "InProcess",
    "LocalProcesses",
    "Unit",
    "WorkerDied",
    "check_workers",
    "local",
    "named",
]
