"""A student as a unit of work, like a trial: keyed by its inputs (the teacher's members, the student's model and
settings, the images), run on any executor, its output handed back for the driver to store in the run folder.

Everything the unit needs travels with it: the run's splits in the :class:`~zoofit.finetune.sweep.TrialContext`,
the teacher's checkpoints and the unlabelled images in the :class:`StudentJob`, so it runs where the run folder
is not (a Ray node)."""

from __future__ import annotations

import functools
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from zoofit.budget import CostModel, check_fits, trial_seconds
from zoofit.data import ImageSet
from zoofit.distillation.views import TeacherClock, kl_divergence, matched_batches
from zoofit.ensemble import EnsembleClassifier
from zoofit.finetune.budgeted import PROBE_STEPS, budget_left, measured
from zoofit.finetune.sweep import TrialContext, TrialOutput, trial_output
from zoofit.finetune.trial import train_trial
from zoofit.progress import Progress
from zoofit.store import Cache, RunStore, content_key
from zoofit.sweep_config import TrialConfig
from zoofit.zoo import ModelSpec, load_model

DISTILL_VERSION = 1  # bump when distillation changes, so old students are not reused


@dataclass(frozen=True)
class StudentJob:
    """One student: its model's ``spec`` and training ``config``; the teacher as its manifest ``entries`` (with
    their weights) and each member's checkpoint tensors by the name the entries give; the run's ``class_names``;
    the ``unlabelled`` images it also learns from (their labels unused)."""

    spec: ModelSpec
    config: TrialConfig
    entries: list[dict[str, Any]]
    checkpoints: dict[str, dict[str, torch.Tensor]]
    class_names: tuple[str, ...]
    unlabelled: ImageSet | None

    def key(self, context: TrialContext) -> str:
        """The student's content key: the teacher (its trials and weights), the student's model and settings, the
        run's splits and the unlabelled images."""
        splits, unlabelled = context.splits, self.unlabelled
        teacher = [(entry["trial"], float(entry["weight"])) for entry in self.entries]
        return content_key(
            "student", DISTILL_VERSION, teacher, self.spec.identity(), asdict(self.config), context.precision,
            context.eval_precision, splits.train.fingerprint, splits.val.fingerprint,
            splits.test.fingerprint if splits.test is not None else None,
            unlabelled.fingerprint if unlabelled is not None else None,
        )  # fmt: skip


@dataclass(frozen=True)
class StudentOutput(TrialOutput):
    """A student's :class:`TrialOutput`, and the seconds its teacher's forward passes took."""

    teacher_seconds: float = 0.0

    def save(self, store: RunStore) -> None:
        result = {**self.result.json(), "teacher_seconds": round(self.teacher_seconds, 2)}
        store.save_trial(self.key, result, self.predictions, self.checkpoint)


def train_student(context: TrialContext, job: StudentJob, progress: Progress) -> StudentOutput:
    """The unit of work of distillation: ``job``'s student trained by function matching on the run's train +
    validation images and the unlabelled ones, the teacher's probabilities computed on the fly; then its
    predictions of the validation and test splits. Writes nothing."""
    device = torch.device(context.device)
    with tempfile.TemporaryDirectory() as folder:  # the teacher's checkpoints, where the unit runs
        for name, state in job.checkpoints.items():
            (Path(folder) / name).parent.mkdir(parents=True, exist_ok=True)
            save_file(state, str(Path(folder) / name))
        teacher = EnsembleClassifier.from_entries(
            Path(folder), job.entries, job.class_names, device=context.device, precision=context.eval_precision
        )
    splits = replace(context.splits, train=context.splits.ranking_set)  # train + validation; labels unused
    images = [*splits.train.images, *(job.unlabelled.images if job.unlabelled is not None else ())]
    clock = TeacherClock()
    loaded = load_model(job.spec, Cache(context.cache_root))
    trained = train_trial(
        loaded, splits, job.config, device=device, precision=context.precision,
        eval_precision=context.eval_precision, eval_batch_size=context.eval_batch_size, progress=progress,
        description=f"student {job.spec.id}", loss=kl_divergence,
        batches=functools.partial(matched_batches, images, teacher.module, job.config.batch_size, clock=clock),
    )  # fmt: skip
    output = trial_output(job.key(context), loaded, replace(splits, train=context.splits.train), job.config, trained)
    return StudentOutput(**vars(output), teacher_seconds=clock.seconds)


def check_time(context: TrialContext, job: StudentJob, limit: float, started: float) -> None:
    """Refuse ``job`` in one line (a :class:`ParameterError` naming ``time_limit``) where it does not fit the
    ``limit`` seconds counted from ``started``: priced as a trial of its steps, at the throughput of a few steps
    of it (the teacher's passes included) measured here."""
    probe = replace(job, config=replace(job.config, steps=PROBE_STEPS))
    throughput = measured(
        job.spec.id, lambda small, clock: train_student(small, probe, clock), context, job.config.batch_size
    )
    splits = context.splits
    costs = CostModel(
        (throughput.scaled(job.spec.id, 1.0),), len(splits.val) + (len(splits.test) if splits.test else 0),
        throughput.overhead,
    )  # fmt: skip
    needed = trial_seconds(costs.models[0], job.config.steps, job.config.batch_size, costs)
    what = f"the student ({job.config.steps} steps of {job.spec.id})"
    check_fits(needed, budget_left(limit, started), what, ", or fewer steps for the student")
