"""The ensemble distilled into one student, side by side with the ensemble and the best single trial.

For the demo (Fashion-MNIST, the demo zoo, the quick preset without robustness), and with ``--suite offline``
for every task of the offline suite, in one process: the run (``ZooFit.fit`` into OUT/<task>), then two students
distilled from its ensemble into the same folder (``zoofit.distill``, function matching, ``--steps`` steps,
the top-ranked model): without unlabelled images, and with the task's unused training images as the unlabelled
pool (the source's training images that the run did not draw, at most ``--unlabelled``, drawn with seed 0; for
Fashion-MNIST its 59,000 unused training images). Each classifier gets its test accuracy, NLL, ECE, GFLOPs per
image, the wall seconds it took to make (the whole run for the ensemble, its trial for the best single) and its
milliseconds per image to predict 256 test images; each student its teacher's share of its seconds and its
agreement with the ensemble. The goal figure of each student: (best single NLL - student NLL) / (best single
NLL - ensemble NLL), at least 0.6 on the demo and on the suite's mean.

Writes benchmarks/results/distill-<cpu|gpu>.json (the figures so far after each task). ``--bench DIR`` distils
the runs a finished ``zoofit bench --suite offline --out DIR`` made instead (each task's run folder, not run
again; ``--tasks`` picks some) and writes distill-offline-<cpu|gpu>.json. ``--smoke`` runs a tiny
version in seconds (digits, a random-init model, a few steps) and writes nothing. ``--step-cost N`` measures
only what the teacher costs a step, on the demo's settings (quick: 112 px, batch 32, stride 8 kept), side by side:
the demo ensemble's three models (pre-trained, new heads) as the teacher, its top-ranked model as the student, N
steps of function matching on Fashion-MNIST images; it writes benchmarks/results/distill-step-cost-<cpu|gpu>.json.

    python benchmarks/distill.py [--out runs/distill] [--steps 1000] [--unlabelled N] [--suite offline]
        [--student MODEL] [--bench DIR [--tasks a,b]] [--smoke] [--step-cost N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import describe, save  # noqa: E402

from zoofit import EnsembleClassifier, ZooFit, distill, load_data, preset  # noqa: E402
from zoofit.bench import Task, load_suite  # noqa: E402
from zoofit.data import ImageSet, Splits, load_source  # noqa: E402
from zoofit.data.dataset import pixel_digest  # noqa: E402
from zoofit.data.decode import DEFAULT_MAX_SIDE  # noqa: E402
from zoofit.distillation.views import TeacherClock, kl_divergence, matched_batches  # noqa: E402
from zoofit.ensemble import member_entry  # noqa: E402
from zoofit.ensemble.module import EnsembleModule, MemberModule  # noqa: E402
from zoofit.finetune.freeze import freeze_early_layers  # noqa: E402
from zoofit.finetune.trial import new_head, train_steps  # noqa: E402
from zoofit.members import member_label  # noqa: E402
from zoofit.progress import SilentProgress  # noqa: E402
from zoofit.result import RunResult, Scores  # noqa: E402
from zoofit.store import RunStore  # noqa: E402
from zoofit.sweep_config import TrialConfig  # noqa: E402
from zoofit.zoo import load_model, load_zoo  # noqa: E402
from zoofit.zoo.inference import fold_batch_norms  # noqa: E402

DEMO = Task("fashion-mnist", "fashion-mnist", "natural")  # zoofit run --data fashion-mnist's protocol
PREDICTED_IMAGES = 256  # test images each classifier predicts for its speed
#: The smoke run: a random-init model on scikit-learn's digits, a few steps each.
SMOKE_TASK = Task("digits", "digits", "natural", {"train_size": 60, "test_fraction": 0.3, "val_fraction": 0.2})
SMOKE_ZOO = """name: smoke
models:
  - id: tiny_resnet
    arch: test_resnet
    weights: random
    preprocessing: {input_size: 32, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}
