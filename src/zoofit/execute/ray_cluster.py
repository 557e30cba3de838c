"""Units as Ray tasks on a Ray cluster (``pip install 'zoofit[ray]'``): across the GPUs and machines it has.

The shared input goes to Ray's object store once (``ray.put``) and each node's workers read it from there; each
item is a task that returns its unit's result, pickled, to this process (the driver), which alone writes the
run folder and its cache, so the nodes need no shared file system. A task whose worker or node dies is retried
by Ray (``retries`` times); a unit's own error is final, and raised here as it would be locally. The units'
progress comes back through a Ray queue (an actor) that a thread here replays into the caller's progress.

Joining the cluster and waiting for it are bounded (``timeout``, :mod:`zoofit.execute.ray_probe`): an address
where no cluster answers is one line before any unit starts, and so is a cluster that stops answering during a
run (whose finished units are stored: rerunning resumes). Ray's own log lines go to its log files (the
console shows them only where the ``zoofit`` logger is at DEBUG).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import threading
from collections.abc import Collection, Iterator, Sequence
from types import ModuleType
from typing import Any, ClassVar

from zoofit.errors import ParameterError, ZoofitError
from zoofit.execute.base import Failed, I, R, S, Unit, set_torch_threads, windowed
from zoofit.execute.processes import WorkerDied
from zoofit.execute.ray_probe import ClusterUnreachable, Target, Watch, check, target
from zoofit.execute.relay import QueueProgress, replay
from zoofit.progress import Progress

_JOINING = threading.Lock()  # ray.init, once per process
log = logging.getLogger("zoofit")

#: GPU share of a unit where the cluster has GPUs: four units share one, as trials do on one local GPU.
DEFAULT_UNIT_GPUS = 0.25
#: CPUs of a unit: one thread each (small models train faster side by side than on all cores; see
#: benchmarks/results/notes-cpu-lanes.md).
DEFAULT_UNIT_CPUS = 1.0
#: Times Ray runs a unit again whose worker process or node died.
DEFAULT_RETRIES = 3
#: Seconds to wait for the cluster to answer: when joining it, and when it falls silent during a run.
DEFAULT_TIMEOUT = 30.0
#: Seconds Ray's driver waits for a silent cluster before it ends the whole process (Ray's default; raised
#: through ``RAY_gcs_rpc_server_reconnect_timeout_s`` where a longer ``timeout`` is given, so that a lost cluster
#: ends a run with this module's line instead).
RAY_RECONNECT_SECONDS = 60


def import_ray() -> ModuleType:
    """The ``ray`` module, or a one-line error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise ZoofitError("the Ray executor needs Ray: pip install 'zoofit[ray]'") from None
    return ray


