"""Locks across processes: file locks (``filelock``), which the kernel releases when their holder dies, so a
killed process never leaves a cache entry or a run folder locked."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger("zoofit")


def lock_beside(path: Path) -> FileLock:
    """The lock of ``path``: the file ``<name>.lock`` in its folder (made where missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path.with_name(f"{path.name}.lock"))


@contextmanager
def waiting_for(lock: FileLock, what: str) -> Iterator[None]:
    """Hold ``lock``, waiting as long as another process (or thread) holds it, and saying so once."""
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process to finish %s", what)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
