"""A finished run's pool measured by kind, after the fact: the run's own selection (the same function, settings and
seed) again over sub-pools of its stored candidates chosen by kind, from their stored validation and test
probabilities (no model is loaded, nothing is trained), beside the baselines the run reports. So one run shows a
kind of member against the pool without it, from the same candidates (``benchmarks/pool_kinds.py``).

A sub-pool is written ``trial+linear:1``: parts joined by ``+``, each optionally with ``:N``, its candidates of
the N best-ranked models only. The parts are the kinds of member, with the best trial's seed replicas
(``--seed-replicas``, of kind ``trial``) a part of their own, ``replica``, apart from the sweep's trials.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoofit.bench.result import BenchResult, Row, classifiers_of, mean_row, row_of
from zoofit.bench.runner import task_splits
from zoofit.data import Splits
from zoofit.ensemble import average
from zoofit.errors import ParameterError, ZoofitError, first_line
from zoofit.evaluate import summarize
from zoofit.finetune.sweep import TrialRecord, stored_record
from zoofit.layout import CONFIG, DATA, RANKING, TRIALS
from zoofit.members import KINDS, member_label
from zoofit.pipeline import select_ensemble
from zoofit.progress import Progress, SilentProgress
from zoofit.replay import RunConfig
from zoofit.result import RunResult, Scores, WeightByKind
from zoofit.robustness import read_json
from zoofit.store import RunStore

REPLICA = "replica"
#: What a sub-pool is made of: the kinds of member, and the seed replicas apart from the sweep's trials.
PARTS = (*KINDS.names(), REPLICA)


@dataclass(frozen=True)
class StoredPool:
    """A finished run's candidates as its selection chose from them (before any refit), in the run's order, with
    its result (settings and baselines), seed, ranking (model ids, best first) and the labels of its validation and
    test images."""

    root: Path
    result: RunResult
    seed: int
    ranking: list[str]
    candidates: list[TrialRecord]
    val_labels: np.ndarray
    test_labels: np.ndarray

    @property
    def parts(self) -> list[str]:
        """The parts its candidates are of, in the order of :data:`PARTS`."""
        held = {self.part(candidate) for candidate in self.candidates}
        return [name for name in PARTS if name in held]

    def part(self, candidate: TrialRecord) -> str:
        """The part ``candidate`` is of: its kind, or ``replica`` for a trial of another seed than the run's (the
        sweep trains every trial with the run's seed)."""
        return REPLICA if candidate.kind == "trial" and candidate.config.seed != self.seed else candidate.kind


@dataclass(frozen=True)
class SubPool:
    """The candidates of some parts (:data:`PARTS`): ``parts[part]`` is how many of the best-ranked models'
    candidates of that part it takes (None: every model's)."""

    parts: dict[str, int | None]

    @classmethod
    def parse(cls, text: str) -> SubPool:
        """The sub-pool ``text`` names (``trial+linear:1``); a :class:`ParameterError` naming ``pools`` where a
        part is unknown or a count is not a whole number of at least 1."""
        parts: dict[str, int | None] = {}
        for part in text.split("+"):
            name, colon, count = part.strip().partition(":")
            if name not in PARTS or (colon and not (count.isdigit() and int(count) >= 1)):
                raise ParameterError.of(
                    "pools", f"'{text}' is no sub-pool: give parts of {', '.join(PARTS)} joined by '+', "
                    "each with ':N' (its N best-ranked models) or without",
                )  # fmt: skip
            parts[name] = int(count) if colon else None
        return cls(parts)

    @property
    def name(self) -> str:
        return "+".join(part + ("" if count is None else f":{count}") for part, count in self.parts.items())

    def takes(self, candidate: TrialRecord, pool: StoredPool) -> bool:
        """Whether ``candidate`` of ``pool`` belongs to this sub-pool."""
        part = pool.part(candidate)
        if part not in self.parts:
            return False
        count = self.parts[part]
        return count is None or candidate.model in pool.ranking[:count]


