"""A run planned to a time limit: a cost model in, a plan and what it cut out. Pure: no torch, no clock.

The cost model says what each part of a run costs in seconds (measured by the caller on the first batches, and
scaled by the GFLOPs the ranking knows); :func:`plan` shrinks the sweep until it fits, cutting in a fixed order
(:data:`CUT_ORDER`): the zoo the ranking scores (the most expensive models first), then top-k (to 2, keeping an
ensemble), learning rates (to one), fine-tuning depths (to the cheapest), step counts (to one, then fewer steps, down to :data:`MIN_STEPS`), robustness
images (to none), and last top-k to 1. Work already done costs nothing: a trial the run folder holds, a model
whose features the cache holds. A trial is priced at its depth: one with fewer frozen layers costs more per step. A limit that the smallest plan does not fit is refused in one line. ``zoofit bench`` can split a
suite's budget across its tasks by calling :func:`plan` per task with its share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import product

from zoofit.errors import ParameterError
from zoofit.sweep_config import SweepConfig

#: Fewest training steps a cut leaves a trial.
MIN_STEPS = 50
#: Conditions the robustness evaluation predicts each image under (as it is, and five corruptions).
ROBUSTNESS_CONDITIONS = 6


#: A trial as the plan knows it: ``(model, lr, steps, freeze_stride, refit, seed)``, its seed counted from the run's
#: (0: a trial of the sweep; 1, 2, ...: the best trial's other seeds, its replicas and the seed baseline's).
StoredTrial = tuple[str, float, int, int, bool, int]
#: The seconds a kind of ensemble member adds to a run (``zoofit.members.Kind.price``), given the ranked models
#: the run keeps (best first), the cost model and the run's settings.
Price = Callable[[Sequence["ModelCost"], "CostModel", SweepConfig], float]


@dataclass(frozen=True)
class ModelCost:
    """What one model costs: seconds to rank it (0 where its features are stored), and per image, to train
    (forward and backward, at the sweep's size and batch) and to predict without gradients."""

    model: str
    rank_seconds: float
    train_seconds_per_image: float
    predict_seconds_per_image: float


@dataclass(frozen=True)
class CostModel:
    """What a run costs: its models (in ranking order once ranked, else the zoo's), the images each trial
    predicts (validation + test), the seconds each trial takes besides its images (loading the model), the
    seconds the run takes whatever the plan (what is already spent, writing the outputs), the trials the run
    folder holds (:data:`StoredTrial`), and each fine-tuning depth's training seconds as a
    share of those its models' costs give (a depth not named: 1)."""

    models: tuple[ModelCost, ...]
    predicted_images: int
    trial_overhead: float = 0.0
    fixed_seconds: float = 0.0
    stored: frozenset[StoredTrial] = frozenset()
    depth_shares: Mapping[int, float] = field(default_factory=dict)
    prices: tuple[Price, ...] = ()  # of the pool's kinds of candidate besides the sweep's trials (linear heads)

    def depth_share(self, freeze_stride: int) -> float:
        """The training seconds of a trial at ``freeze_stride`` as a share of its model's measured ones."""
        return self.depth_shares.get(freeze_stride, 1.0)


@dataclass(frozen=True)
class Sweep:
    """What a plan sizes: the run's settings (the cuts change its ``top_k``, ``lrs``, ``freeze_stride``, ``steps``
    and ``shift_images``), and the models the ranking scores (None: the whole zoo; ranked already)."""

    config: SweepConfig
    ranked: tuple[str, ...] | None = None

    def changed(self, **values: object) -> Sweep:
        """This sweep with the given settings of its config replaced."""
        return replace(self, config=self.config.override(**values))


@dataclass(frozen=True)
class Plan:
    """The sweep that fits, its expected seconds, and what was cut to fit, in order (empty: nothing)."""

    sweep: Sweep
    seconds: float
    cuts: tuple[str, ...] = field(default=())

    def describe(self, limit: float) -> str:
        """One line: what was cut to fit ``limit`` seconds, or that nothing was."""
        head = f"time limit {limit:.0f} s: planned {self.seconds:.0f} s"
        return f"{head}; cut {', '.join(self.cuts)}" if self.cuts else f"{head}; nothing cut"


def seconds(sweep: Sweep, costs: CostModel) -> float:
    """The seconds ``sweep`` takes under ``costs``: ranking, trials (stored ones free; each at its depth; refits of
    every trial, as any may be a member; the best trial's other seeds), the pool's other kinds (their ``prices``),
    robustness of every model's trial, and the rest."""
    models = [m for m in costs.models if sweep.ranked is None or m.model in sweep.ranked]
    total = costs.fixed_seconds + sum(m.rank_seconds for m in models)
    search, evaluation, config = sweep.config.search, sweep.config.evaluation, sweep.config
    top = models[: search.top_k]
    for model in top:
        for stride, lr, steps, refit in product(search.freeze_stride, search.lrs, search.steps, _refits(config)):
            if (model.model, lr, steps, stride, refit, 0) not in costs.stored:
                total += trial_seconds(model, steps, config.training.batch_size, costs, costs.depth_share(stride))
    total += _other_seeds(top[0], config, costs) if top else 0.0
    total += sum(price(models, costs, config) for price in costs.prices)
    robustness = evaluation.shift_images * ROBUSTNESS_CONDITIONS * (1 + len(top))  # the members and the best single
    return total + robustness * max((m.predict_seconds_per_image for m in top), default=0.0)


def _refits(config: SweepConfig) -> tuple[bool, ...]:
    return (False, True) if config.ensemble.refit else (False,)


def _other_seeds(model: ModelCost, config: SweepConfig, costs: CostModel) -> float:
    """The best trial's other seeds (:meth:`SweepConfig.other_seeds`), the best taken to be a trial of the top
    ``model``, each priced as its dearest trial of the sweep; a seed the run folder holds of any of its trials
    costs nothing."""
    search = config.search
    trials = list(product(search.freeze_stride, search.lrs, search.steps))
    dearest = max(
        trial_seconds(model, n, config.training.batch_size, costs, costs.depth_share(s)) for s, _, n in trials
    )
    missing = [
        (seed, refit)
        for seed, refit in product(range(1, config.other_seeds() + 1), _refits(config))
        if not any((model.model, lr, steps, stride, refit, seed) in costs.stored for stride, lr, steps in trials)
    ]
    return dearest * len(missing)


def trial_seconds(model: ModelCost, steps: int, batch_size: int, costs: CostModel, depth_share: float = 1.0) -> float:
    """The seconds of one trial (or any unit trained as one, a distilled student) of ``model``: its overhead,
    ``steps`` of ``batch_size`` images at its depth's share, and its predictions of ``costs.predicted_images``."""
    return (
        costs.trial_overhead
        + steps * batch_size * model.train_seconds_per_image * depth_share
        + costs.predicted_images * model.predict_seconds_per_image
    )


Cut = Callable[[Sweep, CostModel, float], Sweep | None]


def _zoo(sweep: Sweep, costs: CostModel, budget: float) -> Sweep | None:
    """Drop the most expensive models from the ranking (keeping top-k of them) until the plan fits."""
    ranked = [m for m in costs.models if sweep.ranked is None or m.model in sweep.ranked]
    top_k = sweep.config.search.top_k
    if not any(m.rank_seconds for m in ranked) or len(ranked) <= top_k:
        return None
    kept = sorted(ranked, key=lambda m: m.rank_seconds)
    while len(kept) > top_k and seconds(replace(sweep, ranked=tuple(m.model for m in kept)), costs) > budget:
        kept.pop()
    names = {m.model for m in kept}
    return replace(sweep, ranked=tuple(m.model for m in costs.models if m.model in names))


def _top_k(floor: int) -> Cut:
    def cut(sweep: Sweep, costs: CostModel, budget: float) -> Sweep | None:
        start = top_k = min(sweep.config.search.top_k, len(costs.models))  # no more than the models there are
        while top_k > floor and seconds(sweep.changed(top_k=top_k), costs) > budget:
            top_k -= 1
        return sweep.changed(top_k=top_k) if top_k != start else None

    return cut


def _lrs(sweep: Sweep, costs: CostModel, budget: float) -> Sweep | None:
    """One learning rate: the middle one of the sweep's (its centre)."""
    lrs = sweep.config.search.lrs
    if len(lrs) < 2:
        return None
    return sweep.changed(lrs=(sweep.config.search.centre_lr,))


def _depths(sweep: Sweep, costs: CostModel, budget: float) -> Sweep | None:
    """One fine-tuning depth: the cheapest to train (the most layers kept frozen, on a tie)."""
    strides = sweep.config.search.freeze_stride
    if len(strides) < 2:
        return None
    return sweep.changed(freeze_stride=(min(strides, key=lambda s: (costs.depth_share(s), -s)),))


def _steps(sweep: Sweep, costs: CostModel, budget: float) -> Sweep | None:
    """The fewest of the step counts alone, then fewer steps (not under :data:`MIN_STEPS`) until the plan fits."""
    steps = min(sweep.config.search.steps)
    fewer = sweep.changed(steps=(steps,))
    if seconds(fewer, costs) > budget and steps > MIN_STEPS:
        over, at_floor = seconds(fewer, costs), seconds(fewer.changed(steps=(MIN_STEPS,)), costs)
        share = (over - budget) / max(over - at_floor, 1e-9)  # steps' cost is linear in their number
        steps = max(MIN_STEPS, int(steps - share * (steps - MIN_STEPS)))
        fewer = fewer.changed(steps=(steps,))
    return fewer if fewer != sweep else None


def _shift_images(sweep: Sweep, costs: CostModel, budget: float) -> Sweep | None:
    images = sweep.config.evaluation.shift_images
    if not images:
        return None
    over, none = seconds(sweep, costs), seconds(sweep.changed(shift_images=0), costs)
    kept = int(images * max(0.0, min(1.0, (budget - none) / max(over - none, 1e-9))))
    return sweep.changed(shift_images=kept if kept >= 50 else 0)


#: The cuts, in the order they are made, each by name; each shrinks one part only as far as the plan needs.
CUT_ORDER: tuple[tuple[str, Cut], ...] = (
    ("zoo", _zoo),
    ("top-k", _top_k(2)),
    ("learning rates", _lrs),
    ("depths", _depths),
    ("steps", _steps),
    ("robustness images", _shift_images),
    ("top-k", _top_k(1)),
)


def plan(sweep: Sweep, costs: CostModel, limit: float) -> Plan:
    """The largest plan within ``limit`` seconds: ``sweep`` as it is where it fits, else cut in
    :data:`CUT_ORDER`; a :class:`ParameterError` naming ``time_limit`` where even the smallest plan does not fit."""
    cuts: list[str] = []
    for name, cut in CUT_ORDER:
        if seconds(sweep, costs) <= limit:
            break
        smaller = cut(sweep, costs, limit)
        if smaller is not None:
            cuts.append(_said(name, sweep, smaller))
            sweep = smaller
    needed = seconds(sweep, costs)
    check_fits(needed, limit, f"the smallest plan ({_size(sweep)})")
    return Plan(sweep, needed, tuple(cuts))


def check_fits(needed: float, limit: float, what: str, instead: str = "") -> None:
    """A :class:`ParameterError` naming ``time_limit`` where ``what`` needs more than the ``limit`` seconds left
    (nothing to refuse where it needs nothing: all stored); ``instead`` says what else the user may give."""
    if needed > limit and needed > 0:
        raise ParameterError.of(
            "time_limit",
            (f"leaves {limit:.0f} s for the work still to do" if limit > 0 else "was spent before the work began")
            + f", and {what} needs about {needed:.0f} s; give a limit "
            f"{max(1, round(needed - limit + 0.5)) * 1.1:.0f} s longer at least{instead}",
        )


def _said(name: str, before: Sweep, after: Sweep) -> str:
    """A cut as words: the part and its values before and after."""
    if name == "zoo":
        old = len(before.ranked) if before.ranked is not None else "all"
        return f"zoo {old} -> {len(after.ranked or ())} models ranked"
    values = {
        "top-k": "top_k", "learning rates": "lrs", "depths": "freeze_stride", "steps": "steps",
        "robustness images": "shift_images",
    }  # fmt: skip
    setting = values[name]
    return f"{name} {_text(before.config.value(setting))} -> {_text(after.config.value(setting))}"


def _text(value: object) -> str:
    return ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else str(value)


def _size(sweep: Sweep) -> str:
    search = sweep.config.search
    return (
        f"{search.top_k} model(s), {len(search.lrs)} learning rate(s), {len(search.freeze_stride)} depth(s), "
        f"{_text(search.steps)} steps, "
        f"{sweep.config.evaluation.shift_images} robustness images"
    )
