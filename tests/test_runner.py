"""Trials run through an executor: the same results in worker processes as here, progress forwarded, stored once
by the driver."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import tiny_spec
from zoofit.data import load_data
from zoofit.errors import ParameterError, ZoofitError
from zoofit.execute import InProcess, LocalProcesses
from zoofit.finetune import TrialConfig, TrialContext, TrialRunner, resolve_workers
from zoofit.finetune.runner import longest_first_makespan
from zoofit.store import cache_root


class RecordingProgress:
    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.advanced: Counter[str] = Counter()

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[RecordingProgress]:
        self.totals[description] = total
        yield _Advance(self, description)


class _Advance:
    def __init__(self, progress: RecordingProgress, description: str) -> None:
        self.progress, self.description = progress, description

    def advance(self, amount: int = 1) -> None:
        self.progress.advanced[self.description] += amount

    def describe(self, description: str) -> None:
        pass


@pytest.fixture
def context_for(make_image_folder):
    splits = load_data(str(make_image_folder(per_class=8, layout="split")))

    def make(root: Path) -> TrialContext:
        return TrialContext(splits, root, cache_root(), "cpu", "fp32", "fp32", eval_batch_size=16)

    return make


JOBS = [(tiny_spec(), TrialConfig(lr=lr, steps=6, batch_size=8, image_size=32)) for lr in (0.01, 0.03)]
JOBS.append((tiny_spec("tiny_effnet", "test_efficientnet"), TrialConfig(lr=0.01, steps=6, batch_size=8, image_size=32)))


def test_both_executors_train_the_same_trials(context_for, tmp_path: Path) -> None:
    """One thread a trial on either: the very same numbers, wherever a trial ran."""
    here = TrialRunner(context_for(tmp_path / "here"), executor=InProcess(threads=1)).run(JOBS)
    progress = RecordingProgress()
    pooled_runner = TrialRunner(
        context_for(tmp_path / "pooled"), executor=LocalProcesses(2, threads=1), progress=progress
    )
    pooled = pooled_runner.run(JOBS)
    assert pooled_runner.workers == 2
    assert [r.key for r in pooled] == [r.key for r in here] and not any(r.reused for r in pooled)
    for a, b in zip(here, pooled, strict=True):
        np.testing.assert_array_equal(a.val_probs, b.val_probs)
        np.testing.assert_array_equal(a.test_probs, b.test_probs)
        assert a.result == replace(b.result, seconds=a.result.seconds)
    assert len(progress.totals) == 3 and all(progress.advanced[d] == 6 for d in progress.totals)

    again = TrialRunner(context_for(tmp_path / "pooled"), workers=2).run([*JOBS, JOBS[0]])
    assert all(r.reused for r in again) and again[3].key == again[0].key


def test_a_failing_trial_fails_the_run_with_its_message(context_for, tmp_path: Path) -> None:
    broken = tiny_spec("broken", "test_resnet", weights="file:/nonexistent/weights.safetensors")
    jobs = [JOBS[0], (broken, JOBS[0][1])]
    with pytest.raises(ZoofitError, match="broken"):
        TrialRunner(context_for(tmp_path), workers=2).run(jobs)
    assert len(list(tmp_path.glob("trials/*/result.json"))) == 1  # the good trial is kept


def test_resolve_workers(monkeypatch) -> None:
    assert resolve_workers(3, torch.device("cpu")) == 3
    assert 1 <= resolve_workers(None, torch.device("cpu")) <= 4
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert resolve_workers(None, torch.device("cpu"), [0.21, 0.16, 0.16]) == 1  # the demo: one lane would idle
    assert resolve_workers(None, torch.device("cpu"), [0.21] * 3 + [0.16] * 6) == 2  # 3 lrs: they split evenly
    assert resolve_workers(None, torch.device("cpu"), [0.16, 0.16]) == 2
    assert longest_first_makespan([3, 2, 2, 1], 2) == 4
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert resolve_workers(None, torch.device("cpu"), [0.21, 0.16, 0.16]) == 4  # measured on 2 cores only
    assert resolve_workers(None, torch.device("cpu"), [0.21, 0.16, 0.16], efficiency={4: 0.9}) == 1  # measured there
    with pytest.raises(ParameterError, match="workers must be at least 1, not 0"):
        resolve_workers(0, torch.device("cpu"))


class RecordingExecutor(InProcess):
    """Runs the units here, noting the order they were handed over in."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list = []

    def map(self, unit, shared, items, progress):
        self.items.extend(items)
        return super().map(unit, shared, items, progress)


def test_workers_take_the_longest_trials_first(context_for, tmp_path: Path) -> None:
    executor = RecordingExecutor()
    records = TrialRunner(context_for(tmp_path), executor=executor).run(JOBS, costs=[1.0, 3.0, 2.0])
    assert executor.items == [JOBS[1], JOBS[2], JOBS[0]]
    assert [(r.model, r.config) for r in records] == [(spec.id, config) for spec, config in JOBS]


def test_a_script_without_a_main_guard_runs_workers(make_image_folder, tmp_path: Path) -> None:
    """Spawned workers must not re-run the caller's script (which would start a sweep in each worker)."""
    data = make_image_folder(per_class=4, layout="split")
    script = tmp_path / "sweep.py"
    script.write_text(
        "from pathlib import Path\n"
        "from tests.conftest import tiny_spec\n"
        "from zoofit.data import load_data\n"
        "from zoofit.finetune import TrialConfig, TrialContext, TrialRunner\n"
        "from zoofit.store import cache_root\n"
        f"context = TrialContext(load_data({str(data)!r}), Path({str(tmp_path / 'run')!r}), cache_root(), 'cpu',"
        " 'fp32', 'fp32', 16)\n"
        "jobs = [(tiny_spec(), TrialConfig(lr=lr, steps=2, batch_size=4, image_size=32)) for lr in (0.01, 0.02)]\n"
        "print(len(TrialRunner(context, workers=2).run(jobs)), 'trials')\n"
    )
    root = Path(__file__).parent.parent
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})  # fmt: skip
    assert done.returncode == 0 and "2 trials" in done.stdout, done.stderr


def test_a_trial_redone_on_resume_gives_the_same_numbers(context_for, tmp_path: Path) -> None:
    first = TrialRunner(context_for(tmp_path), workers=2).run(JOBS)
    shutil.rmtree(tmp_path / "trials" / first[1].key)  # as if the run had been killed during this trial
    again = TrialRunner(context_for(tmp_path), workers=2).run(JOBS)
    assert [r.reused for r in again] == [True, False, True]
    np.testing.assert_array_equal(again[1].val_probs, first[1].val_probs)
    assert again[1].result.losses == first[1].result.losses


def test_workers_end_normally_after_the_sweep(context_for, tmp_path: Path, monkeypatch) -> None:
    """The pool shuts its workers down at the end (PR_SET_PDEATHSIG would SIGKILL a worker whose spawning
    thread ended first)."""
    processes = {}
    submit = ProcessPoolExecutor.submit

    def recording_submit(pool, *args, **kwargs):
        future = submit(pool, *args, **kwargs)
        processes.update(pool._processes or {})
        return future

    monkeypatch.setattr(ProcessPoolExecutor, "submit", recording_submit)
    TrialRunner(context_for(tmp_path), workers=2).run(JOBS)
    assert processes and all(process.exitcode == 0 for process in processes.values())
