"""The fine-tuned trials of the sweep as ensemble members (the paper's pool)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from zoofit.members.base import Kind, Made, PoolInputs, Refits

if TYPE_CHECKING:
    from zoofit.finetune import TrialRecord
    from zoofit.result import Member


def refit_fine_tuned(records: Sequence[TrialRecord], inputs: PoolInputs) -> Refits:
    """Fine-tuned ``records`` (trials, soups of the sweep's trials) trained again on train + validation: the
    trials in one batch on the runner, which keeps those that fail (see :func:`zoofit.finetune.refit.refit`)."""
    from zoofit.finetune.refit import refit

    return Refits(refit(records, inputs.trials, inputs.specs, inputs.runner))


class TrialKind(Kind):
    name = "trial"
    help = "the sweep's fine-tuned trials (model x depth x learning rate x steps, one seed each)"

    def candidates(self, inputs: PoolInputs) -> Made:
        return Made(list(inputs.trials))  # trained by the sweep, which records those that failed

    def refit(self, records: Sequence[TrialRecord], inputs: PoolInputs) -> Refits:
        return refit_fine_tuned(records, inputs)

    def label(self, member: Member) -> str:
        settings = member.settings
        refit = ", refit" * settings.refit
        return f"{member.model} (lr={settings.lr:g}, {settings.depth()}, seed={settings.seed}{refit})"