"""
SMOKE_SWEEP = {"top_k": 1, "steps": (3,), "batch_size": 8, "image_size": 32, "shift_images": 0}


def unused_images(data: str, splits: Splits, count: int | None, seed: int = 0) -> ImageSet | None:
    """Up to ``count`` (None: all) of the training images of the source ``data`` that ``splits`` do not hold (by
    their pixels), drawn with ``seed``; None where there are none."""
    train, _ = load_source(data).train.decoded("train", DEFAULT_MAX_SIDE)
    held = {pixel_digest(image) for split in (splits.train, splits.val, splits.test) for image in split.images}
    free = [index for index in range(len(train)) if pixel_digest(train.images[index]) not in held]
    chosen = np.random.default_rng(seed).permutation(np.array(free, dtype=np.int64))[:count]
    return train.subset(np.sort(chosen)) if len(chosen) else None


def predict_ms(classifier: EnsembleClassifier, splits: Splits) -> float:
    """Milliseconds per image of ``classifier`` on :data:`PREDICTED_IMAGES` test images (batches of 64)."""
    images = list(splits.test.subset(np.arange(min(PREDICTED_IMAGES, len(splits.test)))).images)
    start = time.perf_counter()
    classifier.predict_proba(images)
    return round(1000 * (time.perf_counter() - start) / len(images), 3)


def row(test: Scores, gflops: float, wall: float, classifier: EnsembleClassifier, splits: Splits) -> dict[str, Any]:
    return {**asdict(test), "gflops_per_image": round(gflops, 4), "wall_seconds": round(wall, 1),
            "predict_ms_per_image": predict_ms(classifier, splits)}  # fmt: skip


def goal(best: dict[str, Any], student: dict[str, Any] | None, ensemble: dict[str, Any]) -> float | None:
    """The share of the ensemble's NLL gain over the best single trial that ``student`` keeps."""
    gain = best["nll"] - ensemble["nll"]
    return None if student is None or gain <= 0 else round((best["nll"] - student["nll"]) / gain, 3)


def task_figures(
    task: Task, out: Path, fit: ZooFit | None, steps: int, unlabelled: int | None, student: str | None
) -> dict:
    """One task: its run (``fit`` into ``out``; None: the finished run there, as a bench made it), its ensemble
    and best single trial, and its two students, each a row."""
    config = task.data_config()
    splits = load_data(config)
    if fit is None:
        result = RunResult.read(out)
        run_wall = result.wall_seconds
    else:
        started = time.perf_counter()
        result = fit.fit(splits, out, data=config).result_
        run_wall = time.perf_counter() - started
    best_trial = json.loads((RunStore(out).trial_dir(result.best_single.trials[0]) / "result.json").read_text())
    best = EnsembleClassifier.from_entries(out, [member_entry(best_trial, 1.0, RunStore(out).checkpoint_name(
        best_trial["trial"]))], splits.class_names, precision="fp32")  # fmt: skip
    rows: dict[str, Any] = {
        "ensemble": {**row(result.ensemble.test, result.ensemble.gflops_per_image, run_wall,
                           EnsembleClassifier.load(out, precision="fp32"), splits),
                     "members": [member_label(m) for m in result.ensemble.members]},
        "best_single": {**row(result.best_single.test, result.best_single.gflops_per_image, best_trial["seconds"],
                              best, splits), "model": result.best_single.model},
    }  # fmt: skip
    pool = unused_images(task.data, splits, unlabelled)
    for name, images in (("student", None), ("student_unlabelled", pool)):
        if name == "student_unlabelled" and images is None:
            rows[name] = None  # the source has no training image the run did not draw
            continue
        made = distill(out, student=student, steps=steps, unlabelled=images, splits=splits, precision="fp32")
        rows[name] = {
            **row(made.test, made.gflops_per_image, made.seconds, EnsembleClassifier.load(out, student=True,
                  precision="fp32"), splits),
            "model": made.model, "steps": made.steps, "unlabelled_images": made.unlabelled_images,
            "teacher_seconds": made.teacher_seconds, "agreement": made.agreement,
            "goal": goal(rows["best_single"], {"nll": made.test.nll}, rows["ensemble"]),
        }  # fmt: skip
    return {"task": task.id, "data": splits.describe(), "unused_training_images": len(pool) if pool else 0, **rows}


def main(smoke: bool = False, argv: list[str] | None = None) -> dict[str, Any]:
    if smoke:
        return _smoke()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/distill"))
    parser.add_argument("--steps", type=int, default=1000, help="training steps of each student")
    parser.add_argument("--unlabelled", type=int, default=None, help="unused training images at most (all)")
    parser.add_argument("--suite", default=None, help="also every task of this suite (offline)")
    parser.add_argument("--student", default=None, help="the student's model (default: the top-ranked)")
    parser.add_argument(
        "--bench",
        type=Path,
        default=None,
        help="distil the runs of this finished `zoofit bench --suite offline` folder instead",
    )
    parser.add_argument("--tasks", default=None, help="with --bench: comma-separated task ids (default: all)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run in seconds; writes nothing")
    parser.add_argument("--step-cost", type=int, default=None, help="only time N steps: the teacher's share")
    options = parser.parse_args(argv)
    if options.smoke:
        return _smoke()
    if options.step_cost:
        figures = step_cost(options.step_cost)
        save("distill-step-cost", {**figures, "machine": describe()})
        print(json.dumps(figures, indent=1))
        return figures
    if options.bench:
        ids = options.tasks.split(",") if options.tasks else None
        tasks, fit, out, name = load_suite("offline").select(ids).tasks, None, options.bench, "distill-offline"
    else:
        tasks = [DEMO] + ([t for t in load_suite(options.suite).tasks if t.id != DEMO.id] if options.suite else [])
        fit, out, name = (
            ZooFit("demo", sweep=preset("quick").override(shift_images=0), precision="fp32"),
            options.out,
            "distill",
        )
    figures: dict[str, Any] = {"steps": options.steps, "unlabelled_at_most": options.unlabelled,
                               "runs": str(options.bench) if options.bench else None, "tasks": []}  # fmt: skip
    for task in tasks:
        figures["tasks"].append(task_figures(task, out / task.id, fit, options.steps, options.unlabelled,
                                             options.student))  # fmt: skip
        figures["suite_mean_goal"] = _mean_goals(figures["tasks"])
        save(name, {**figures, "machine": describe()})
        print(json.dumps(figures["tasks"][-1], indent=1))
    return figures


