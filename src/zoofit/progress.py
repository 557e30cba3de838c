"""A tiny progress protocol so the library can report long work without knowing who displays it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class Progress(Protocol):
    """Something that shows progress of named tasks (the CLI passes a rich implementation)."""

    def task(self, description: str, total: int) -> AbstractContextManager[TaskHandle]: ...


class TaskHandle(Protocol):
    def advance(self, amount: int = 1) -> None: ...

    def describe(self, description: str) -> None:
        """Show ``description`` instead of the task's (a count of failures, say)."""


class _SilentTask:
    def advance(self, amount: int = 1) -> None:
        pass

    def describe(self, description: str) -> None:
        pass


class SilentProgress:
    """The default: shows nothing."""

    @contextmanager
    def task(self, description: str, total: int) -> Iterator[TaskHandle]:
        yield _SilentTask()
