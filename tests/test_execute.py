"""Executors: results come back as units finish; a failing unit stops the rest; a dead worker is named."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.test_runner import RecordingProgress
from zoofit.errors import ParameterError
from zoofit.execute import EXECUTORS, InProcess, LocalProcesses, WorkerDied, named
from zoofit.progress import Progress


def unit(folder: Path, item: str, progress: Progress) -> str:
    """``wait``: until ``fail`` has failed; ``die``: the worker process ends; else the item's name, upper case."""
    with progress.task(item, total=1) as task:
        if item == "fail":
            (folder / "failed").touch()
            raise ValueError("fail failed")
        if item == "wait":
            while not (folder / "failed").exists():
                time.sleep(0.05)
            time.sleep(1.0)  # the failure reaches the driver first
        if item == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        task.advance()
    return item.upper()


def test_results_come_back_with_their_index_and_progress(tmp_path: Path) -> None:
    """(In worker processes: tests/test_runner.py's sweep on both executors.)"""
    progress = RecordingProgress()
    results = dict(InProcess().map(unit, tmp_path, ["a", "b", "c"], progress))
    assert results == {0: "A", 1: "B", 2: "C"}
    assert progress.totals == {"a": 1, "b": 1, "c": 1} and set(progress.advanced.values()) == {1}


def test_a_failing_unit_lets_running_ones_finish_and_starts_no_other(tmp_path: Path) -> None:
    progress = RecordingProgress()
    results = []
    with pytest.raises(ValueError, match="fail failed"):
        for result in LocalProcesses(2, threads=1).map(unit, tmp_path, ["wait", "fail", "c", "d"], progress):
            results.append(result)
    assert results == [(0, "WAIT")] and set(progress.totals) == {"wait", "fail"}


def test_a_dead_worker_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WorkerDied, match="worker process died"):
        list(LocalProcesses(2, threads=1).map(unit, tmp_path, ["a", "die"], RecordingProgress()))


def test_executors_by_name() -> None:
    assert isinstance(named("local", 1), InProcess) and named("local", 3).workers == 3
    with pytest.raises(ParameterError, match="executor must be one of local, ray, not 'dask'"):
        named("dask", 2)
    with pytest.raises(ParameterError, match="workers must be at least 1, not 0"):
        named("local", 0)
    assert "local" in EXECUTORS