def default_pools(parts: Sequence[str]) -> list[SubPool]:
    """The sub-pools a run holding candidates of ``parts`` is measured on: its trials alone (the pool before other
    kinds), the trials with each other part, and every part at once (where that is another)."""
    trials = ["trial"] if "trial" in parts else []
    others = [part for part in parts if part != "trial"]
    pools = [trials] * bool(trials) + [trials + [part] for part in others] + [list(parts)] * (len(others) > 1)
    return [SubPool(dict.fromkeys(pool)) for pool in pools]


@dataclass(frozen=True)
class PoolResult:
    """The run's selection over one sub-pool: its candidates, the chosen ensemble's validation NLL, test scores,
    GFLOPs per image, members (labels with weights, and trial ids) and how the weight splits by kind, and the
    seconds its candidates took to make (each unit's own, as stored: training, cooking or fitting)."""

    pool: str
    candidates: int
    val_nll: float
    test: Scores
    gflops_per_image: float
    members: list[str]  # labels, each with its weight
    trials: list[str]  # the members' trial ids
    by_kind: WeightByKind
    seconds: float


@dataclass(frozen=True)
class PoolComparison:
    """One run's sub-pools side by side with what the run reports (``reported``: its ensemble and baselines, as
    the bench table has them). ``before_refit``: where the run refit its members, its ensemble as chosen, which
    the sub-pools compare with (they are as chosen too; ``reported``'s ensemble is refit). ``reproduced``: whether
    the pool of every kind the run held chose the run's own members (None: that pool was not measured)."""

    run: str
    data: str
    pools: list[PoolResult]
    reported: dict[str, Row]
    before_refit: Row | None
    reproduced: bool | None
    stage_seconds: dict[str, float]


def read_pool(
    run: str | Path, splits: Splits | None = None, *, test_images: int | None = None, progress: Progress | None = None
) -> StoredPool:
    """The pool of the finished run folder ``run``: its candidates as ``trials.csv`` marks them, read from their
    stored results and predictions, with the labels of its ``splits`` (default: drawn again from its
    ``config.yaml``, the test split capped at ``test_images`` as a bench caps it), checked against the folder's
    record of its data and each candidate's predictions. A one-line :class:`ZoofitError` where the folder is no
    finished run or disagrees."""
    root = Path(run)
    result = RunResult.read(root)
    config = RunConfig.read(root / CONFIG)
    if splits is None:
        if config.data is None:
            raise ZoofitError(f"'{root / CONFIG}' names no data (a run of the Python API given splits alone); "
                              "pass its splits")  # fmt: skip
        splits = task_splits(config.data, test_images, progress or SilentProgress())
    recorded = read_json(root / DATA, f"run folder '{root}'").get("fingerprint")
    if splits.test is None or splits.fingerprint != recorded:
        raise ZoofitError(f"the data given ({splits.describe()}) is not what run folder '{root}' was run on (its "
                          f"{DATA}); give that run's data (a bench task: its bench folder, which caps its test "
                          "images)")  # fmt: skip
    store = RunStore(root)
    candidates = [stored_record(store, key) for key in candidate_keys(root, result)]
    for candidate in candidates:
        _check_predictions(candidate, store, len(splits.val), len(splits.test), len(splits.class_names))
    ranking = [row["model"] for row in read_json(root / RANKING, f"run folder '{root}'")["ranked"]]
    return StoredPool(root, result, config.seed, ranking, candidates, splits.val.labels, splits.test.labels)


def candidate_keys(root: Path, result: RunResult) -> list[str]:
    """The keys of the units ``trials.csv`` marks as candidates (those the run's selection chose from), in the
    order of the run's pool: by kind as its ``members`` lists them."""
    try:
        with (root / TRIALS).open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.DictReader(handle) if row.get("candidate") == "True"]
    except OSError as error:
        raise ZoofitError(f"run folder '{root}' has no readable {TRIALS} ({first_line(error)}); "
                          "run 'zoofit run' into it again") from None  # fmt: skip
    members = list(result.sweep.ensemble.members)
    if not rows:
        raise ZoofitError(f"'{root / TRIALS}' marks no candidate; run 'zoofit run' into '{root}' again")
    rows.sort(key=lambda row: members.index(row["kind"]) if row["kind"] in members else len(members))
    return [row["trial"] for row in rows]


