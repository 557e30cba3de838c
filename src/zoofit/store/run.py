"""A run directory: its trials (one folder each, keyed by the trial's inputs) and its result files.

A trial folder is complete when its ``result.json`` exists; that file is written last, and every file is
written atomically, so a run killed at any moment never leaves a half-written artifact that looks done. One
process writes a folder at a time (:meth:`RunStore.writer`), and a folder holds the runs of one dataset
(:meth:`RunStore.claim_data`).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from safetensors.torch import load_file

from zoofit.errors import ParameterError
from zoofit.layout import DATA, WRITER, WRITER_LOCK
from zoofit.store.atomic import write_csv, write_json, write_tensors, write_text

RESULT = "result.json"
PREDICTIONS = "predictions.safetensors"
CHECKPOINT = "model.safetensors"


class RunStore:
    """Files of one run under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @contextmanager
    def writer(self) -> Iterator[RunStore]:
        """Within: this process is the folder's one writer (its id and command line are in ``.writer.json``).
        Another process asking meanwhile is refused with a :class:`ParameterError` naming this one; the lock
        is a file lock, so a killed writer's folder is free at once (and resumes)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            write_json(self.root / WRITER, {"pid": os.getpid(), "command": shlex.join(_command_line())})
            try:
                yield self
            finally:
                (self.root / WRITER).unlink(missing_ok=True)

    def check_writer(self) -> None:
        """Raise :meth:`writer`'s error where another process writes the folder now (a check before any work:
        the lock is taken by :meth:`writer`)."""
        if (self.root / WRITER_LOCK).is_file():
            with self._locked():
                pass

    @contextmanager
    def _locked(self) -> Iterator[None]:
        lock = FileLock(self.root / WRITER_LOCK)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise ParameterError.of(
                "out", f"'{self.root}' is being written by {self._writer()}; wait for it to end or give another folder"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def _writer(self) -> str:
        """The process writing the folder, as its ``.writer.json`` names it."""
        try:
            writer = json.loads((self.root / WRITER).read_text(encoding="utf-8"))
            return f"process {writer['pid']} ({writer['command']})"
        except (OSError, ValueError, KeyError, TypeError):  # not written yet, or already removed
            return "another process"

    def claim_data(self, fingerprint: str, description: str) -> None:
        """Record the data of the folder's runs (``data.json``), or refuse other data where the folder has some:
        its summary and ensemble would silently be replaced by another dataset's."""
        path = self.root / DATA
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # a new folder, or one from before data.json
            stored = None
        if isinstance(stored, dict) and stored.get("fingerprint") not in (None, fingerprint):
            raise ParameterError.of(
                "out",
                f"'{self.root}' holds a run on other data ({stored.get('data')}); give a new folder for this data",
            )
        if stored != {"fingerprint": fingerprint, "data": description}:
            write_json(path, {"fingerprint": fingerprint, "data": description})

    def trial_dir(self, key: str) -> Path:
        return self.root / "trials" / key

    def has_trial(self, key: str) -> bool:
        return (self.trial_dir(key) / RESULT).is_file()

    def save_trial(
        self,
        key: str,
        result: dict[str, Any],
        predictions: dict[str, torch.Tensor],
        checkpoint: dict[str, torch.Tensor],
    ) -> None:
        folder = self.trial_dir(key)
        write_tensors(folder / CHECKPOINT, checkpoint)
        write_tensors(folder / PREDICTIONS, predictions)
        write_json(folder / RESULT, result)  # last: marks the trial complete

    def load_trial(self, key: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        folder = self.trial_dir(key)
        result = json.loads((folder / RESULT).read_text(encoding="utf-8"))
        return result, load_file(str(folder / PREDICTIONS))

    def checkpoint_path(self, key: str) -> Path:
        return self.trial_dir(key) / CHECKPOINT

    def checkpoint_name(self, key: str) -> str:
        """The trial's checkpoint relative to the run folder (how the run's manifest names it)."""
        return self.checkpoint_path(key).relative_to(self.root).as_posix()

    def write_json(self, name: str, data: Any) -> Path:
        write_json(self.root / name, data)
        return self.root / name

    def write_csv(self, name: str, rows: list[dict[str, Any]]) -> Path:
        write_csv(self.root / name, rows)
        return self.root / name

    def write_text(self, name: str, text: str) -> Path:
        write_text(self.root / name, text)
        return self.root / name


def _command_line() -> list[str]:
    """This process's command line, its program by name only (``zoofit run --data ...``)."""
    return [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else [sys.executable]
