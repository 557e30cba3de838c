"""A bench's result as typed records, written to and read from ``bench.json`` (and ``bench.csv``) here alone.

Every figure of a task comes from its run's :class:`~zoofit.result.RunResult` (:func:`classifiers_of`): the
table is the runs' results side by side, never a second computation. Torch-free. ``SCHEMA`` is the version of
the file's shape: bump it when a field changes.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dacite

from zoofit.bench.suite import Reference
from zoofit.errors import ZoofitError, first_line
from zoofit.result import RunResult, WeightByKind

SCHEMA = 2
BENCH = "bench.json"
BENCH_CSV = "bench.csv"
BENCH_HTML = "bench.html"

#: The table's classifiers, in its order, with their labels: the ensemble, then its baselines.
CLASSIFIERS = {
    "ensemble": "greedy ensemble",
    "best_single": "best single trial (by validation)",
    "top_ranked": "best trial of the top-ranked model",
    "seed_ensemble": "seed ensemble of the best trial",
    "linear_probe": "logistic regression on frozen features",
}


@dataclass(frozen=True)
class Row:
    """One classifier on one task (or averaged over tasks): test accuracy, NLL, ECE and GFLOPs per image."""

    accuracy: float
    nll: float
    ece: float
    gflops_per_image: float


@dataclass(frozen=True)
class ProxyAudit:
    """How one ranking proxy foretold fine-tuning on a task: Kendall's tau between its scores and the models'
    fine-tuned test accuracies (None where either is constant), its top pick and its regret (best fine-tuned
    accuracy minus its top pick's)."""

    tau: float | None
    top_pick: str
    regret: float


@dataclass(frozen=True)
class TaskAudit:
    """Every zoo model fine-tuned on a task (its best trial by validation): its test accuracy, and each proxy's
    scores and agreement."""

    run: str  # the audit's run folder, relative to the bench folder
    fine_tuned: dict[str, float]  # model -> test accuracy
    scores: dict[str, dict[str, float]]  # proxy -> model -> score
    proxies: dict[str, ProxyAudit]


@dataclass(frozen=True)
class SuiteAudit:
    """Each proxy over the suite: mean Kendall's tau (over the tasks where it is defined) and mean regret."""

    mean_tau: dict[str, float | None]
    mean_regret: dict[str, float]
    tasks: int


@dataclass(frozen=True)
class TaskResult:
    """One task: where its run is, and its classifiers' rows (empty where it failed, with the reason)."""

    id: str
    group: str
    data: str
    run: str  # its run folder, relative to the bench folder
    status: str  # "done" or "failed"
    reason: str = ""
    splits: str = ""  # the data, described (classes, images per split)
    classifiers: dict[str, Row] = field(default_factory=dict)
    wall_seconds: float | None = None  # of this bench's run of the task (a resumed task: of the resume)
    audit: TaskAudit | None = None
    weights: WeightByKind | None = None  # how the ensemble's weight splits by kind, model, depth and seeds


@dataclass(frozen=True)
class GroupResult:
    """Each classifier's mean over the done tasks of a group (or of the whole suite) that have it."""

    name: str
    tasks: int
    classifiers: dict[str, Row]


@dataclass(frozen=True)
class BenchResult:
    """What ``zoofit bench`` found: per task, per group and over the suite, the ensemble and its baselines."""

    suite: str
    suite_source: str
    zoo: str
    preset: str
    test_images: int | None
    tasks: list[TaskResult]
    groups: list[GroupResult]
    mean: GroupResult
    references: list[Reference]
    audit: SuiteAudit | None
    executor: str
    wall_seconds: float
    schema: int = SCHEMA

    def write(self, root: Path) -> None:
        """Write ``bench.json`` and ``bench.csv`` into the bench folder ``root``."""
        from zoofit.store import write_csv, write_json

        write_json(root / BENCH, asdict(self))
        write_csv(root / BENCH_CSV, csv_rows(self))

    @classmethod
    def read(cls, root: str | Path) -> BenchResult:
        """The result in the bench folder ``root``; a one-line error where there is none, or one of another shape."""
        path = Path(root) / BENCH
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ZoofitError(
                f"'{root}' holds no bench ({first_line(error)}); give the folder 'zoofit bench' wrote"
            ) from None
        try:
            if not isinstance(data, dict) or data.get("schema") != SCHEMA:
                raise ValueError(
                    f"its schema is {data.get('schema') if isinstance(data, dict) else None}, this version reads {SCHEMA}"
                )
            return dacite.from_dict(cls, data, config=dacite.Config(cast=[int, float, tuple], strict=True))
        except (ValueError, dacite.DaciteError) as error:
            raise ZoofitError(f"'{path}' was written by another zoofit version or was altered ({first_line(error)}); "
                              "run 'zoofit bench' into its folder again") from None  # fmt: skip


def classifiers_of(result: RunResult) -> dict[str, Row]:
    """The table's rows of one task, from its run's typed result."""
    rows = {
        "ensemble": row_of(result.ensemble),
        "best_single": row_of(result.best_single),
        "top_ranked": row_of(result.top_ranked),
    }
    if result.seed_baseline is not None:
        rows["seed_ensemble"] = row_of(result.seed_baseline)
    if result.linear_probe is not None:
        rows["linear_probe"] = row_of(result.linear_probe)
    return rows


def row_of(classifier: Any) -> Row:
    """The row of a classifier of a run's result (its ensemble or a baseline: ``test`` and ``gflops_per_image``)."""
    return Row(**asdict(classifier.test), gflops_per_image=classifier.gflops_per_image)


def mean_of(name: str, tasks: list[TaskResult]) -> GroupResult:
    """Each classifier's mean over the done ``tasks`` that have it."""
    done = [task for task in tasks if task.status == "done"]
    means = {}
    for classifier in CLASSIFIERS:
        rows = [task.classifiers[classifier] for task in done if classifier in task.classifiers]
        if rows:
            means[classifier] = mean_row(rows)
    return GroupResult(name, len(done), means)


def mean_row(rows: list[Row]) -> Row:
    """The mean of ``rows``, figure by figure."""
    return Row(*(sum(getattr(r, f) for r in rows) / len(rows) for f in Row.__dataclass_fields__))


def csv_rows(result: BenchResult) -> list[dict[str, Any]]:
    """One line per task (or group, or the mean) and classifier."""
    lines = []
    scopes = [("task", t.id, t.group, t.classifiers, t.wall_seconds) for t in result.tasks if t.status == "done"]
    scopes += [("group", g.name, g.name, g.classifiers, None) for g in result.groups]
    scopes += [("mean", result.mean.name, "", result.mean.classifiers, None)]
    for scope, name, group, rows, wall in scopes:
        for classifier, row in rows.items():
            lines.append({"scope": scope, "name": name, "group": group, "classifier": classifier, **asdict(row),
                          "task_wall_seconds": wall})  # fmt: skip
    return lines


def finite_mean(values: list[float | None]) -> float | None:
    """The mean of the defined values, or None where there are none."""
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return sum(kept) / len(kept) if kept else None
