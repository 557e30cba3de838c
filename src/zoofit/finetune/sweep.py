"""Trials as units of work: keyed by their inputs, stored in the run, never computed twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import dacite
import numpy as np
import torch

from zoofit.data import Splits
from zoofit.device import default_batch_size, resolve_precision
from zoofit.errors import ModelError
from zoofit.estimator import Machine
from zoofit.evaluate import summarize
from zoofit.finetune.trial import TrainedTrial, train_trial
from zoofit.progress import Progress
from zoofit.rank.models import RankedModel
from zoofit.result import FailedTrial, Member, Scores
from zoofit.store import Cache, RunStore, content_key
from zoofit.sweep_config import SweepConfig, TrialConfig
from zoofit.zoo import LoadedModel, ModelSpec, Preprocessing, load_model
from zoofit.zoo.load import count_gflops

TRIAL_VERSION = 2  # bump when training changes, so old trials are not reused


@dataclass(frozen=True)
class TrialResult:
    """What a trial (or a soup) gave, as its ``result.json`` holds it: enough to rebuild it (model, arch,
    classes, preprocessing, its checkpoint beside), its settings, cost and validation and test scores."""

    trial: str
    model: str
    arch: str
    arch_kwargs: dict[str, Any]
    num_classes: int
    config: TrialConfig
    preprocessing: Preprocessing
    gflops: float  # per image, at the preprocessing's input size
    seconds: float
    val: Scores
    test: Scores | None  # None: the data has no test split
    losses: tuple[float, ...]  # training loss per logged step (a soup: none)
    soup: tuple[str, ...] | None = None  # a soup's ingredients (trial keys); None: not a soup
    kind: str = "trial"  # the kind of ensemble member it is (zoofit.members.KINDS)
    strength: float | None = None  # a linear head's inverse L2 strength (C); None: not a linear head

    @property
    def ingredients(self) -> int:
        """Trials averaged into it: 1 for a trial, 2 or more for a soup."""
        return len(self.soup) if self.soup else 1

    def json(self) -> dict[str, Any]:
        """The ``result.json`` form (a trial's holds none of ``soup``, ``kind`` and ``strength``: as before kinds)."""
        data = asdict(self)
        for name, absent in (("soup", None), ("kind", "trial"), ("strength", None)):
            if data[name] == absent:
                del data[name]
        return data

    @classmethod
    def of(cls, data: dict[str, Any]) -> TrialResult:
        """The record of a ``result.json``'s ``data`` (a soup written before kinds: kind ``soup``)."""
        kind = "soup" if data.get("soup") else "trial"
        return dacite.from_dict(cls, {"kind": kind, **data}, config=dacite.Config(cast=[int, float, tuple]))

    def souped(self, key: str, val: Scores, test: Scores | None, seconds: float, ingredients: list[str]) -> TrialResult:
        """The result of a soup cooked from this trial (its best ingredient) and others: its own key and scores."""
        return replace(
            self, trial=key, val=val, test=test, seconds=seconds, losses=(), soup=tuple(ingredients), kind="soup"
        )


@dataclass(frozen=True)
class TrialRecord:
    """A finished trial: its settings, metrics and predictions (loaded from the run store)."""

    key: str
    model: str
    config: TrialConfig
    result: TrialResult
    val_probs: np.ndarray
    test_probs: np.ndarray | None
    reused: bool

    @property
    def val(self) -> Scores:
        return self.result.val

    @property
    def test(self) -> Scores | None:
        return self.result.test

    @property
    def gflops(self) -> float:
        return self.result.gflops

    @property
    def kind(self) -> str:
        return self.result.kind

    def member(self, weight: float, license: str = "") -> Member:
        """This candidate as an ensemble member of ``weight`` (``license``: its model's weights')."""
        result = self.result
        return Member(
            self.key, self.model, weight, self.config, result.ingredients, license, self.kind, result.strength
        )

    def row(self) -> dict[str, Any]:
        """One line of trials.csv."""
        row: dict[str, Any] = {"trial": self.key, "kind": self.kind, "model": self.model, **asdict(self.config)}
        row["input_size"] = self.result.preprocessing.input_size
        for split, scores in (("val", self.val), ("test", self.test)):
            for metric, value in (asdict(scores) if scores else {}).items():
                row[f"{split}_{metric}"] = value
        row.update(gflops=self.gflops, seconds=self.result.seconds)
        return row


def trial_key(spec: ModelSpec, config: TrialConfig, splits: Splits, precision: str, eval_precision: str) -> str:
    test = splits.test.fingerprint if splits.test is not None else None
    settings = asdict(config)
    if not config.refit:
        del settings["refit"]  # a trial trained on train alone keeps the key it had before refits existed
    return content_key(
        "trial", TRIAL_VERSION, spec.identity(), settings, precision, eval_precision,
        splits.train.fingerprint, splits.val.fingerprint, test,
    )  # fmt: skip


def training_splits(splits: Splits, config: TrialConfig) -> Splits:
    """The splits a trial trains on: a refit trial's training set is train + validation (its validation
    predictions are then of images it trained on, and are kept only as a record)."""
    return replace(splits, train=splits.ranking_set) if config.refit else splits


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a run shares (picklable: each worker process gets one copy)."""

    splits: Splits
    run_root: Path
    cache_root: Path | None  # None: where the trial runs, that machine's own (``$ZOOFIT_CACHE_DIR`` or its default)
    device: str
    precision: str  # training
    eval_precision: str
    eval_batch_size: int

    @property
    def store(self) -> RunStore:
        return RunStore(self.run_root)

    def key(self, spec: ModelSpec, config: TrialConfig) -> str:
        return trial_key(spec, config, self.splits, self.precision, self.eval_precision)


def trial_context(
    splits: Splits, store: RunStore, machine: Machine, device: torch.device, config: SweepConfig
) -> TrialContext:
    """What every trial of the run shares: the data, the folders, the device and its precisions."""
    return TrialContext(
        splits, store.root, machine.cache_path, str(device), resolve_precision(machine.precision, device, training=True),
        resolve_precision(machine.precision, device), config.training.eval_batch_size or default_batch_size(device),
    )  # fmt: skip


Job = tuple[ModelSpec, TrialConfig]


@dataclass(frozen=True)
class Placement:
    """A ranked model as the sweep trains it: its spec, its resolution (``None``: its own) and its GFLOPs there."""

    spec: ModelSpec
    image_size: int | None
    gflops: float


def placements(ranking: Sequence[RankedModel], specs: Sequence[ModelSpec], size: int | None) -> list[Placement]:
    """The ``ranking``'s models (of ``specs``), best first, each at the size it was ranked at where the run has a
    ``size`` (its own, where it takes no other; ``None`` keeps each model's own, as the trial's key records)."""
    by_id = {spec.id: spec for spec in specs}
    return [Placement(by_id[row.model], None if size is None else row.input_size, row.gflops) for row in ranking]


def plan_trials(models: Sequence[Placement], config: SweepConfig, seed: int) -> tuple[list[Job], list[float]]:
    """The sweep's trials over its top models, and each trial's relative cost."""
    planned = [
        (model, trial) for model in models[: config.search.top_k] for trial in config.trials(seed, model.image_size)
    ]
    return [(model.spec, trial) for model, trial in planned], [
        model.gflops * trial.steps * trial.batch_size for model, trial in planned
    ]


@dataclass(frozen=True)
class TrialOutput:
    """What a trial hands back to the driver, which stores it in the run (wherever the trial ran)."""

    key: str
    result: TrialResult
    predictions: dict[str, torch.Tensor]
    checkpoint: dict[str, torch.Tensor]

    def save(self, store: RunStore) -> None:
        store.save_trial(self.key, self.result.json(), self.predictions, self.checkpoint)


def train(context: TrialContext, job: Job, progress: Progress) -> TrialOutput | FailedTrial:
    """The unit of work of a sweep: fine-tune ``job``'s model with its config; write nothing. A trial that fails
    (its model cannot train at the asked size, out of memory) is returned as a :class:`FailedTrial` with the
    reason, as the ranking records a model that fails, so the sweep goes on; a :class:`ZoofitError` about the run
    (not the model) is raised."""
    spec, config = job
    try:
        return trained(context, job, progress)
    except Exception as error:  # whatever a model raised fails this trial alone
        reason = ModelError.failed(spec.id, error)
        return FailedTrial(context.key(spec, config), spec.id, config, str(reason))


def trained(context: TrialContext, job: Job, progress: Progress) -> TrialOutput:
    """``job``'s model fine-tuned with its config: its result, predictions and checkpoint."""
    spec, config = job
    splits = training_splits(context.splits, config)
    loaded = load_model(spec, Cache(context.cache_root))
    trained = train_trial(
        loaded, splits, config, device=torch.device(context.device), precision=context.precision,
        eval_precision=context.eval_precision, eval_batch_size=context.eval_batch_size,
        progress=progress, description=f"{spec.id} {config.label()}",
    )  # fmt: skip
    return trial_output(context.key(spec, config), loaded, splits, config, trained)


def trial_output(
    key: str, loaded: LoadedModel, splits: Splits, config: TrialConfig, trained: TrainedTrial
) -> TrialOutput:
    """What a unit that trained ``loaded`` with ``config`` hands back under ``key``: its result (scored on the
    validation and test ``splits``), predictions and checkpoint."""
    spec = loaded.spec
    result = TrialResult(
        trial=key,
        model=spec.id,
        arch=spec.arch,
        arch_kwargs=spec.arch_kwargs,
        num_classes=splits.train.num_classes,
        config=config,
        preprocessing=trained.preprocessing,
        gflops=count_gflops(loaded.model, trained.preprocessing.input_size),
        seconds=trained.seconds,
        val=Scores(**summarize(trained.val_probs, splits.val.labels)),
        test=Scores(**summarize(trained.test_probs, splits.test.labels)) if splits.test is not None else None,
        losses=tuple(round(float(x), 5) for x in trained.losses),
    )
    predictions = {"val_probs": torch.from_numpy(trained.val_probs)}
    if trained.test_probs is not None:
        predictions["test_probs"] = torch.from_numpy(trained.test_probs)
    return TrialOutput(key, result, predictions, trained.state)


def load_record(store: RunStore, key: str, model: str, config: TrialConfig, reused: bool) -> TrialRecord:
    return replace(stored_record(store, key), model=model, config=config, reused=reused)


def stored_record(store: RunStore, key: str) -> TrialRecord:
    """The unit ``store`` holds under ``key`` (a trial, or a candidate of another kind), its model and settings
    as its ``result.json`` records them, as reused."""
    data, predictions = store.load_trial(key)
    result, test_probs = TrialResult.of(data), predictions.get("test_probs")
    return TrialRecord(
        key, result.model, result.config, result, predictions["val_probs"].numpy(),
        None if test_probs is None else test_probs.numpy(), True,
    )  # fmt: skip
