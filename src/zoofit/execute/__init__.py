"""Executors: where units of work run (here, in local worker processes, on a Ray cluster), chosen by name.

A unit is ``unit(shared, item, progress) -> result``, a module-level function: ``shared`` is what every unit of
a map needs (sent to each worker once), ``item`` the one unit's input. An executor returns each unit's result
to the caller, which alone writes the store; nothing above this seam knows where a unit ran.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoofit.errors import ParameterError
from zoofit.execute.base import Executor, InProcess, Unit
from zoofit.execute.processes import LocalProcesses, WorkerDied
from zoofit.execute.ray_cluster import RayCluster
from zoofit.execute.ray_probe import ClusterUnreachable
from zoofit.registry import Registry


def local(workers: int | None = None, **options: Any) -> Executor:
    """This process for one worker (``None``: one); more: that many spawned worker processes on this machine."""
    if options:
        raise ParameterError.of(next(iter(options)), "is not a setting of the local executor")
    return InProcess() if (workers or 1) == 1 else LocalProcesses(workers)


#: Executors by name: a factory of an executor for ``workers`` units at once (``None``: its own default) with
#: its own keyword ``options``, and its one-line help.
EXECUTORS: Registry[Callable[..., Executor]] = Registry("executor")
EXECUTORS.add("local", local, help="this machine (this process, or spawned worker processes)")
EXECUTORS.add("ray", RayCluster, help="a Ray cluster (a task per unit, the results stored here)")


def named(name: str, workers: int | None = None, **options: Any) -> Executor:
    """The executor ``name`` running ``workers`` units at once, with its ``options``."""
    return EXECUTORS.get(name)(None if workers is None else check_workers(workers), **options)


def check_workers(workers: int) -> int:
    """``workers``, if it is a number of units to run at once."""
    if workers < 1:
        raise ParameterError.of("workers", f"must be at least 1, not {workers}")
    return workers


__all__ = [
    "EXECUTORS",
    "ClusterUnreachable",
    "Executor",
    "InProcess",
    "LocalProcesses",
    "RayCluster",
    "Unit",
    "WorkerDied",
    "check_workers",
    "local",
    "named",
]
