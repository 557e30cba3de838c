"""The method's settings after the ranking, grouped by what they mean, each declared once with
:func:`~zoofit.settings.setting`: what is searched (:class:`SearchSettings`), how a trial trains
(:class:`TrainingSettings`), how the ensemble is selected (:class:`EnsembleSettings`), what is evaluated
(:class:`EvaluationSettings`), the student distilled from the ensemble (:class:`DistillSettings`) and the run's
budget (:class:`BudgetSettings`). A :class:`SweepConfig` bundles one of
each; the presets are named bundles. One trial's hyper-parameters are a :class:`TrialConfig`.

Torch-free and below every stage: the results (:mod:`zoofit.result`) and the CLI import it before torch loads.

>>> config = preset("quick").override(top_k=5, selection="bagged")
>>> config.search.top_k, config.ensemble.selection, config.name
(5, 'bagged', 'quick')
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from zoofit.checks import is_number, is_whole
from zoofit.errors import ParameterError
from zoofit.registry import Registry
from zoofit.settings import at_least, check_settings, each_at_least, parse_size, positive, setting

#: Images with fewer pixels than this are "small": BiT-HyperRule (Kolesnikov et al., 2019) fine-tunes them at
#: 128 px whatever the model's own resolution.
SMALL_IMAGE_AREA = 96 * 96
_PIXELS = (at_least(16, none=True)[0], "must be at least 16 pixels, or own (None in Python) for each model's own")


@dataclass(frozen=True)
class TrialConfig:
    """Hyper-parameters of one fine-tuning run (the model and data are given separately)."""

    lr: float
    steps: int
    batch_size: int
    image_size: int | None  # None: the model's own resolution
    seed: int = 0
    warmup_fraction: float = 0.1
    weight_decay: float = 0.0
    flip: bool = True  # random horizontal flips
    shift: float = 0.125  # random translation, as a fraction of the image size
    freeze_stride: int = 0  # layers up to this output stride keep their pre-trained weights (0: none)
    refit: bool = False  # trained on train + validation (after the selection chose it on validation)

    def label(self) -> str:
        return f"lr={self.lr:g},steps={self.steps},{self.depth()},seed={self.seed}" + ",refit" * self.refit

    def depth(self) -> str:
        """How deep it fine-tunes, in the option's words: ``freeze=8`` (layers up to stride 8 kept), ``freeze=0``;
        ``frozen`` where it trains no step (a linear head on frozen features)."""
        return f"freeze={self.freeze_stride}" if self.steps else "frozen"


#: Seconds per unit of a duration.
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """Seconds of a duration such as ``90s``, ``20m``, ``1.5h`` or ``300`` (seconds); ``ValueError`` for anything
    else, a duration that is not positive included."""
    value = text.strip().lower()
    scale = DURATION_UNITS.get(value[-1:], None)
    number = value[:-1] if scale else value
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"'{text}' is not a positive duration such as 90s, 20m or 2h")
    return seconds


@dataclass(frozen=True)
class SearchSettings:
    """What is searched: the ``top_k`` best-ranked models x ``freeze_stride`` x ``lrs`` x ``steps`` (one seed
    each), each at one resolution. ``image_size`` ``None`` is each model's own resolution,
    except for data whose images are all smaller than 96 x 96 where ``small_image_size`` is set: those are
    fine-tuned (and ranked) at that size. Each of ``freeze_stride`` is a fine-tuning depth: the stem and the stages up
    to that output stride stay pre-trained (see :mod:`zoofit.finetune.freeze`; 0 fine-tunes every layer)."""

    top_k: int = setting(3, "Fine-tune this many of the best-ranked models.", *at_least(1))
    lrs: tuple[float, ...] = setting(
        (0.003, 0.01, 0.03), "Learning rates of the sweep, comma-separated.", *positive(whole=False)
    )
    steps: tuple[int, ...] = setting((500,), "Training steps of the sweep, comma-separated.", *positive(whole=True))
    image_size: int | None = setting(
        None, "Input resolution of every model, or own (each model's own).", *_PIXELS, parse=parse_size
    )
    small_image_size: int | None = setting(
        None, "Resolution of data under 96 x 96 px where image_size is own (own: each model's own).", *_PIXELS,
        parse=parse_size,
    )  # fmt: skip
    freeze_stride: tuple[int, ...] = setting(
        (0,),
        "Fine-tuning depths of the sweep, comma-separated: each keeps pre-trained the layers at output stride <= N "
        "(the stem and first stages; 0: none).",
        *each_at_least(0),
    )

    @property
    def centre_lr(self) -> float:
        """The middle of the learning rates (the lower of the two middle ones): the one a single trial takes."""
        return sorted(self.lrs)[(len(self.lrs) - 1) // 2]

    def resolution(self, largest_area: int) -> int | None:
        """The resolution of every model for data whose largest image has ``largest_area`` pixels (``None``: each
        model's own): ``image_size``, else ``small_image_size`` where every image is smaller than 96 x 96."""
        if self.image_size is None and largest_area < SMALL_IMAGE_AREA:
            return self.small_image_size
        return self.image_size


@dataclass(frozen=True)
class TrainingSettings:
    """How a trial trains and predicts."""

    batch_size: int = setting(64, "Training batch size.", *at_least(1))
    flip: bool = setting(True, "Random horizontal flips in training.")
    eval_batch_size: int | None = setting(
        None, "Images per pass without gradients (None: 16 on CPU, 256 on GPU).", *at_least(1, none=True), option=False
    )


@dataclass(frozen=True)
class EnsembleSettings:
    """How the ensemble is selected from its pool of candidates (and the best trial's seed replicas among its
    trials), and what it may cost. The selection's name is checked against :data:`~zoofit.ensemble.SELECTIONS`,
    and the kinds of ``members`` against :data:`~zoofit.members.KINDS`, where the run starts (:meth:`ZooFit.check`)."""

    selection: str = setting("greedy", "How the ensemble is chosen on the validation set.")
    ensemble_steps: int = setting(20, "Greedy selection steps.", *at_least(1))
    bags: int = setting(20, "Random halves of the validation set that bagged selection averages.", *at_least(1))
    safeguard: bool = setting(
        True, "Deliver the single best candidate instead where the selection, rerun on resamples of the validation "
        "set and judged on the images each left out, does not beat it.",
    )  # fmt: skip
    max_members: int | None = setting(
        None, "At most this many distinct trials in the ensemble.", *at_least(1, none=True)
    )
    max_gflops: float | None = setting(
        None, "At most this many GFLOPs per image for the ensemble.", lambda v: v is None or v > 0, "must be positive"
    )
    members: tuple[str, ...] = setting(
        ("trial", "linear"),
        "Kinds of candidate the ensemble is chosen from, comma-separated.",
        lambda v: bool(v) and all(isinstance(x, str) and x for x in v),
        "must name at least one kind",
    )
    linear_heads: int | None = setting(
        None, "Linear heads (kind linear) on the frozen features of this many of the best-ranked models (None: top_k).",
        *at_least(1, none=True),
    )  # fmt: skip
    seed_replicas: int = setting(
        0, "Train the best trial again with N other seeds, as candidates the ensemble may choose (0: off).",
        *at_least(0),
    )  # fmt: skip
    refit: bool = setting(
        False, "Train each ensemble member again on train + validation (its own settings and seed) for the "
        "ensemble that is tested, predicted and exported.",
    )  # fmt: skip


@dataclass(frozen=True)
class EvaluationSettings:
    """What is evaluated besides the test split: the seed baseline and robustness to corruptions (see
    :mod:`zoofit.evaluate.shift`)."""

    seed_baseline: int = setting(
        0, "Also ensemble N seeds of the best trial (0: off).", lambda v: is_whole(v) and v >= 0 and v != 1,
        "needs at least 2 seeds (or 0)",
    )  # fmt: skip
    shift_images: int = setting(
        2000, "Test images corrupted in 5 ways to measure robustness (quick: 500, paper: 2000; 0: off).", *at_least(0)
    )
    shift_severity: int = setting(
        3, "Severity of the corruptions, 1-5 as in ImageNet-C.", lambda v: is_whole(v) and 1 <= v <= 5,
        "must be 1 to 5 (ImageNet-C's severities)",
    )  # fmt: skip


@dataclass(frozen=True)
class DistillSettings:
    """The one network that may ship instead of the ensemble: the ensemble distilled into a student at the end of
    the run (see :mod:`zoofit.distillation`). On in ``paper``: on the demo a student of 1,000 steps kept 90% of the
    ensemble's NLL gain over the best single trial at one member's GFLOPs (``benchmarks/results/distill-cpu.json``).
    Off in ``quick``: on a 2-core CPU that student took 657 s, more than the demo's whole run."""

    distill: bool = setting(
        False, "Distil the ensemble into one student network at the end of the run (zoofit distill does it later)."
    )
    distill_steps: int = setting(1000, "Training steps of the student.", *at_least(1))
    student: str | None = setting(
        None, "The student's model, an id of the zoo (default: the top-ranked model).", lambda v: v is None or
        (isinstance(v, str) and bool(v.strip())), "must name a model of the zoo",
    )  # fmt: skip
    unlabelled: str | None = setting(
        None, "Unlabelled images the student also learns from (any --data form; labels ignored).",
        lambda v: v is None or (isinstance(v, str) and bool(v.strip())), "must be a folder or any --data form",
    )  # fmt: skip


@dataclass(frozen=True)
class BudgetSettings:
    """The run's budget (see :mod:`zoofit.budget`)."""

    time_limit: float | None = setting(
        None, "Plan the run to end within this time (90s, 20m, 2h): cut the sweep where it would not fit.",
        lambda v: v is None or (is_number(v) and v > 0), "must be a positive number of seconds", parse=parse_duration,
    )  # fmt: skip


#: The groups of a :class:`SweepConfig`, by its field: each the CLI's panel of options of the same title.
GROUPS: dict[str, tuple[type, str]] = {
    "search": (SearchSettings, "What is searched"),
    "training": (TrainingSettings, "How a trial trains"),
    "ensemble": (EnsembleSettings, "How the ensemble is selected"),
    "evaluation": (EvaluationSettings, "What is evaluated"),
    "distill": (DistillSettings, "The distilled student"),
    "budget": (BudgetSettings, "The run's budget"),
}


@dataclass(frozen=True)
class SweepConfig:
    """The method's settings after the ranking, one group of each meaning (:data:`GROUPS`), and the ``name`` of the
    preset they come from. :meth:`override` changes any setting by its name alone."""

    name: str = "custom"
    search: SearchSettings = field(default_factory=SearchSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    ensemble: EnsembleSettings = field(default_factory=EnsembleSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    distill: DistillSettings = field(default_factory=DistillSettings)
    budget: BudgetSettings = field(default_factory=BudgetSettings)

    def trials(self, seed: int = 0, image_size: int | None = None) -> list[TrialConfig]:
        """One trial per depth, step count and learning rate, each seeded with ``seed``, at ``image_size``
        (``None``: the model's own)."""
        search, training = self.search, self.training
        return [
            TrialConfig(lr, steps, training.batch_size, image_size, seed, flip=training.flip, freeze_stride=stride)
            for stride in search.freeze_stride
            for steps in search.steps
            for lr in search.lrs
        ]

    def other_seeds(self) -> int:
        """How many other seeds of the best trial the run trains: its seed replicas and the seed baseline's
        (whose N seeds are the best trial and N - 1 others), one set of trials serving both."""
        return max(self.ensemble.seed_replicas, self.evaluation.seed_baseline - 1, 0)

    def validate(self) -> SweepConfig:
        """This config, where every setting passes its check; else a :class:`ParameterError` naming the first that
        does not."""
        for group in GROUPS:
            check_settings(getattr(self, group))
        return self

    def override(self, **values: Any) -> SweepConfig:
        """This config with the given settings replaced, each routed to its group by name (``None`` is a value:
        ``image_size=None`` is each model's own), validated."""
        routed: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            routed.setdefault(group_of(name), {})[name] = value
        changed = {group: replace(getattr(self, group), **changes) for group, changes in routed.items()}
        return replace(self, **changed).validate()

    def value(self, name: str) -> Any:
        """The value of the setting ``name``, whichever group holds it."""
        return getattr(getattr(self, group_of(name)), name)


def group_of(name: str) -> str:
    """The group (a field of :class:`SweepConfig`) that holds the setting ``name``; a :class:`ParameterError`
    listing the settings where none does."""
    for group, (kind, _) in GROUPS.items():
        if name in {f.name for f in fields(kind)}:
            return group
    raise ParameterError.of(name, f"is not a sweep setting; the settings are {', '.join(setting_names())}")


def setting_names() -> list[str]:
    """The names of the settings of every group, in order."""
    return [f.name for kind, _ in GROUPS.values() for f in fields(kind)]


#: Named presets. ``paper`` follows the published protocol (top 5 models, 500 steps at batch 64, lr in {0.003, 0.01,
#: 0.03}, the whole network fine-tuned) and wants a GPU; it uses each model's own resolution, except for data
#: smaller than 96 x 96, which it fine-tunes at 128 px, as BiT-HyperRule does: upsampling 28 px Fashion-MNIST
#: further adds no detail, and costs the GPU about 3x the time (224 -> 128 px). ``quick`` is sized for the
#: Fashion-MNIST demo on a 2-core CPU: 112 px, 300 steps at batch 32, lr 0.01, the top 3 models (diversity of
#: pre-training buys more than a second learning rate), the stem and the stages up to stride 8 kept as pre-trained,
#: robustness on 500 test images; the alternatives measured: ``benchmarks/results/notes-quick-preset-cpu.md``.
#: ``paper`` refits its members on train + validation (the VTAB-1k practice of BiT and VPT): on the demo it raised
#: test accuracy by 1.2 points and lowered NLL by 0.04; ``quick`` does not, as it doubles its fine-tuning time
#: (``--refit`` adds it). Bagged selection changed neither by more than 0.001, so both keep greedy selection
#: (``benchmarks/results/budget_refit-variants-cpu.json``).
#: Both pool fine-tuned trials with linear heads on frozen features (docs/members.md): ``paper`` a head for each of
#: its top-k models, ``quick`` for the top-ranked one alone, whose test features the logistic-regression baseline
#: extracts anyway. On the demo, heads for the top 3 gave what the top one's gave (test accuracy / NLL 0.8684 /
#: 0.3894 against 0.8685 / 0.3887; the trials alone 0.8647 / 0.4168) for 0.21 more GFLOPs per image and one more
#: pass over the 10,000 test images per head, about 69 s each on a loaded 2-core Xeon
#: (``benchmarks/results/pool_kinds-demo-cpu.json``, docs/members.md). ``paper`` takes every kind that helped on the
#: offline suite (``benchmarks/results/pool_kinds-offline-cpu.json``: mean test accuracy / NLL over 7 tasks, the
#: trials alone 0.692 / 0.777, with a head each 0.740 / 0.669, with soups, heads and a seed replica 0.745 / 0.657):
#: soups, and two seed replicas of the best trial (the replica was what helped on the counting and distance scenes);
#: ``quick`` keeps neither, as a replica costs the demo a fourth trial.
#: Both keep the selection's safeguard (``benchmarks/results/selection_safeguard-cpu.json``).
PRESETS: Registry[SweepConfig] = Registry("preset")
PRESETS.add(
    "quick",
    SweepConfig("quick").override(
        top_k=3,
        lrs=(0.01,),
        steps=(300,),
        batch_size=32,
        image_size=112,
        freeze_stride=(8,),
        shift_images=500,
        linear_heads=1,
    ),
    help="sized for a CPU, the default there (the Fashion-MNIST demo on 2 cores)",
)
PRESETS.add(
    "paper",
    SweepConfig("paper").override(
        top_k=5, small_image_size=128, refit=True, members=("trial", "soup", "linear"), seed_replicas=2, distill=True
    ),
    help="the published protocol (Mustafa et al., 2020), for a GPU, the default there",
)


def preset(name: str) -> SweepConfig:
    """The named preset."""
    return PRESETS.get(name)


def default_preset(gpu: bool) -> str:
    """The preset a device gets where none is named: ``paper`` on a GPU, ``quick`` on a CPU."""
    return "paper" if gpu else "quick"
