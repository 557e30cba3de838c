"""Running the trials of a sweep: those not yet stored, one at a time here or several at once, here and in
worker processes.

Small models leave a device under-used: on 2 CPU cores two single-threaded trials side by side train 1.14x
faster than one after the other on both cores (frozen MobileNetV2s, 112 px, batch 32; 1.26x fine-tuned
whole); on a GPU, concurrent trials hide each other's Python overhead. Workers are spawned (safe with CUDA),
get one copy of the data each, report progress through a queue, and die with this process; each trial is
stored atomically by whoever trained it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, contextmanager
from multiprocessing import get_context
from typing import Any

import torch

from zoofit.errors import ZoofitError
from zoofit.finetune.config import TrialConfig
from zoofit.finetune.sweep import TrialContext, TrialRecord, load_record, train_and_store
from zoofit.progress import Progress, SilentProgress, TaskHandle
from zoofit.zoo import ModelSpec

log = logging.getLogger("zoofit")

Job = tuple[ModelSpec, TrialConfig]

MAX_AUTO_WORKERS = 4

#: On a 2-core CPU, one trial on both cores trains at this fraction of the speed of two single-threaded trials
#: side by side: the demo's MobileNetV2 trials frozen to stride 4 took 57-63 s for 300 steps on 2 threads, and
#: 98-112 s on one thread beside another trial (AMD EPYC). Not measured on more cores.
TWO_THREAD_EFFICIENCY = 0.875


def resolve_workers(workers: int | None, device: torch.device, costs: Sequence[float] = ()) -> int:
    """``None`` (auto): on a GPU, 4 trials share it. On a CPU, one lane per core (at most 4 lanes, the cores
    shared among them), except on 2 cores where the trials' relative ``costs`` would not split evenly across
    two lanes: then one trial at a time on both. Three trials on two lanes leave one lane idle for a whole
    trial (the demo frozen to stride 4: 274 s in 1.5 GiB one at a time, 281 s in 2.6 GiB on two lanes)."""
    if workers is not None:
        if workers < 1:
            raise ZoofitError(f"--workers must be at least 1, not {workers}")
        return workers
    if device.type == "cuda":
        return MAX_AUTO_WORKERS
    lanes = max(1, min(MAX_AUTO_WORKERS, os.cpu_count() or 1))
    if lanes != 2 or not costs:
        return lanes
    one_at_a_time = sum(costs) / (2 * TWO_THREAD_EFFICIENCY)
    return 1 if one_at_a_time < longest_first_makespan(costs, 2) else 2


def longest_first_makespan(costs: Sequence[float], lanes: int) -> float:
    """When the last of ``costs`` finishes if ``lanes`` take them longest first, each the next when free."""
    finish = [0.0] * lanes
    for cost in sorted(costs, reverse=True):
        finish[finish.index(min(finish))] += cost
    return max(finish)


class TrialRunner:
    """Runs trials into the run store of ``context`` and returns their records; stored trials are reused."""

    def __init__(self, context: TrialContext, *, workers: int = 1, progress: Progress | None = None) -> None:
        self.context = context
        self.workers = workers
        self.progress = progress or SilentProgress()

    def run(self, jobs: Sequence[Job], costs: Sequence[float] | None = None) -> list[TrialRecord]:
        """The records of ``jobs``, in order; the missing trials are trained first. Given each job's relative
        ``costs``, workers take the most expensive first, so the last trial to finish is a short one."""
        store = self.context.store
        keys = [self.context.key(spec, config) for spec, config in jobs]
        missing = {key: job for key, job in zip(keys, jobs, strict=True) if not store.has_trial(key)}
        if self.workers > 1 and missing:  # even a single trial: its thread count, and so its numbers, stay put
            cost = dict(zip(keys, costs or [0.0] * len(keys), strict=True))
            longest_first = sorted(missing, key=lambda key: -cost[key])
            _run_in_workers([missing[key] for key in longest_first], self.context, self.workers, self.progress)
        else:
            for spec, config in missing.values():
                train_and_store(spec, config, self.context, self.progress)
        records = []
        for key, (spec, config) in zip(keys, jobs, strict=True):
            record = load_record(store, key, spec.id, config, reused=key not in missing)
            if not record.reused:
                log.info("trial %s (%s, %s): val accuracy %.4f", key, spec.id, config.label(), record.val["accuracy"])
            records.append(record)
        return records


def _run_in_workers(jobs: list[Job], context: TrialContext, workers: int, progress: Progress) -> None:
    """Train ``jobs`` on ``workers`` lanes, this process and ``workers - 1`` worker processes, each lane with
    its share of the CPU cores as threads and taking the next job (in ``jobs``' order) when it is free.
    Training here too saves one process: its start-up and the memory of its own torch (~0.7 GiB)."""
    spawn = get_context("spawn")
    events = spawn.Queue()
    threads = max(1, (os.cpu_count() or 1) // workers)
    pending = deque(jobs)
    forwarder = threading.Thread(target=_forward_progress, args=(events, progress), daemon=True)
    forwarder.start()
    try:
        # The lanes (threads) outlive the pool: a worker is spawned by the lane that first submits to it, and
        # its PR_SET_PDEATHSIG fires when that *thread* ends, so the pool must be shut down before they do.
        with (
            ThreadPoolExecutor(workers - 1, thread_name_prefix="zoofit-lane") as lanes,
            ProcessPoolExecutor(
                workers - 1,
                mp_context=spawn,
                initializer=_start_worker,
                initargs=(context, threads, events, os.getpid()),
            ) as pool,
        ):
            try:
                local = _next(pending)  # the most expensive job starts at once, here, while the workers spawn
                remote = [lanes.submit(_drive, pool, pending) for _ in range(workers - 1)]
                _release_cached_gpu_memory(context.device)
                with _torch_threads(threads):
                    while local is not None:
                        train_and_store(*local, context, progress)
                        local = _next(pending)
                for lane in remote:  # the first failure found is raised; another lane's may be lost with it
                    lane.result()
            except BaseException:  # stop like a sequential sweep would; trials already running still finish
                pending.clear()
                pool.shutdown(cancel_futures=True)
                raise
    except BrokenProcessPool as error:
        raise ZoofitError(
            f"a trial worker process died (out of memory?); finished trials are kept in {context.run_root} - "
            "rerun the same command, with --workers 1 to train one trial at a time"
        ) from error
    finally:
        events.put(None)
        forwarder.join()


def _next(pending: deque[Job]) -> Job | None:
    try:
        return pending.popleft()  # atomic: lanes in several threads take from one deque
    except IndexError:
        return None


def _drive(pool: ProcessPoolExecutor, pending: deque[Job]) -> None:
    """One worker lane: hand the next job to the pool and wait for it, until none is left (or one fails:
    then no lane starts another)."""
    while (job := _next(pending)) is not None:
        with _main_script_hidden():  # the pool may spawn a worker on submit
            future = pool.submit(_work, *job)
        try:
            future.result()
        except BaseException:
            pending.clear()
            raise


def _release_cached_gpu_memory(device: str) -> None:
    """Hand the GPU memory this process cached (the ranking's) back, for the workers."""
    if torch.device(device).type == "cuda" and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


@contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    saved = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextmanager
def _main_script_hidden() -> Iterator[None]:
    """Spawned processes re-run the caller's main script before they start work; a script without an
    ``if __name__ == "__main__":`` guard would then start a sweep in every worker (which hangs). Workers need
    only zoofit, so the main script is hidden from them while they are spawned."""
    with _main_script_lock:  # lanes in several threads submit
        main = sys.modules["__main__"]
        saved = {name: getattr(main, name) for name in ("__spec__", "__file__") if hasattr(main, name)}
        main.__spec__ = None
        if "__file__" in saved:
            del main.__file__
        try:
            yield
        finally:
            for name, value in saved.items():
                setattr(main, name, value)


_main_script_lock = threading.Lock()


# --- in the parent: progress events from the workers -> the caller's Progress


def _forward_progress(events: Any, progress: Progress) -> None:
    """Replay ``("start", id, description, total)``, ``("advance", id, n)`` and ``("end", id)`` until ``None``."""
    with ExitStack() as open_tasks:
        tasks: dict[str, tuple[ExitStack, TaskHandle]] = {}
        while (event := events.get()) is not None:
            kind, task_id, *rest = event
            if kind == "start":
                stack = open_tasks.enter_context(ExitStack())
                tasks[task_id] = (stack, stack.enter_context(progress.task(*rest)))
            elif kind == "advance":
                tasks[task_id][1].advance(*rest)
            else:
                tasks.pop(task_id)[0].close()


# --- in a worker process

_worker: dict[str, Any] = {}


def _start_worker(context: TrialContext, threads: int, events: Any, parent: int) -> None:
    if sys.platform == "linux":  # die with the parent, so a killed run leaves no trials training behind
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died while this worker was starting (before the line above)
        os._exit(1)
    torch.set_num_threads(threads)
    _worker.update(context=context, progress=_QueueProgress(events))


def _work(spec: ModelSpec, config: TrialConfig) -> str:
    return train_and_store(spec, config, _worker["context"], _worker["progress"])


class _QueueTask:
    def __init__(self, events: Any, task_id: str) -> None:
        self._events, self._id = events, task_id

    def advance(self, amount: int = 1) -> None:
        self._events.put(("advance", self._id, amount))


class _QueueProgress:
    """A worker's Progress: sends its events to the parent."""

    def __init__(self, events: Any) -> None:
        self._events = events
        self._count = 0

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[TaskHandle]:
        self._count += 1
        task_id = f"{os.getpid()}-{self._count}"
        self._events.put(("start", task_id, description, total))
        try:
            yield _QueueTask(self._events, task_id)
        finally:
            self._events.put(("end", task_id))
