"""A run directory: its trials (one folder each, keyed by the trial's inputs) and its result files.

A trial folder is complete when its ``result.json`` exists; that file is written last, and every file is
written atomically, so a run killed at any moment never leaves a half-written artifact that looks done.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from zoofit.store.atomic import write_csv, write_json, write_tensors

RESULT = "result.json"
PREDICTIONS = "predictions.safetensors"
CHECKPOINT = "model.safetensors"


class RunStore:
    """Files of one run under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

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
