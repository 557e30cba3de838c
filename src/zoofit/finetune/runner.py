"""Running the trials of a sweep through an executor: those not yet stored, one at a time here or several at
once in worker processes; the driver (here) alone stores them. Small models leave a device under-used: on a
CPU, single-threaded trials side by side finish sooner than one after the other on all cores
(benchmarks/results/notes-cpu-lanes.md); on a GPU, concurrent trials hide each other's Python overhead."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch

from zoofit.errors import ParameterError, ZoofitError
from zoofit.execute import Executor, WorkerDied, check_workers, named
from zoofit.execute.base import cpu_cores
from zoofit.finetune.sweep import Job, TrialContext, TrialRecord, load_record, train
from zoofit.progress import Progress, SilentProgress
from zoofit.result import FailedTrial

log = logging.getLogger("zoofit")

MAX_AUTO_WORKERS = 4

#: Per number of CPU lanes L: how fast one trial on all L lanes' cores trains, as a fraction of L single-threaded
#: trials side by side. Measured for 2 cores (benchmarks/results/notes-cpu-lanes.md); a lane count not listed
#: runs one trial per lane. Pass your own measurements to :func:`resolve_workers` as ``efficiency``.
MEASURED_EFFICIENCY: dict[int, float] = {2: 0.875}


def resolve_workers(
    workers: int | None,
    device: torch.device,
    costs: Sequence[float] = (),
    efficiency: Mapping[int, float] = MEASURED_EFFICIENCY,
) -> int:
    """``None`` (auto): on a GPU, 4 trials share it. On a CPU, one worker per core (at most 4, the cores shared
    among them), unless ``efficiency`` knows this number of lanes and the trials' relative ``costs`` would not
    split evenly across them: then one trial at a time on all cores (on 2 cores, three trials on two workers leave
    one idle for a whole trial; benchmarks/results/notes-cpu-lanes.md)."""
    if workers is not None:
        return check_workers(workers)
    if device.type == "cuda":
        return MAX_AUTO_WORKERS
    lanes = max(1, min(MAX_AUTO_WORKERS, cpu_cores()))
    if lanes not in efficiency or not costs:
        return lanes
    one_at_a_time = sum(costs) / (lanes * efficiency[lanes])
    return 1 if one_at_a_time < longest_first_makespan(costs, lanes) else lanes


def longest_first_makespan(costs: Sequence[float], lanes: int) -> float:
    """When the last of ``costs`` finishes if ``lanes`` take them longest first, each the next when free."""
    finish = [0.0] * lanes
    for cost in sorted(costs, reverse=True):
        finish[finish.index(min(finish))] += cost
    return max(finish)


class TrialRunner:
    """Runs trials into the run store of ``context`` and returns their records; stored trials are reused.
    ``workers`` trials train at once on ``executor`` (a name of :data:`zoofit.execute.EXECUTORS`, or an
    :class:`~zoofit.execute.Executor`, which then sets the number of workers). A trial that fails is left out of
    the records and kept in ``failed`` (with its reason; nothing stored, so a rerun tries it again)."""

    def __init__(
        self, context: TrialContext, *, workers: int = 1, progress: Progress | None = None,
        executor: str | Executor = "local",
    ) -> None:  # fmt: skip
        self.context = context
        self.executor = named(executor, workers) if isinstance(executor, str) else executor
        self.workers = self.executor.workers
        self.progress = progress or SilentProgress()
        self.failed: list[FailedTrial] = []

    def run(self, jobs: Sequence[Job], costs: Sequence[float] | None = None) -> list[TrialRecord]:
        """The records of ``jobs`` that finished, in order; the missing trials are trained first. Given each job's
        relative ``costs``, workers take the most expensive first, so the last trial to finish is a short one."""
        store = self.context.store
        keys = [self.context.key(spec, config) for spec, config in jobs]
        missing = {key: job for key, job in zip(keys, jobs, strict=True) if not store.has_trial(key)}
        cost = dict(zip(keys, costs or [0.0] * len(keys), strict=True))
        longest_first = [missing[key] for key in sorted(missing, key=lambda key: -cost[key])]
        _release_cached_gpu_memory(self.context.device)
        try:
            for _, output in self.executor.map(train, self.context, longest_first, self.progress):
                if isinstance(output, FailedTrial):
                    log.warning("trial %s (%s, %s) failed: %s", output.trial, output.model, output.settings.label(),
                                output.reason)  # fmt: skip
                    self.failed.append(output)
                    continue
                output.save(store)
                spec, config = missing[output.key]
                log.info("trial %s (%s, %s): val accuracy %.4f", output.key, spec.id, config.label(),
                         output.result.val.accuracy)  # fmt: skip
        except WorkerDied as error:
            root = str(self.context.run_root).replace("{", "{{").replace("}", "}}")
            raise ParameterError(
                f"a trial worker process died (out of memory?); finished trials are kept in {root} - "
                "rerun the same command, with {workers} 1 to train one trial at a time"
            ) from error
        return [
            load_record(store, key, spec.id, config, reused=key not in missing)
            for key, (spec, config) in zip(keys, jobs, strict=True)
            if store.has_trial(key)
        ]

    def none_finished(self) -> ZoofitError:
        """The error of a sweep none of whose trials finished, quoting the first failure."""
        first = f"; the first: {self.failed[0].reason}" if self.failed else ""
        return ZoofitError(f"no trial finished ({len(self.failed)} failed{first}); fix it and rerun the same command")


def _release_cached_gpu_memory(device: str) -> None:
    """Hand the GPU memory this process cached (the ranking's) back, for the trials."""
    if torch.device(device).type == "cuda" and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