#: The demo's ensemble (results/demo_run-quick-cpu.json); the first, its top-ranked model, is the default student.
DEMO_MEMBERS = ("mobilenetv2_dogs", "mobilenetv2_imagenet", "efficientnet_lite0")


def step_cost(steps: int) -> dict[str, Any]:
    """Seconds per step of function matching on the demo's settings, and the teacher's share of them (see the
    module's docstring)."""
    config, device = preset("quick"), torch.device("cpu")
    specs = {spec.id: spec for spec in load_zoo("demo").models}
    images = list(load_data("fashion-mnist").ranking_set.images)
    size = config.search.image_size

    def with_head(model: str) -> Any:
        loaded = load_model(specs[model])
        new_head(loaded.model, 10)
        return loaded, loaded.preprocessing.with_size(size)

    members = [MemberModule(fold_batch_norms(loaded.model.eval(), prep.input_size), prep, loaded.spec.id)
               for loaded, prep in map(with_head, DEMO_MEMBERS)]  # fmt: skip
    student, prep = with_head(DEMO_MEMBERS[0])
    frozen = freeze_early_layers(student.model.train(), config.search.freeze_stride[0], size)
    trial = TrialConfig(
        config.search.centre_lr, steps, config.training.batch_size, size, freeze_stride=config.search.freeze_stride[0]
    )
    clock = TeacherClock()
    batches = matched_batches(images, EnsembleModule(members, [1.0] * len(members)).eval(), trial.batch_size, prep,
                              np.random.default_rng(0), torch.Generator().manual_seed(0), device, clock=clock)  # fmt: skip
    start = time.perf_counter()
    train_steps(student.model, batches, trial, frozen=frozen, input_size=size, device=device, precision="fp32",
                progress=SilentProgress(), description="student", cuda_graphs=False, loss=kl_divergence)  # fmt: skip
    wall = time.perf_counter() - start
    return {
        "teacher": list(DEMO_MEMBERS), "student": DEMO_MEMBERS[0], "steps": steps, "batch_size": trial.batch_size,
        "image_size": size, "torch_threads": torch.get_num_threads(), "seconds_per_step": round(wall / steps, 4),
        "teacher_seconds_per_step": round(clock.seconds / steps, 4), "teacher_share": round(clock.seconds / wall, 3),
    }  # fmt: skip


def _mean_goals(tasks: list[dict[str, Any]]) -> dict[str, float | None]:
    """Each student's goal figure on the suite's mean: of the mean NLLs (best single, student, ensemble) over the
    tasks that have it. Not the mean of the tasks' figures: a task where the ensemble gains almost nothing over the
    best single divides by almost nothing."""
    means: dict[str, float | None] = {}
    for name in ("student", "student_unlabelled"):
        held = [task for task in tasks if task.get(name)]
        if not held:
            means[name] = None
            continue
        rows = ("best_single", name, "ensemble")
        means[name] = goal(*({"nll": float(np.mean([task[row]["nll"] for task in held]))} for row in rows))
    return means


def _smoke() -> dict[str, Any]:
    """Every step of the benchmark on a tiny task, in seconds."""
    with tempfile.TemporaryDirectory(prefix="zoofit-distill-") as folder:
        zoo = Path(folder) / "zoo.yaml"
        zoo.write_text(SMOKE_ZOO)
        fit = ZooFit(str(zoo), sweep=preset("quick").override(**SMOKE_SWEEP), precision="fp32", workers=1)
        figures = task_figures(SMOKE_TASK, Path(folder) / "run", fit, steps=3, unlabelled=40, student=None)
    print(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
