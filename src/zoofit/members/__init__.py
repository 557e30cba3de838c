"""The kinds of ensemble member, a registry: each a :class:`Kind` in a module of its own (what its candidates are,
how they are refit and priced, how a member reads), all behind one protocol, so that one selection chooses among
all of them on validation. ``--members`` names the kinds in a run's pool. Torch-free at import.

>>> KINDS.names()
['trial', 'soup', 'linear']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoofit.members.base import Kind, Made, PoolInputs, Refits
from zoofit.members.linear import LinearKind
from zoofit.members.soup import SoupKind
from zoofit.members.trial import TrialKind
from zoofit.registry import Registry
from zoofit.result import Member

if TYPE_CHECKING:
    from zoofit.finetune import TrialRecord

__all__ = ["KINDS", "Kind", "Made", "PoolInputs", "Refits", "member_label", "pool_candidates", "refit_pool"]

#: The kinds by name, in the order a pool lists them.
KINDS: Registry[Kind] = Registry("members")
for _kind in (TrialKind(), SoupKind(), LinearKind()):
    KINDS.add(_kind.name, _kind)


def member_label(member: Member) -> str:
    """How ``member`` reads in a table, as its kind words it."""
    return KINDS[member.kind].label(member)


def pool_candidates(inputs: PoolInputs) -> Made:
    """The candidates of each kind the run's ``members`` setting names, in that order, and those that failed."""
    made = Made()
    for name in inputs.config.ensemble.members:
        kind = KINDS[name].candidates(inputs)
        made.records.extend(kind.records)
        made.failed.extend(kind.failed)
    return made


def refit_pool(records: list[TrialRecord], inputs: PoolInputs) -> Refits:
    """The refits of ``records`` (candidates of any kind, each once), each kind refitting its own."""
    by_kind: dict[str, dict[str, TrialRecord]] = {}
    for record in records:
        by_kind.setdefault(record.kind, {})[record.key] = record
    refits = Refits()
    for name, group in by_kind.items():
        kind = KINDS[name].refit(list(group.values()), inputs)
        refits.of.update(kind.of)
        refits.failed.extend(kind.failed)
    return refits
