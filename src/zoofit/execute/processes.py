"""Units in spawned worker processes on this machine: a process pool, each worker taking the next unit when free.

Workers are spawned (safe with CUDA) and import zoofit afresh; each gets the shared input once, when it starts,
and runs its units on its share of the CPU cores. A unit's result comes back pickled (tensors as bytes, not
shared-memory handles), its progress through a queue that a thread here replays into the caller's progress.
Workers die with this process, so a killed run leaves nothing running behind (strictly: with the thread that
iterates :meth:`LocalProcesses.map`, which spawns them; the pool is shut down before the map ends).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any

from zoofit.errors import ZoofitError
from zoofit.execute.base import Failed, I, R, S, Unit, cpu_cores, set_torch_threads, windowed
from zoofit.execute.relay import QueueProgress, replay
from zoofit.progress import Progress


class WorkerDied(ZoofitError):
    """A worker process ended while it ran a unit (killed, or out of memory)."""


class LocalProcesses:
    """``workers`` units at once, each in a spawned worker process on ``threads`` CPU threads (default: an
    equal share of this machine's cores)."""

    def __init__(self, workers: int, threads: int | None = None) -> None:
        self.workers = workers
        self.threads = threads or max(1, cpu_cores() // workers)

    def check(self) -> None:
        """Nothing to check: the workers start with each map."""

    def map(self, unit: Unit[S, I, R], shared: S, items: Sequence[I], progress: Progress) -> Iterator[tuple[int, R]]:
        if not items:  # no process to start
            return
        spawn = get_context("spawn")
        events = spawn.Queue()
        forwarder = threading.Thread(target=replay, args=(events, progress), daemon=True)
        forwarder.start()
        try:
            with ProcessPoolExecutor(
                self.workers,
                mp_context=spawn,
                initializer=_start_worker,
                initargs=(shared, self.threads, events, os.getpid()),
            ) as pool:  # on leaving, the units still running finish (a Ctrl-C in a terminal reaches them too)
                yield from self._run(pool, unit, items)
        except BrokenProcessPool as error:
            raise WorkerDied("a worker process died (out of memory?)") from error
        finally:
            events.put(None)
            forwarder.join()

    def _run(self, pool: ProcessPoolExecutor, unit: Unit[S, I, R], items: Sequence[I]) -> Iterator[tuple[int, R]]:
        def submit(item: I) -> Future[bytes]:
            with _main_script_hidden():  # the pool may spawn a worker on submit
                return pool.submit(_run_unit, unit, item)

        def outcome(future: Future[bytes]) -> R | Failed[R]:
            error = future.exception()
            if isinstance(error, BrokenProcessPool):
                raise error
            return Failed(error) if error is not None else pickle.loads(future.result())

        return windowed(
            items, self.workers, submit, lambda running: wait(running, return_when=FIRST_COMPLETED)[0], outcome
        )


@contextmanager
def _main_script_hidden() -> Iterator[None]:
    """Spawned processes re-run the caller's main script before they start work; a script without an
    ``if __name__ == "__main__":`` guard would then start its work again in every worker (which hangs).
    Workers need only zoofit, so the main script is hidden from them while they are spawned."""
    with _main_script_lock:  # maps in several threads may submit at once
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


# --- in a worker process

_worker: dict[str, Any] = {}


def _start_worker(shared: Any, threads: int, events: Any, parent: int) -> None:
    if sys.platform == "linux":  # die with the parent, so a killed run leaves no units running behind
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died while this worker was starting (before the line above)
        os._exit(1)
    set_torch_threads(threads)
    _worker.update(shared=shared, progress=QueueProgress(events))


def _run_unit(unit: Unit[Any, Any, Any], item: Any) -> bytes:
    """Run ``unit`` on ``item`` here; its result pickled plainly (torch would send tensors as shared memory)."""
    return pickle.dumps(unit(_worker["shared"], item, _worker["progress"]), protocol=pickle.HIGHEST_PROTOCOL)
