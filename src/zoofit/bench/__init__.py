"""Benchmarks over suites of tasks: :class:`Bench` runs the method on each task of a :class:`Suite` and writes one
table, :class:`BenchResult`."""

from zoofit.bench.result import BENCH, BENCH_CSV, BENCH_HTML, CLASSIFIERS, BenchResult, GroupResult, Row, TaskResult
from zoofit.bench.suite import Reference, Suite, Task, builtin_suites, load_suite

__all__ = [
    "BENCH",
    "BENCH_CSV",
    "BENCH_HTML",
    "CLASSIFIERS",
    "Bench",
    "BenchResult",
    "GroupResult",
    "Reference",
    "Row",
    "Suite",
    "Task",
    "TaskResult",
    "builtin_suites",
    "load_suite",
]


def __getattr__(name: str):  # Bench loads torch: imported on first use, so the CLI checks a suite without it
    if name == "Bench":
        from zoofit.bench.runner import Bench

        return Bench
    raise AttributeError(name)
