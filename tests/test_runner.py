"""Trials run through an executor: the same results in worker processes as here, progress forwarded, stored once
by the driver."""

from __future__ import annotations

import csv
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
import timm
import torch
from safetensors.torch import save_file

from tests.conftest import tiny_spec
from zoofit.data import load_data
from zoofit.errors import ParameterError, ZoofitError
from zoofit.execute import InProcess, LocalProcesses
from zoofit.execute.base import cpu_cores
from zoofit.finetune import TrialContext, TrialRunner, resolve_workers
from zoofit.finetune.runner import longest_first_makespan
from zoofit.store import cache_root
from zoofit.sweep_config import TrialConfig
from zoofit.zoo import ModelSpec, Preprocessing, Zoo


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


def test_a_failing_trial_is_recorded_the_others_go_on_and_a_rerun_retries_it(context_for, tmp_path: Path) -> None:
    weights = tmp_path / "later.safetensors"  # not there yet: the trial that needs it fails
    late = tiny_spec("late", "test_resnet", weights=f"file:{weights}")
    jobs = [JOBS[0], (late, JOBS[0][1])]
    runner = TrialRunner(context_for(tmp_path / "run"), workers=1)
    (finished,) = runner.run(jobs)
    assert finished.model == "tiny_resnet" and len(list(tmp_path.glob("run/trials/*/result.json"))) == 1
    (failed,) = runner.failed
    assert failed.model == "late" and failed.settings == JOBS[0][1] and str(weights) in failed.reason
    assert "\n" not in failed.reason and failed.row()["failed"] == failed.reason

    torch.manual_seed(0)
    save_file(timm.create_model("test_resnet", num_classes=10).state_dict(), str(weights))
    rerun = TrialRunner(context_for(tmp_path / "run"), workers=1)
    again = rerun.run(jobs)
    assert [r.model for r in again] == ["tiny_resnet", "late"] and [r.reused for r in again] == [True, False]
    assert rerun.failed == []


def test_resolve_workers(monkeypatch) -> None:
    assert resolve_workers(3, torch.device("cpu")) == 3
    assert 1 <= resolve_workers(None, torch.device("cpu")) <= 4
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert resolve_workers(None, torch.device("cpu"), [0.21, 0.16, 0.16]) == 1  # the demo: one lane would idle
    assert resolve_workers(None, torch.device("cpu"), [0.21] * 3 + [0.16] * 6) == 2  # 3 lrs: they split evenly
    assert resolve_workers(None, torch.device("cpu"), [0.16, 0.16]) == 2
    assert longest_first_makespan([3, 2, 2, 1], 2) == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    assert resolve_workers(None, torch.device("cpu"), [0.21, 0.16, 0.16]) == 4  # measured on 2 cores only
    assert resolve_workers(None, torch.device("cpu"), [0.21, 0.16, 0.16], efficiency={4: 0.9}) == 1  # measured there
    with pytest.raises(ParameterError, match="workers must be at least 1, not 0"):
        resolve_workers(0, torch.device("cpu"))


def test_the_cores_a_shared_machine_gives_are_honoured(monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu_cores() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert cpu_cores() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # another job has the other cores
    assert cpu_cores() == 1 and resolve_workers(None, torch.device("cpu")) == 1
    assert LocalProcesses(2).threads == 1 and LocalProcesses(1).threads == 1


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
        "from zoofit.finetune import TrialContext, TrialRunner\n"
        "from zoofit.sweep_config import TrialConfig\n"
        "from zoofit.store import cache_root\n"
        f"context = TrialContext(load_data({str(data)!r}), Path({str(tmp_path / 'run')!r}), cache_root(), 'cpu',"
        " 'fp32', 'fp32', 16)\n"
        "jobs = [(tiny_spec(), TrialConfig(lr=lr, steps=2, batch_size=4, image_size=32)) for lr in (0.01, 0.02)]\n"
        "print(len(TrialRunner(context, workers=2).run(jobs)), 'trials')\n"
    )
    root = Path(__file__).parent.parent
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180, cwd=root,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "src")])})  # fmt: skip
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


class FragileNet(torch.nn.Module):
    """A user's network that ranks (no gradients) but cannot train while the file ``flag`` exists, as a model that
    cannot train at the asked size would."""

    def __init__(self, flag: str) -> None:
        super().__init__()
        self.flag = Path(flag)
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and self.flag.exists():
            raise RuntimeError(f"cannot train while {self.flag} exists")
        return self.fc(self.conv(images).mean(dim=(2, 3)))


def fragile_zoo(flag: Path, *models: str) -> Zoo:
    prep = Preprocessing(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=1.0)
    fragile = ModelSpec(id="fragile", arch="module:tests.test_runner:FragileNet", weights="random",
                        arch_kwargs={"head": "fc", "flag": str(flag)}, preprocessing=prep)  # fmt: skip
    return Zoo("fragile", tuple(spec for spec in (tiny_spec(), fragile) if spec.id in models))


def test_a_run_records_a_failed_trial_goes_on_and_a_rerun_retries_it(make_image_folder, tmp_path: Path) -> None:
    from zoofit import ZooFit, preset
    from zoofit.result import RunResult

    images = make_image_folder(per_class=8, layout="split")
    shutil.copy(next((images / "train").rglob("*.png")), images / "train" / "loose.png")  # no class: skipped
    splits = load_data(str(images))
    flag = tmp_path / "flag"
    flag.touch()
    sweep = preset("quick").override(
        top_k=2, lrs=(0.03,), steps=(4,), batch_size=8, image_size=32, shift_images=0, members=("trial",)
    )  # a pool of trials alone: the fragile model's linear head would not fail
    fit = ZooFit(fragile_zoo(flag, "tiny_resnet", "fragile"), sweep=sweep, precision="fp32", workers=1)
    fit.fit(splits, tmp_path / "run")
    (failed,) = RunResult.read(tmp_path / "run").failed_trials
    (skipped,) = RunResult.read(tmp_path / "run").skipped
    assert (skipped.count, skipped.reason, skipped.examples) == (1, "images outside a class folder", ("loose.png",))
    assert failed.model == "fragile" and f"RuntimeError: cannot train while {flag} exists" in failed.reason
    rows = list(csv.DictReader((tmp_path / "run" / "trials.csv").open()))
    assert [(r["model"], r["failed"]) for r in rows] == [("tiny_resnet", ""), ("fragile", failed.reason)]
    assert [m.model for m in fit.result_.ensemble.members] == ["tiny_resnet"]

    flag.unlink()
    again = fit.fit(splits, tmp_path / "run").result_
    assert again.failed_trials == [] and again.units.computed == 1  # the failed trial, retried; the other reused

    flag.touch()
    with pytest.raises(ZoofitError, match=r"no trial finished \(1 failed; the first: model 'fragile' failed: Runtime"):
        ZooFit(fragile_zoo(flag, "fragile"), sweep=sweep, precision="fp32", workers=1).fit(splits, tmp_path / "other")
