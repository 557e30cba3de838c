"""A run's result as typed records, written to and read from the run folder's ``summary.json`` here alone.

Torch-free, so that the report and the CLI read a run without loading torch. ``SCHEMA`` is the version of the
file's shape: bump it when a field changes, and a folder written by another version is refused in one line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import dacite

from zoofit.data.skips import Skipped
from zoofit.errors import ZoofitError, first_line
from zoofit.layout import SUMMARY
from zoofit.sweep_config import SweepConfig, TrialConfig

SCHEMA = 8


@dataclass(frozen=True)
class Scores:
    """Test metrics of one classifier."""

    accuracy: float
    nll: float
    ece: float


@dataclass(frozen=True)
class Member:
    """One candidate of the ensemble, with its weight, its kind (:data:`zoofit.members.KINDS`), its settings and
    its model's licence. Seeds of one model are trials of that ``model`` told apart by ``settings.seed``."""

    trial: str
    model: str
    weight: float
    settings: TrialConfig  # of a soup: its best ingredient's; of a linear head: no steps, at its size and seed
    ingredients: int = 1  # trials averaged into it (a soup: 2 or more)
    license: str = ""  # of its model's weights
    kind: str = "trial"
    strength: float | None = None  # a linear head's C

    @property
    def seed(self) -> int:
        """Its trial's seed (of a soup: its best ingredient's); a seed replica shares all but this with the best
        trial."""
        return self.settings.seed


@dataclass(frozen=True)
class WeightByKind:
    """How the ensemble's weight splits (Mustafa et al.'s analysis of upstream and downstream diversity), as shares
    of its total weight: by kind of member, by upstream model, by fine-tuning depth (``frozen``: a linear head on
    frozen features), and the share on trials of one model and settings that the ensemble holds in several seeds."""

    kinds: dict[str, float]
    models: dict[str, float]
    depths: dict[str, float]
    seeds: float

    @classmethod
    def of(cls, members: list[Member]) -> WeightByKind:
        """The split of ``members``' weights."""
        total = sum(m.weight for m in members) or 1.0
        kinds: dict[str, float] = {}
        models: dict[str, float] = {}
        depths: dict[str, float] = {}
        seeds: dict[tuple[str, TrialConfig], set[int]] = {}
        for m in members:
            kinds[m.kind] = kinds.get(m.kind, 0.0) + m.weight / total
            models[m.model] = models.get(m.model, 0.0) + m.weight / total
            depths[m.settings.depth()] = depths.get(m.settings.depth(), 0.0) + m.weight / total
            if m.kind == "trial":
                seeds.setdefault((m.model, replace(m.settings, seed=0)), set()).add(m.settings.seed)
        seeded = {group for group, found in seeds.items() if len(found) > 1}
        share = sum(m.weight for m in members if m.kind == "trial" and (m.model, replace(m.settings, seed=0)) in seeded)
        return cls(kinds, models, depths, share / total)

    def line(self) -> str:
        """One line: the shares by kind, the number of upstream models, the seeds' share and the depths'."""
        kinds = ", ".join(f"{kind} {share:.0%}" for kind, share in self.kinds.items())
        depths = ", ".join(f"{depth} {share:.0%}" for depth, share in self.depths.items())
        return f"{kinds}; {len(self.models)} upstream model(s); seeds of one model {self.seeds:.0%}; depths {depths}"


@dataclass(frozen=True)
class FailedTrial:
    """A trial, or another candidate of the pool, that did not finish (a model that cannot train at the asked size,
    out of memory): its key, model, settings, why, and its kind. Nothing of it is stored, so a rerun tries again."""

    trial: str
    model: str
    settings: TrialConfig
    reason: str
    kind: str = "trial"  # the kind of candidate it was to be (a linear head, say)

    def row(self) -> dict[str, Any]:
        """Its line of trials.csv: the settings and the reason, no scores."""
        return {"trial": self.trial, "kind": self.kind, "model": self.model, **asdict(self.settings),
                "failed": self.reason}  # fmt: skip


