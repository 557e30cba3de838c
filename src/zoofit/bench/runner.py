"""``Bench``: the whole method on every task of a suite, each task an ordinary run folder, then one table."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zoofit.bench.audit import audit_suite, audit_task
from zoofit.bench.result import BenchResult, TaskResult, classifiers_of, mean_of
from zoofit.bench.suite import Suite, Task, load_suite
from zoofit.data import DataConfig, Splits, load_data
from zoofit.data.protocol import stratified_sample
from zoofit.errors import ParameterError, ZoofitError, first_line
from zoofit.estimator import Estimator, clone
from zoofit.layout import CONFIG
from zoofit.progress import Progress, SilentProgress
from zoofit.replay import RunConfig, SuiteSettings
from zoofit.result import RunResult

if TYPE_CHECKING:
    from zoofit.execute import Executor

log = logging.getLogger("zoofit")
AUDIT = "audit"  # a task's audit run, inside its run folder


class Bench(Estimator):
    """Run a :class:`~zoofit.ZooFit` (its zoo, sweep and every other setting) on each task of a suite.

    Each task runs into ``out/<task id>`` (a rerun resumes it); a task that fails is recorded with its reason and
    the others go on; it is an error only when every task fails. On an executor that callers share (Ray: its
    ``shared_by_callers``), the tasks run at the same time, each in a thread of this process, so that the units of
    every task share the cluster; elsewhere, one after another. A sweep's ``time_limit`` is the whole suite's: the tasks then run
    one after another, each planned to an equal share of the time left when it starts (so what a task does not
    use, or reuses from an earlier bench, goes to the tasks after it); an audit, which must fine-tune every
    model, is not cut.

    Parameters
    ----------
    suite : str, Path or Suite
        A built-in suite's name (``"offline"``, ``"vtab-1k"``), a suite YAML file, or a :class:`Suite`.
    estimator : ZooFit, optional
        The method as it runs on each task (``ZooFit("demo")`` where None), with its zoo selection and machine;
        each task runs a :func:`~zoofit.estimator.clone` of it (one executor shared, the task's time limit).
    tasks : list of str, optional
        Ids of the suite's tasks to run (default: all).
    test_images : int, optional
        Test images per task at most (a stratified draw with the task's seed), for a quick look.
    audit : bool
        Also fine-tune every model of the zoo on every task (in ``<task>/audit``), and measure how well each
        ranking proxy foretold that (Kendall's tau, regret).

    Attributes
    ----------
    suite_ : Suite
        The suite run (the chosen tasks).
    result_ : BenchResult
        The table written to ``bench.json``.

    Examples
    --------
    >>> from zoofit import ZooFit
    >>> from zoofit.bench import Bench
    >>> bench = Bench("offline", ZooFit("demo", sweep="quick")).fit("runs/bench")   # doctest: +SKIP
    >>> bench.result_.mean.classifiers["ensemble"].accuracy                        # doctest: +SKIP
    """

    def __init__(
        self,
        suite: str | Path | Suite,
        estimator=None,
        *,
        tasks: list[str] | None = None,
        test_images: int | None = None,
        audit: bool = False,
    ) -> None:
        self.suite = suite
        self.estimator = estimator
        self.tasks = tasks
        self.test_images = test_images
        self.audit = audit

    def check(self) -> Suite:
        """Check the suite, the tasks chosen and every setting, before any data is read; the suite to run. A
        task's data is checked when it runs (a task whose data is missing fails alone)."""
        if self.test_images is not None and self.test_images < 1:
            raise ParameterError.of("test_images", f"must be at least 1, not {self.test_images}")
        suite = load_suite(self.suite).select(self.tasks)
        self._estimator().check()
        return suite

    def _estimator(self):
        from zoofit.pipeline import ZooFit

        return self.estimator if self.estimator is not None else ZooFit("demo")

    def fit(self, out: str | Path, *, progress: Progress | None = None) -> Bench:
        """Run every task into ``out/<task id>`` and write ``out/bench.json`` and ``bench.csv`` (after each task,
        so a killed bench leaves the table of what it finished)."""
        from zoofit.store import RunStore

        start = time.perf_counter()
        suite = self.suite_ = self.check()
        out = Path(out)
        progress = progress or SilentProgress()
        estimator = self._estimator()
        limit, executor = sweep_of(estimator).budget.time_limit, estimator.unit_executor()
        done: dict[str, TaskResult] = {}
        with RunStore(out).writer() as store:
            store.write_text(CONFIG, self.run_config(suite).text())
            if getattr(executor, "shared_by_callers", False) and limit is None:
                log.info("%d tasks at once on the %s executor", len(suite.tasks), estimator.executor)
                results = at_once(suite.tasks, lambda task: self._task(task, out, progress, None, executor))
            else:
                results = (self._task(task, out, progress, share, executor) for task, share in shares(suite, limit))
            for result in results:  # the table so far, in the suite's order, after each task
                done[result.id] = result
                self.result_ = self._result(suite, [done[t.id] for t in suite.tasks if t.id in done], start)
                self.result_.write(out)
        failed = [task for task in done.values() if task.status == "failed"]
        if len(failed) == len(done):
            reasons = "; ".join(f"{t.id}: {t.reason}" for t in failed)
            raise ZoofitError(f"every task of suite '{suite.name}' failed ({reasons})")
        return self

    def _task(
        self, task: Task, out: Path, progress: Progress, seconds: float | None, executor: Executor | None
    ) -> TaskResult:
        """Run one task on ``executor`` (planned to end within ``seconds``, where given); a failure of its own (its
        data, its settings, a model, a time limit it cannot keep) is its record, not an error."""
        start = time.perf_counter()
        record = TaskResult(task.id, task.group, task.data, task.id, "failed")
        try:
            if seconds is not None and seconds <= 0:
                raise ZoofitError("the suite's time limit was spent before this task started")
            fit = clone(self._estimator(), executor=executor or "local")  # one executor (one connection) for all
            if seconds is not None:
                fit.set_params(sweep=sweep_of(fit).override(time_limit=seconds))
            splits = self.splits(task, progress)
            fit.fit(splits, out / task.id, data=task.data_config(), progress=progress, started=start)
            result = RunResult.read(out / task.id)  # the table is built from the run's typed result
            record = replace(record, status="done", splits=splits.describe(), classifiers=classifiers_of(result),
                             weights=result.ensemble.by_kind)  # fmt: skip
            if self.audit:
                record = replace(record, audit=self._audit(fit, splits, task, out / task.id / AUDIT, progress))
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - a task's own failure is recorded and the bench goes on
            log.warning("task %s failed: %s", task.id, first_line(error))
            log.debug("task %s failed", task.id, exc_info=error)
            return replace(record, status="failed", reason=first_line(error))
        return replace(record, wall_seconds=round(time.perf_counter() - start, 1))

    def splits(self, task: Task, progress: Progress) -> Splits:
        """The task's splits by its protocol, its test split capped at ``test_images``."""
        return task_splits(task.data_config(), self.test_images, progress)

    def _audit(self, fit, splits: Splits, task: Task, folder: Path, progress: Progress):
        """Every zoo model fine-tuned on the task, in its own run folder, and the proxies' agreement with that."""
        models = len(fit.ranker_.zoo_.models)
        everyone = clone(fit, sweep=sweep_of(fit).override(top_k=models, time_limit=None))  # never cut
        everyone.fit(splits, folder, data=task.data_config(), progress=progress)
        return audit_task(everyone, splits, f"{folder.parent.name}/{folder.name}", progress)

    def run_config(self, suite: Suite) -> RunConfig:
        """Every setting of this bench (its suite, tasks, test images and audit, and the method's), as
        ``config.yaml`` records it."""
        from zoofit.device import resolve_device

        estimator = self._estimator()
        name = self.suite if isinstance(self.suite, str | Path) else suite.name
        settings = SuiteSettings(str(name), self.tasks, self.test_images, self.audit)
        return replace(estimator.run_config(resolve_device(estimator.machine.device), None, {}), suite=settings)

    def _result(self, suite: Suite, tasks: list[TaskResult], start: float) -> BenchResult:
        fit = self._estimator()
        sweep = fit.sweep if isinstance(fit.sweep, str) or fit.sweep is None else fit.sweep.name
        zoo = fit.zoo if isinstance(fit.zoo, str | Path) else fit.zoo.name
        executor = fit.executor if isinstance(fit.executor, str) else type(fit.executor).__name__
        return BenchResult(
            suite=suite.name, suite_source=suite.source, zoo=str(zoo), preset=str(sweep or "default"),
            test_images=self.test_images, tasks=tasks,
            groups=[mean_of(group, [t for t in tasks if t.group == group]) for group in suite.groups],
            mean=mean_of("mean", tasks), references=list(suite.references), audit=audit_suite(tasks),
            executor=str(executor), wall_seconds=round(time.perf_counter() - start, 1),
        )  # fmt: skip


def task_splits(config: DataConfig, test_images: int | None, progress: Progress) -> Splits:
    """The splits ``config`` draws, the test split capped at ``test_images`` (a stratified sample seeded with the
    data's seed), as a bench's task runs on them."""
    splits = load_data(config, progress=progress)
    if test_images is None or splits.test is None or len(splits.test) <= test_images:
        return splits
    rng = np.random.default_rng(config.seed)
    return replace(splits, test=splits.test.subset(stratified_sample(splits.test, test_images, rng)))


def sweep_of(fit):
    """The sweep ``fit`` (a :class:`~zoofit.ZooFit`) runs on its device (torch loads here, not at import)."""
    from zoofit.device import resolve_device

    return fit.sweep_config(resolve_device(fit.machine.device))


def shares(suite: Suite, limit: float | None) -> Iterator[tuple[Task, float | None]]:
    """Each task of ``suite`` when it starts, with its share of the ``limit`` seconds (counted from the first):
    an equal share of what is left (None without a limit)."""
    start = time.perf_counter()
    for number, task in enumerate(suite.tasks, 1):
        log.info("task %d of %d: %s (%s, %s)", number, len(suite.tasks), task.id, task.group, task.data)
        left = None if limit is None else limit - (time.perf_counter() - start)
        yield task, None if left is None else left / (len(suite.tasks) - number + 1)


def at_once(tasks: Sequence[Task], run: Callable[[Task], TaskResult]) -> Iterator[TaskResult]:
    """``run(task)`` for every task at the same time, each in a thread, the results as they come. The threads are
    daemons: an interrupt here ends the process without waiting for them (each run keeps what it finished, as
    after a kill)."""
    finished: queue.Queue[TaskResult | BaseException] = queue.Queue()

    def run_one(task: Task) -> None:
        try:
            finished.put(run(task))
        except BaseException as error:  # noqa: BLE001 - raised in the caller's thread
            finished.put(error)

    for task in tasks:
        threading.Thread(target=run_one, args=(task,), name=f"zoofit-task-{task.id}", daemon=True).start()
    for _ in tasks:
        if isinstance(result := finished.get(), BaseException):
            raise result
        yield result
