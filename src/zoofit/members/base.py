"""What every kind of ensemble member gives the pool the selection chooses from.

A candidate of any kind is a :class:`~zoofit.finetune.TrialRecord` stored in the run like a trial: content-keyed
(a rerun reuses it), with its model, validation and test probabilities, GFLOPs per image and a ``result.json``
whose :func:`~zoofit.ensemble.member_entry` ``predict``, ``export`` and ``evaluate`` rebuild it from. A
:class:`Kind` says how its candidates are made, how they are refit, what the time-limit planner prices them at and
how a member of it reads in a table. Torch-free at import (the CLI lists the kinds in its help).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from zoofit.budget import CostModel, ModelCost
    from zoofit.finetune import TrialRecord, TrialRunner
    from zoofit.progress import Progress
    from zoofit.rank import Ranker
    from zoofit.result import FailedTrial, Member
    from zoofit.sweep_config import SweepConfig
    from zoofit.zoo import ModelSpec


@dataclass(frozen=True)
class PoolInputs:
    """What the kinds make their candidates from: the sweep's finished ``trials`` (with the best trial's seed
    replicas, ``--seed-replicas``), the ``runner`` that trained them (its context holds the data, the run folder
    and the device), the zoo's ``specs`` by id, the fitted ``ranker`` (its ranking and cached features), the run's
    ``config`` and ``seed``, and ``progress``."""

    trials: list[TrialRecord]
    runner: TrialRunner
    specs: dict[str, ModelSpec]
    ranker: Ranker
    config: SweepConfig
    seed: int
    progress: Progress


@dataclass(frozen=True)
class Made:
    """A kind's candidates (or refits) that finished, and those that did not, each with its reason."""

    records: list[TrialRecord] = field(default_factory=list)
    failed: list[FailedTrial] = field(default_factory=list)


@dataclass(frozen=True)
class Refits:
    """The refits of a kind's records, by the record's key, and those that failed (where the runner does not keep
    them: a trial's are in ``TrialRunner.failed``)."""

    of: dict[str, TrialRecord] = field(default_factory=dict)
    failed: list[FailedTrial] = field(default_factory=list)


class Kind:
    """One kind of ensemble member (a subclass per kind, one entry of :data:`~zoofit.members.KINDS`): its
    ``name`` (what ``--members`` lists) and one-line ``help``."""

    name: ClassVar[str]
    help: ClassVar[str]

    def candidates(self, inputs: PoolInputs) -> Made:
        """The run's candidates of this kind (those the run holds reused)."""
        raise NotImplementedError

    def refit(self, records: Sequence[TrialRecord], inputs: PoolInputs) -> Refits:
        """Each of ``records`` (candidates of this kind: the selection's members, the seed baseline's trials)
        made again on train + validation; one whose refit failed has none (it stays as made on train alone)."""
        raise NotImplementedError

    def price(self, models: Sequence[ModelCost], costs: CostModel, config: SweepConfig) -> float:
        """The seconds this kind adds to a run whose ranked ``models`` (best first) cost ``costs`` (the sweep's
        trials are priced by the planner itself)."""
        return 0.0

    def label(self, member: Member) -> str:
        """How a member of this kind reads in a table."""
        raise NotImplementedError
