"""Greedy model soups as ensemble members: each model's trials of one depth averaged weight by weight (Wortsman et
al., 2022), one forward pass."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from zoofit.members.base import Kind, Made, PoolInputs, Refits
from zoofit.members.trial import refit_fine_tuned

if TYPE_CHECKING:
    from zoofit.finetune import TrialRecord
    from zoofit.result import Member

log = logging.getLogger("zoofit")


class SoupKind(Kind):
    name = "soup"
    help = "each model's trials of one depth averaged greedily into a model soup (with several learning rates or steps)"

    def candidates(self, inputs: PoolInputs) -> Made:
        """The greedy soup of each model's trials of one depth (where it has several), stored in the run like a
        trial and keyed by its candidates, so a rerun reuses it. Trials of other depths are not averaged: their
        frozen layers are the pre-trained ones, their tuned layers are not."""
        from zoofit.finetune.soup import cook_soup

        by_model: dict[tuple[str, int, int], list[TrialRecord]] = {}
        for trial in inputs.trials:
            group = (trial.model, trial.result.preprocessing.input_size, trial.config.freeze_stride)
            by_model.setdefault(group, []).append(trial)
        groups = [sorted(group, key=lambda t: (-t.val.accuracy, t.val.nll)) for group in by_model.values()]
        if all(len(group) < 2 for group in groups):
            log.info("no soups: no model has several trials (give several learning rates or step counts)")
        soups = []
        with inputs.progress.task("soups", total=sum(len(group) > 1 for group in groups)) as task:
            for group in (group for group in groups if len(group) > 1):
                soups.append(cook_soup(group, inputs.runner.context))
                task.advance()
        return Made(soups)

    def refit(self, records: Sequence[TrialRecord], inputs: PoolInputs) -> Refits:
        return refit_fine_tuned(records, inputs)  # the average of its ingredients' refits

    def label(self, member: Member) -> str:
        refit = ", refit" * member.settings.refit
        return f"{member.model} (soup of {member.ingredients} trials, {member.settings.depth()}{refit})"