def _check_predictions(candidate: TrialRecord, store: RunStore, val: int, test: int, classes: int) -> None:
    shapes = {"validation": (candidate.val_probs, val), "test": (candidate.test_probs, test)}
    for split, (probs, images) in shapes.items():
        if probs is None or probs.shape != (images, classes):
            held = "none" if probs is None else "x".join(map(str, probs.shape))
            raise ZoofitError(f"'{store.trial_dir(candidate.key)}' holds {held} {split} probabilities, not "
                              f"{images}x{classes} (the run's {split} images x classes); run 'zoofit run' into "
                              f"'{store.root}' again")  # fmt: skip


def select_pool(pool: StoredPool, sub: SubPool) -> PoolResult:
    """The run's own selection over the candidates of ``sub``, scored on the test images."""
    chosen = [c for c in pool.candidates if sub.takes(c, pool)]
    if not chosen:
        raise ParameterError.of("pools", f"'{sub.name}' holds none of the run's candidates (its parts: "
                                f"{', '.join(pool.parts)})")  # fmt: skip
    selection = select_ensemble(chosen, pool.val_labels, pool.result.sweep, pool.seed)
    probs = average([c.test_probs for c in chosen], selection.counts)
    members = [chosen[i].member(float(selection.weights[i])) for i in selection.members]
    return PoolResult(
        pool=sub.name, candidates=len(chosen), val_nll=selection.val_nll,
        test=Scores(**summarize(probs, pool.test_labels)),
        gflops_per_image=float(sum(chosen[i].gflops for i in selection.members)),
        members=[f"{member_label(m)} x{m.weight:.2f}" for m in members], trials=[m.trial for m in members],
        by_kind=WeightByKind.of(members),
        seconds=float(sum(c.result.seconds for c in chosen)),
    )  # fmt: skip


def compare_pools(pool: StoredPool, subs: Sequence[SubPool] | None = None) -> PoolComparison:
    """Each of ``subs`` (default: :func:`default_pools` of the parts the run holds) beside what the run reports."""
    result = pool.result
    measured = [select_pool(pool, sub) for sub in (subs or default_pools(pool.parts))]
    chosen = (result.before_refit or result.ensemble).members
    whole = SubPool(dict.fromkeys(pool.parts)).name
    return PoolComparison(
        run=str(pool.root), data=result.data, pools=measured, reported=classifiers_of(result),
        before_refit=row_of(result.before_refit) if result.before_refit is not None else None,
        reproduced=next((sorted(m.trials) == sorted(c.trial for c in chosen) for m in measured if m.pool == whole), None),
        stage_seconds=result.stage_seconds,
    )  # fmt: skip


def compare_bench(
    bench: str | Path, subs: Sequence[SubPool] | None = None, *, progress: Progress | None = None
) -> dict[str, PoolComparison]:
    """:func:`compare_pools` on each finished task of the bench folder ``bench``, by task id (each task's test
    images capped as the bench capped them)."""
    result = BenchResult.read(bench)
    return {
        task.id: compare_pools(
            read_pool(Path(bench) / task.run, test_images=result.test_images, progress=progress), subs
        )
        for task in result.tasks
        if task.status == "done"
    }


def mean_pools(comparisons: Sequence[PoolComparison]) -> dict[str, Row]:
    """Each sub-pool's mean row over the ``comparisons`` (runs) that measured it."""
    rows: dict[str, list[Row]] = {}
    for comparison in comparisons:
        for measured in comparison.pools:
            rows.setdefault(measured.pool, []).append(row_of(measured))
    return {pool: mean_row(found) for pool, found in rows.items()}
