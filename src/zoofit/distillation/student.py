"""Distilling a finished run's ensemble into one student: the student's model and settings chosen, its images
gathered (the run's train + validation images, never its test images, and any unlabelled ones), the unit run on
an executor (or found stored: a rerun trains nothing), and the student recorded in the run folder: its checkpoint
under ``trials/``, its manifest ``student.json`` (an ensemble of one, which predict and export rebuild) and its
result (:class:`~zoofit.result.StudentResult`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.torch import load_file

from zoofit.data import DataConfig, ImageSet, Splits, load_data
from zoofit.data.dataset import pixel_digest, stack_if_uniform
from zoofit.data.skips import Skipped, happened
from zoofit.device import resolve_device
from zoofit.distillation.unit import StudentJob, check_time, train_student
from zoofit.ensemble import average, member_entry
from zoofit.errors import ModelError, ParameterError, ZoofitError
from zoofit.estimator import Machine
from zoofit.execute import Executor, named
from zoofit.finetune.sweep import TrialContext, TrialResult, trial_context
from zoofit.labelling.pool import PoolLike, open_pool
from zoofit.layout import CONFIG, DATA, MANIFEST, RANKING, STUDENT
from zoofit.progress import Progress, SilentProgress
from zoofit.replay import RunConfig
from zoofit.result import RunResult, StudentResult
from zoofit.robustness import read_json
from zoofit.store import RunStore
from zoofit.sweep_config import SweepConfig, TrialConfig
from zoofit.zoo import ModelSpec, Zoo, load_zoo

log = logging.getLogger("zoofit")

#: A ranking as the student's choice reads it: ``(model, input size)``, best first.
Ranking = Sequence[tuple[str, int]]
DECODE_CHUNK = 256  # unlabelled images decoded at a time


def distill(
    run: str | Path,
    *,
    student: str | None = None,
    unlabelled: PoolLike | None = None,
    steps: int | None = None,
    time_limit: float | None = None,
    splits: Splits | None = None,
    zoo: str | Path | Zoo | None = None,
    device: str | None = None,
    precision: str | None = None,
    cache_dir: str | Path | None = None,
    executor: str | Executor = "local",
    progress: Progress | None = None,
) -> StudentResult:
    """Distil the ensemble of the finished run folder ``run`` into one ``student`` (a model id of the run's zoo;
    default the top-ranked model) by function matching for ``steps`` (default the run's ``distill_steps``) on its
    train + validation images and the ``unlabelled`` images (a folder, any ``--data`` form or an
    :class:`ImageSet`; labels ignored; any size); refused in one line where it does not fit ``time_limit``
    seconds. The run's images are read again from its ``config.yaml`` (checked against its ``data.json``) unless
    ``splits`` are given, its models from its zoo unless ``zoo`` is; ``device`` and ``precision`` are the run's
    unless given. The student is stored in the run folder and its result added to ``summary.json``; a rerun
    finds it there and trains nothing.

    Examples
    --------
    >>> from zoofit import distill
    >>> distill("runs/fm", unlabelled="fashion-mnist").test.accuracy   # doctest: +SKIP
    """
    started, root = time.perf_counter(), Path(run)
    summary = RunResult.read(root)  # one line where the folder holds no finished run
    read_json(root / MANIFEST, f"run folder '{root}'")  # nor its ensemble
    settings = _run_config(root)
    given = {name: value for name, value in (("student", student), ("distill_steps", steps)) if value is not None}
    config = summary.sweep.override(time_limit=time_limit, **given)  # the run's own limit is spent
    specs = (zoo if isinstance(zoo, Zoo) else load_zoo(zoo or settings.zoo)).models
    student_spec(config.distill.student, specs, _ranking(root))  # a bad student before any image is read
    machine = Machine(device or settings.device, precision or settings.precision, cache_dir)
    splits = splits or _run_splits(root, settings.data, progress)
    with RunStore(root).writer() as store:
        context = trial_context(splits, store, machine, resolve_device(machine.device), config)
        result = distil_into(
            store, splits, specs, _ranking(root), config, context, executor=executor, seed=settings.seed,
            started=started, unlabelled=unlabelled, progress=progress,
        )  # fmt: skip
        replace(summary, student=result).write(root)
    return result


def distil_into(
    store: RunStore,
    splits: Splits,
    specs: Sequence[ModelSpec],
    ranking: Ranking,
    config: SweepConfig,
    context: TrialContext,
    *,
    executor: str | Executor = "local",
    seed: int = 0,
    started: float | None = None,
    unlabelled: PoolLike | None = None,
    progress: Progress | None = None,
) -> StudentResult:
    """The student of the run in ``store`` (whose one writer the caller is), as ``config``'s ``distill``
    settings ask, trained on ``executor`` where the store does not hold it (within ``config``'s time limit,
    counted from ``started``); ``unlabelled`` (default ``config``'s) as :func:`distill` takes it."""
    manifest = read_json(store.root / MANIFEST, f"run folder '{store.root}'")
    pool = unlabelled if unlabelled is not None else config.distill.unlabelled
    images, skipped = unlabelled_images(pool, splits)
    spec = student_spec(config.distill.student, specs, ranking)
    job = StudentJob(
        spec, student_config(config, spec.id, ranking, splits, seed), manifest["members"],
        {entry["checkpoint"]: load_file(str(store.root / entry["checkpoint"])) for entry in manifest["members"]},
        tuple(manifest["class_names"]), images,
    )  # fmt: skip
    key = job.key(context)
    if not store.has_trial(key):
        if config.budget.time_limit is not None:
            check_time(context, job, config.budget.time_limit, time.perf_counter() if started is None else started)
        _train(job, context, executor, progress or SilentProgress()).save(store)
    else:
        log.info("student %s (%s): stored in the run folder, nothing to train", key, spec.id)
    return record_student(store, key, manifest, len(images) if images is not None else 0, skipped)


def _train(job: StudentJob, context: TrialContext, executor: str | Executor, progress: Progress) -> Any:
    """The student's output, from the unit run on ``executor``; a failure of its model is one line."""
    runner = named(executor, 1) if isinstance(executor, str) else executor
    log.info("distilling the ensemble into %s: %d steps", job.spec.id, job.config.steps)
    try:
        return next(output for _, output in runner.map(train_student, context, [job], progress))
    except Exception as error:  # whatever the student's model raised: one line naming it
        raise ModelError.failed(job.spec.id, error) from error


def student_spec(name: str | None, specs: Sequence[ModelSpec], ranking: Ranking) -> ModelSpec:
    """The student's model: ``name`` among ``specs``, else the top-ranked model of ``ranking`` (the one the
    proxy trusts most with the task's images, at one member's cost; benchmarks/distill.py measures it)."""
    by_id = {spec.id: spec for spec in specs}
    chosen = name or next((model for model, _ in ranking if model in by_id), specs[0].id if specs else None)
    if chosen not in by_id:
        listed = ", ".join(list(by_id)[:8]) + (", ..." if len(by_id) > 8 else "")
        raise ParameterError.of(
            "student", f"'{chosen}' is not a model of the run's zoo ({listed}); 'zoofit zoo list ZOO' lists a zoo's"
        )
    return by_id[chosen]


def student_config(config: SweepConfig, model: str, ranking: Ranking, splits: Splits, seed: int) -> TrialConfig:
    """The student's training: the sweep's central learning rate, batch and first depth, the ``distill_steps``,
    at the size its model was ranked (and its trials trained) at, else the run's resolution."""
    size = config.search.resolution(splits.ranking_set.largest_area())
    ranked = dict(ranking)
    return TrialConfig(
        config.search.centre_lr, config.distill.distill_steps, config.training.batch_size,
        ranked.get(model, size) if size is not None else None, seed, flip=False, shift=0.0,
        freeze_stride=config.search.freeze_stride[0],
    )  # fmt: skip


def unlabelled_images(pool: PoolLike | None, splits: Splits) -> tuple[ImageSet | None, list[Skipped]]:
    """The images of ``pool`` the student may learn from, and what was left out: unreadable images, and exact
    copies of the run's test images (the student never sees them)."""
    if pool is None:
        return None, []
    opened = open_pool(pool)
    test = {pixel_digest(image) for image in splits.test.images} if splits.test is not None else set()
    kept: list[np.ndarray] = []
    unreadable: list[str] = []
    copies: list[str] = []
    for first, chunk in opened.chunks(DECODE_CHUNK):
        for index, image in enumerate(chunk, start=first):
            if image is None:
                unreadable.append(opened.name(index))
            elif pixel_digest(image) in test:
                copies.append(opened.name(index))
            else:
                kept.append(image)
    where = f"the unlabelled images {opened.description}"
    skipped = list(happened(Skipped.of(where, "unreadable images", unreadable),
                            Skipped.of(where, "copies of the run's test images", copies)))  # fmt: skip
    if not kept:
        raise ZoofitError(f"{where} hold no image the student may learn from ({len(copies)} are the run's test "
                          f"images, {len(unreadable)} unreadable); give other images")  # fmt: skip
    return ImageSet(stack_if_uniform(kept), np.zeros(len(kept)), ("unlabelled",)), skipped


def record_student(
    store: RunStore, key: str, manifest: dict[str, Any], unlabelled: int, skipped: list[Skipped]
) -> StudentResult:
    """The stored student ``key`` written as the run's ``student.json`` (an ensemble of one), and its result:
    its test scores, cost and agreement with the ensemble's test predictions (of ``manifest``'s members)."""
    result, predictions = store.load_trial(key)
    trial = TrialResult.of(result)
    members = manifest["members"]
    ensemble = average(
        [store.load_trial(entry["trial"])[1]["test_probs"].numpy() for entry in members],
        np.array([float(entry["weight"]) for entry in members]),
    )
    agreement = float((predictions["test_probs"].numpy().argmax(1) == ensemble.argmax(1)).mean())
    store.write_json(STUDENT, {
        "class_names": manifest["class_names"], "members": [member_entry(result, 1.0, store.checkpoint_name(key))],
        "image_shape": manifest.get("image_shape"), "teacher": [entry["trial"] for entry in members],
    })  # fmt: skip
    assert trial.test is not None  # a run always has a test split
    return StudentResult(
        key, trial.model, trial.test, trial.gflops, agreement, trial.config.steps, unlabelled, trial.seconds,
        float(result.get("teacher_seconds", 0.0)), skipped,
    )  # fmt: skip


def _run_config(root: Path) -> RunConfig:
    """The run's settings (its config.yaml); the defaults for a folder without one."""
    return RunConfig.read(root / CONFIG) if (root / CONFIG).is_file() else RunConfig()


def _run_splits(root: Path, data: DataConfig | None, progress: Progress | None) -> Splits:
    """The run's images, read again as its config.yaml says, and checked to be those it recorded (data.json)."""
    if data is None:
        raise ZoofitError(
            f"run folder '{root}' does not record its data in {CONFIG} (made in Python without data=); pass the "
            "run's splits to zoofit.distill(splits=...)"
        )
    splits = load_data(data, progress=progress)
    recorded = read_json(root / DATA, f"run folder '{root}'").get("fingerprint")
    if splits.fingerprint != recorded:
        raise ZoofitError(
            f"the data of run folder '{root}' ({data.source}) reads differently now (fingerprint "
            f"{splits.fingerprint}, the run's {recorded}); distil with the run's own images"
        )
    return splits


def _ranking(root: Path) -> list[tuple[str, int]]:
    """The run's ranking (its ranking.json): each model and the size it was ranked at, best first."""
    return [
        (row["model"], int(row["input_size"])) for row in read_json(root / RANKING, f"run folder '{root}'")["ranked"]
    ]