@dataclass(frozen=True)
class GrowthStep:
    """The greedy selection after one more step: the trial it added, the ensemble's validation NLL (what the
    selection minimises) and its test accuracy."""

    trial: str
    model: str
    val_nll: float
    test_accuracy: float


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin of a reliability diagram: test images whose top probability lies in (lower, upper],
    their accuracy and mean confidence (None where the bin is empty)."""

    lower: float
    upper: float
    count: int
    accuracy: float | None
    confidence: float | None


@dataclass(frozen=True)
class SoupResult:
    """A greedy soup of one model's trials: its ``ingredients`` (trial ids, best first), scores and cost."""

    trial: str  # its id in the run folder's trials/
    model: str
    ingredients: list[str]
    val_accuracy: float
    val_nll: float
    test: Scores
    gflops_per_image: float


@dataclass(frozen=True)
class Baseline:
    """A classifier the ensemble is compared with: one trial, or the average of several (seeds of one)."""

    model: str
    trials: list[str]
    test: Scores
    gflops_per_image: float


@dataclass(frozen=True)
class SeedReplica:
    """The best trial trained again with another ``seed`` (``--seed-replicas``), a candidate of the ensemble: its
    trial id, scores, and its ``weight`` in the ensemble (0: not chosen)."""

    trial: str
    model: str
    seed: int
    val: Scores
    test: Scores | None
    weight: float


@dataclass(frozen=True)
class LinearProbeResult:
    """The frozen-features baseline: an L2 logistic regression on the top-ranked model's features, its inverse
    strength ``C`` chosen on validation."""

    model: str
    strength: float
    val_accuracy: float
    test: Scores
    gflops_per_image: float


@dataclass(frozen=True)
class SafeguardResult:
    """The selection's safeguard (``--safeguard``): the single best candidate (``best``, a trial id), the
    selection's validation NLL gain over it judged out of bag (positive: the ensemble is better), the range of
    ``level`` of the resamples' gains, and whether the ensemble ``fell_back`` to the single best alone."""

    best: str
    gain: float
    low: float
    high: float
    level: float
    fell_back: bool

    def describe(self) -> str:
        """One line: the gain, its range and the decision."""
        gain = f"{self.gain:+.4f} ({self.level:.0%} of resamples in {self.low:+.4f}..{self.high:+.4f})"
        decision = f"fell back to {self.best} alone" if self.fell_back else "kept the ensemble"
        return f"safeguard: validation NLL gain over the single best, out of bag, {gain}: {decision}"


@dataclass(frozen=True)
class EnsembleResult:
    """The greedy ensemble: its members, its validation NLL (what the selection minimised) and its test scores."""

    members: list[Member]
    val_nll: float
    test: Scores
    per_class_accuracy: dict[str, float | None]  # None: a class without test images
    gflops_per_image: float
    growth: list[GrowthStep] = field(default_factory=list)  # one per greedy step, the steps after the best too
    by_kind: WeightByKind | None = None  # how its weight splits by kind, model, depth and seeds
    safeguard: SafeguardResult | None = None  # None: --no-safeguard


@dataclass(frozen=True)
class StudentResult:
    """One network distilled from the ensemble (``zoofit distill``, ``run --distill``): its scores on the test
    split, its cost, how often its top class is the ensemble's there (``agreement``), its training (``steps``, the
    ``unlabelled_images`` it saw beside the run's train + validation images), its wall ``seconds`` and the share
    of them the teacher's forward passes took (``teacher_seconds``), and what the unlabelled data left out."""

    trial: str  # its id in the run folder's trials/
    model: str
    test: Scores
    gflops_per_image: float
    agreement: float
    steps: int
    unlabelled_images: int
    seconds: float
    teacher_seconds: float
    skipped: list[Skipped] = field(default_factory=list)


@dataclass(frozen=True)
class RobustnessResult:
    """Scores under distribution shift: ``conditions[condition][classifier]``, where the conditions are
    ``clean``, each corruption and their ``mean``, and the classifiers ``ensemble`` and ``best_single``."""

    images: int
    severity: int
    conditions: dict[str, dict[str, Scores]]