class RayCluster:
    """Each unit a Ray task on the cluster at ``address`` (``None``: ``$RAY_ADDRESS``, else a cluster started on
    this machine with ``ray start``, else a local Ray started for the run; a Ray this process has already
    started or joined is used as it is).

    Parameters
    ----------
    workers : int, optional
        Units at once (``None``: as many as the cluster's resources hold when a map starts).
    address : str, optional
        The cluster's ``HOST:PORT``.
    unit_gpus, unit_cpus : float, optional
        What each unit asks Ray for (``None``: a quarter of a GPU where the cluster has GPUs, none elsewhere; one
        CPU). A unit's torch runs on ``unit_cpus`` threads.
    retries : int
        Times a unit whose worker or node died is run again.
    timeout : float
        Seconds to wait for the cluster to answer, when joining it and whenever it falls silent during a run;
        then a one-line :class:`~zoofit.execute.ray_probe.ClusterUnreachable` naming the address.
    """

    #: Several callers (a bench's tasks) may map on it at once: their units share the cluster's resources.
    shared_by_callers: ClassVar[bool] = True

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str | None = None,
        unit_gpus: float | None = None,
        unit_cpus: float | None = None,
        retries: int = DEFAULT_RETRIES,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        for name, value in (("unit_gpus", unit_gpus), ("unit_cpus", unit_cpus)):
            if value is not None and value < 0:
                raise ParameterError.of(name, f"must not be negative, not {value}")
        if not timeout > 0:
            raise ParameterError.of("timeout", f"must be a positive number of seconds, not {timeout}")
        if unit_cpus == 0 and not unit_gpus:
            raise ParameterError("give each unit some CPUs or GPUs: {unit_cpus} and {unit_gpus} are both 0")
        import_ray()  # a missing extra is reported before any work
        self._workers, self.address, self.retries, self.timeout = workers, address, retries, timeout
        self.unit_gpus, self.unit_cpus = unit_gpus, unit_cpus

    @property
    def workers(self) -> int:
        """Units at once: as given, else as many as the cluster holds (connecting to it)."""
        if self._workers:
            return self._workers
        self._answering()
        return self._capacity(self._resources())

    def check(self) -> None:
        """Join the cluster (a one-line error, within ``timeout``, where none answers)."""
        self._connect()

    def map(self, unit: Unit[S, I, R], shared: S, items: Sequence[I], progress: Progress) -> Iterator[tuple[int, R]]:
        if not items:
            return
        ray = self._answering()
        from ray.util.queue import Queue

        watch = Watch(self._joined(), self.timeout)
        resources = self._resources()
        events = Queue(actor_options={"num_cpus": 0})
        reader = BoundedReads(events, watch.poll)
        forwarder = threading.Thread(target=replay, args=(reader, progress), daemon=True)
        forwarder.start()
        task = ray.remote(_run_unit).options(
            num_cpus=resources["CPU"], num_gpus=resources["GPU"], max_retries=self.retries, retry_exceptions=False
        )
        shared_ref = ray.put(shared)  # once, whatever the number of units
        threads = max(1, math.floor(resources["CPU"]))
        running: set[Any] = set()

        def submit(item: I) -> Any:
            running.add(ref := task.remote(unit, shared_ref, item, events, threads))
            return ref

        def outcome(ref: Any) -> R | Failed[R]:
            running.discard(ref)
            try:
                return pickle.loads(ray.get(ref))
            except ray.exceptions.RayTaskError as error:  # the unit's own: raised as the unit raised it
                return Failed(error.cause if isinstance(error.cause, BaseException) else error)
            except ray.exceptions.RayError as error:  # its worker or node died, more often than retried
                raise WorkerDied(
                    f"a Ray worker or node died running a unit ({type(error).__name__}; retried {self.retries} times)"
                ) from error

        def finished(handles: Collection[Any]) -> list[Any]:
            """Those of ``handles`` done, once one is; between waits, the cluster must answer."""
            while not (ready := ray.wait(list(handles), num_returns=1, timeout=watch.poll)[0]):
                watch.check()
            return ready

        lost = False
        try:
            yield from windowed(items, self._workers or self._capacity(resources), submit, finished, outcome)
        except ClusterUnreachable:
            lost = True  # nothing more to ask of the cluster: each call would wait for it
            raise
        finally:
            if lost:  # leave the cluster (a few seconds), once no thread here waits for it: else ray.shutdown crashes
                reader.stopped.set()
                forwarder.join()
                ray.shutdown()
            else:
                for ref in running:  # the map was left early (an interrupt): its units stop too
                    ray.cancel(ref, force=True)
                events.put(None)
                forwarder.join()
                events.shutdown()

    def _connect(self) -> ModuleType:
        """Ray, connected to the cluster (once per process), whose address is probed first (``ray.init`` has no
        bound of its own). Ray logs to its files; to this console only where ``zoofit`` logs at DEBUG."""
        ray = import_ray()
        with _JOINING:  # callers in several threads (a bench's tasks at once) join once
            if not ray.is_initialized():
                self._join(ray)
        return ray

    def _join(self, ray: ModuleType) -> None:
        """Probe the cluster's address, then ``ray.init`` (a one-line error where it cannot)."""
        cluster = target(self.address)
        if cluster is not None:
            check(cluster, self.timeout)
        if self.timeout + 10 > RAY_RECONNECT_SECONDS:
            os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", str(math.ceil(self.timeout) + 30))
        debug = log.isEnabledFor(logging.DEBUG)
        try:
            ray.init(address=self.address, log_to_driver=debug, logging_level=logging.DEBUG if debug else logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = cluster.where if cluster else "this machine"
            raise ClusterUnreachable(f"cannot join the Ray cluster at {where}: {error}".splitlines()[0]) from None

    def _answering(self) -> ModuleType:
        """Ray, joined to a cluster that answers now: a cluster gone since (its head died between two maps) is
        one line, within ``timeout``, before any call that would wait for it."""
        ray = self._connect()
        try:
            Watch(self._joined(), self.timeout).wait()
        except ClusterUnreachable:
            ray.shutdown()
            raise
        return ray

    def _joined(self) -> Target:
        """The joined cluster's address: as given (or in ``$RAY_ADDRESS``), else its GCS's as Ray found it."""
        return target(self.address) or Target(self._connect().get_runtime_context().gcs_address)

    def _resources(self) -> dict[str, float]:
        """What each unit asks for: ``{"CPU": ..., "GPU": ...}``."""
        has_gpus = self._connect().cluster_resources().get("GPU", 0) > 0
        gpus = self.unit_gpus if self.unit_gpus is not None else (DEFAULT_UNIT_GPUS if has_gpus else 0.0)
        return {"CPU": DEFAULT_UNIT_CPUS if self.unit_cpus is None else self.unit_cpus, "GPU": gpus}

    def _capacity(self, resources: dict[str, float]) -> int:
        """Units of ``resources`` that the cluster holds at once (at least one)."""
        total = self._connect().cluster_resources()
        for kind, need in resources.items():
            if need > total.get(kind, 0):
                log.warning("each unit asks for %g %s, the Ray cluster has %g: units wait for such a node",
                            need, kind, total.get(kind, 0))  # fmt: skip
        return max(1, min(int(total.get(kind, 0) // need) for kind, need in resources.items() if need > 0))


class BoundedReads:
    """The forwarder's side of the Ray queue of progress events, waited for ``poll`` seconds at a time (the
    queue's own ``get`` can wait forever for an actor on a lost node), so that the forwarder ends once
    ``stopped``."""

    def __init__(self, queue: Any, poll: float) -> None:
        self.queue, self.poll, self.stopped = queue, poll, threading.Event()
        self._pending: Any = None  # the actor's answer to the read under way

    def get(self) -> Any:
        """The next event; ``None`` once stopped, or where the queue's actor is gone."""
        import ray

        while not self.stopped.is_set():
            self._pending = self._pending or self.queue.actor.get.remote()
            if ray.wait([self._pending], timeout=self.poll)[0]:
                answer, self._pending = self._pending, None
                try:
                    return ray.get(answer)
                except ray.exceptions.RayError:
                    return None
        return None


def _run_unit(unit: Unit[Any, Any, Any], shared: Any, item: Any, events: Any, threads: int) -> bytes:
    """In a Ray worker: ``unit`` on ``item`` (``shared`` already fetched by Ray from the object store), its
    progress sent to the driver; the result pickled plainly."""
    set_torch_threads(threads)
    return pickle.dumps(unit(shared, item, QueueProgress(events)), protocol=pickle.HIGHEST_PROTOCOL)
