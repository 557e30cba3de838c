"""Linear heads on frozen features as ensemble members: an L2 logistic regression on a ranked model's cached
features, its C chosen on validation, saved as the backbone and a linear classifier (see
:mod:`zoofit.finetune.head`). It costs seconds where the features are cached, and a pass over the test images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from zoofit.members.base import Kind, Made, PoolInputs, Refits
from zoofit.result import FailedTrial

if TYPE_CHECKING:
    from zoofit.budget import CostModel, ModelCost
    from zoofit.finetune import TrialRecord
    from zoofit.result import Member
    from zoofit.sweep_config import SweepConfig


def heads(config: SweepConfig) -> int:
    """How many of the best-ranked models get a head: ``linear_heads``, else ``top_k``."""
    return config.ensemble.linear_heads or config.search.top_k


class LinearKind(Kind):
    name = "linear"
    help = "a logistic regression on the frozen features of each of the linear_heads best-ranked models"

    def candidates(self, inputs: PoolInputs) -> Made:
        from zoofit.finetune.head import linear_head

        context, made = inputs.runner.context, Made()
        ranked = inputs.ranker.ranking_[: heads(inputs.config)]
        with inputs.progress.task("linear heads", total=len(ranked)) as task:
            for row in ranked:
                head = linear_head(inputs.ranker, row.model, context, inputs.seed)
                (made.failed if isinstance(head, FailedTrial) else made.records).append(head)
                task.advance()
        return made

    def refit(self, records: Sequence[TrialRecord], inputs: PoolInputs) -> Refits:
        from zoofit.finetune.head import linear_head

        refits = Refits()
        for record in records:
            head = linear_head(inputs.ranker, record.model, inputs.runner.context, record.config.seed,
                               strength=record.result.strength)  # fmt: skip
            if isinstance(head, FailedTrial):
                refits.failed.append(head)
            else:
                refits.of[record.key] = head
        return refits

    def price(self, models: Sequence[ModelCost], costs: CostModel, config: SweepConfig) -> float:
        """A pass over the images a trial predicts (the test images' features; the training and validation
        images' are the ranking's) per head; the fit itself takes seconds."""
        return sum(costs.predicted_images * model.predict_seconds_per_image for model in models[: heads(config)])

    def label(self, member: Member) -> str:
        refit = ", refit" * member.settings.refit
        return f"{member.model} (linear head, C={member.strength:g}, frozen{refit})"
