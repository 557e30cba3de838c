"""Progress across processes: a unit's events travel through a queue (anything with ``put`` and ``get``) to
the caller, where :func:`replay` feeds them to the caller's :class:`~zoofit.progress.Progress`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from zoofit.progress import Progress, TaskHandle


def replay(events: Any, progress: Progress) -> None:
    """Replay ``("start", id, description, total)``, ``("advance", id, n)``, ``("describe", id, text)`` and
    ``("end", id)`` until ``None``;
    tasks still open then (a unit whose worker died) are closed."""
    with ExitStack() as open_tasks:
        tasks: dict[str, tuple[ExitStack, TaskHandle]] = {}
        while (event := events.get()) is not None:
            kind, task_id, *rest = event
            if kind == "start":
                stack = open_tasks.enter_context(ExitStack())
                tasks[task_id] = (stack, stack.enter_context(progress.task(*rest)))
            elif kind in ("advance", "describe"):
                getattr(tasks[task_id][1], kind)(*rest)
            else:
                tasks.pop(task_id)[0].close()


class _QueueTask:
    def __init__(self, events: Any, task_id: str) -> None:
        self._events, self._id = events, task_id

    def advance(self, amount: int = 1) -> None:
        self._events.put(("advance", self._id, amount))

    def describe(self, description: str) -> None:
        self._events.put(("describe", self._id, description))


class QueueProgress:
    """A unit's Progress where it runs: sends its events to the caller through ``events``."""

    def __init__(self, events: Any) -> None:
        self._events = events

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[TaskHandle]:
        task_id = uuid.uuid4().hex  # unique across processes and machines
        self._events.put(("start", task_id, description, total))
        try:
            yield _QueueTask(self._events, task_id)
        finally:
            self._events.put(("end", task_id))