@dataclass(frozen=True)
class DomainResult:
    """Scores on the labelled images of a shifted domain (``zoofit run --shift-data``, ``zoofit evaluate``):
    ``scores[classifier]`` and ``per_class_accuracy[classifier][class]`` (None: a class without images there),
    where the classifiers are ``ensemble``, ``best_single`` and, where the run has them, ``seed_ensemble`` and
    ``student``."""

    data: str  # the domain's data, as given
    images: int
    classes: list[str]  # the run's classes the domain has images of
    scores: dict[str, Scores]
    per_class_accuracy: dict[str, dict[str, float | None]]
    skipped: list[Skipped] = field(default_factory=list)  # what reading the domain's data left out

    def write(self, path: Path) -> Path:
        """Write this result as JSON to ``path``."""
        from zoofit.store import write_json  # the store loads torch; reading a result does not need it

        write_json(path, asdict(self))
        return path


@dataclass(frozen=True)
class ProxyResult:
    """The ranking proxy of a run: its name, its label (what its score is called) and its settings."""

    name: str
    label: str
    settings: dict[str, Any]


@dataclass(frozen=True)
class Units:
    """Units of work this invocation computed, and those it found done (features per model, trials)."""

    computed: int
    reused: int


@dataclass(frozen=True)
class PlanResult:
    """A run planned to a time limit: the limit, the seconds the plan expected, and what it cut (in order)."""

    limit_seconds: float
    planned_seconds: float
    cuts: list[str]


@dataclass(frozen=True)
class RunResult:
    """What ``zoofit run`` found: the ensemble, its baselines, its robustness, and how the run went."""

    data: str  # the splits, described
    preset: str
    sweep: SweepConfig
    proxy: ProxyResult  # the ranking proxy, whose top-ranked model gives ``top_ranked``
    ensemble: EnsembleResult
    best_single: Baseline  # the best trial by validation accuracy
    top_ranked: Baseline  # the best trial of the model the proxy ranked first
    seed_baseline: Baseline | None
    robustness: RobustnessResult | None
    units: Units
    stage_seconds: dict[str, float]
    wall_seconds: float
    soups: list[SoupResult] = field(default_factory=list)  # with --soup: one per model with several trials
    reliability: dict[str, list[ReliabilityBin]] = field(default_factory=dict)  # ensemble, best_single
    domains: dict[str, DomainResult] = field(default_factory=dict)  # with --shift-data: one per named domain
    linear_probe: LinearProbeResult | None = None  # the frozen-features baseline (None: the test split is empty)
    # With --refit, ``ensemble`` (and the seed baseline) hold the members trained again on train + validation, and
    # this the ensemble the selection chose, its members trained on train alone, on the same test split.
    before_refit: EnsembleResult | None = None
    plan: PlanResult | None = None  # with --time-limit: what the run planned to fit it
    failed_trials: list[FailedTrial] = field(default_factory=list)  # trials that did not finish (retried on a rerun)
    skipped: list[Skipped] = field(default_factory=list)  # what the data's source and decoding left out
    seed_replicas: list[SeedReplica] = field(default_factory=list)  # with --seed-replicas: the pool's replicas
    student: StudentResult | None = None  # with run --distill or after zoofit distill: the distilled student
    schema: int = SCHEMA

    def write(self, root: Path) -> Path:
        """Write ``summary.json`` into the run folder ``root``."""
        from zoofit.store import write_json  # the store loads torch; reading a result does not need it

        write_json(root / SUMMARY, asdict(self))
        return root / SUMMARY

    @classmethod
    def read(cls, root: str | Path) -> RunResult:
        """The result in the run folder ``root``; a one-line error where there is none, or one of another shape."""
        path = Path(root) / SUMMARY
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ZoofitError(
                f"run folder '{root}' holds no finished run ({first_line(error)}); give the folder a 'zoofit run' wrote"
            ) from error
        schema = data.get("schema") if isinstance(data, dict) else None
        try:
            if schema != SCHEMA:
                raise ValueError(f"its schema is {schema}, this version reads {SCHEMA}")
            return dacite.from_dict(cls, data, config=dacite.Config(cast=[int, float, tuple], strict=True))
        except (ValueError, dacite.DaciteError) as error:
            raise ZoofitError(
                f"'{path}' was written by another zoofit version or was altered ({first_line(error)}); "
                "run 'zoofit run' into its folder again"
            ) from error


@dataclass
class StageTimer:
    """Wall seconds per stage of a run, and in all."""

    seconds: dict[str, float] = field(default_factory=dict)
    start: float = field(default_factory=time.perf_counter)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - began, 2)

    @property
    def wall(self) -> float:
        return time.perf_counter() - self.start
