"""Fine-tuning settings: one trial's hyper-parameters, the sweep, and the named presets."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from zoofit.checks import is_number, is_whole
from zoofit.registry import Registry
from zoofit.settings import at_least as _at_least
from zoofit.settings import changed, check_settings, setting
from zoofit.settings import positive as _positive

#: Images with fewer pixels than this are "small": BiT-HyperRule (Kolesnikov et al., 2019) fine-tunes them at
#: 128 px whatever the model's own resolution.
SMALL_IMAGE_AREA = 96 * 96


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
        return f"lr={self.lr:g},steps={self.steps},seed={self.seed}" + ",refit" * self.refit


def _selection(value: Any) -> bool:
    """Whether ``value`` names an ensemble selection; else the registry's one-line error, listing them."""
    from zoofit.ensemble.greedy import SELECTIONS

    return SELECTIONS.get(value) is not None


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
class SweepConfig:
    """Which trials to run: the top ``top_k`` ranked models x ``lrs`` x ``steps`` (one seed each), then the
    greedy ensemble under the budget, and optionally a ``seed_baseline`` of the best trial's seeds; then the
    robustness evaluation. Each field says what it means (``help``) and which values it takes.

    ``freeze_stride`` keeps the stem and the stages up to that output stride as pre-trained (weights and
    normalisation statistics; see :mod:`zoofit.finetune.freeze`). ``image_size`` ``None`` means each model's own
    resolution, except for data whose images are all smaller than 96 x 96 pixels when ``small_image_size`` is set:
    those are fine-tuned (and ranked) at that size. Robustness: see :mod:`zoofit.evaluate.shift`.
    """

    name: str = setting("custom", "The preset this sweep comes from.", option=False)
    top_k: int = setting(3, "Fine-tune this many of the best-ranked models.", *_at_least(1))
    lrs: tuple[float, ...] = setting(
        (0.003, 0.01, 0.03), "Learning rates of the sweep, comma-separated.", *_positive(whole=False)
    )
    steps: tuple[int, ...] = setting((500,), "Training steps of the sweep, comma-separated.", *_positive(whole=True))
    batch_size: int = setting(64, "Training batch size.", *_at_least(1))
    image_size: int | None = setting(None, "Input resolution (0: each model's own).", *_at_least(16, none=True))
    small_image_size: int | None = setting(
        None, "Resolution of data under 96 x 96 px without an image_size.", *_at_least(16, none=True), option=False
    )
    eval_batch_size: int | None = setting(
        None, "Images per pass without gradients (None: 16 on CPU, 256 on GPU).", *_at_least(1, none=True), option=False
    )
    flip: bool = setting(True, "Random horizontal flips in training.")
    freeze_stride: int = setting(
        0, "Keep pre-trained the layers at output stride <= N (the stem and first stages; 0: none).", *_at_least(0)
    )
    soup: bool = setting(
        False,
        "Also average each model's trials greedily into a model soup (one forward pass) for the ensemble to choose.",
    )
    ensemble_steps: int = setting(20, "Greedy selection steps.", *_at_least(1))
    selection: str = setting("greedy", "How the ensemble is chosen on the validation set.", _selection)
    bags: int = setting(20, "Random halves of the validation set that bagged selection averages.", *_at_least(1))
    refit: bool = setting(
        False, "Train each ensemble member again on train + validation (its own settings and seed) for the "
        "ensemble that is tested, predicted and exported.",
    )  # fmt: skip
    time_limit: float | None = setting(
        None, "Plan the run to end within this time (90s, 20m, 2h): cut the sweep where it would not fit.",
        lambda v: v is None or (is_number(v) and v > 0), "must be a positive number of seconds", parse=parse_duration,
    )  # fmt: skip
    max_members: int | None = setting(
        None, "At most this many distinct trials in the ensemble.", *_at_least(1, none=True)
    )
    max_gflops: float | None = setting(
        None, "At most this many GFLOPs per image for the ensemble.", lambda v: v is None or v > 0, "must be positive"
    )
    seed_baseline: int = setting(
        0, "Also ensemble N seeds of the best trial (0: off).", lambda v: is_whole(v) and v >= 0 and v != 1,
        "needs at least 2 seeds (or 0)",
    )  # fmt: skip
    shift_images: int = setting(
        2000, "Test images corrupted in 5 ways to measure robustness (quick: 500, paper: 2000; 0: off).", *_at_least(0)
    )
    shift_severity: int = setting(
        3, "Severity of the corruptions, 1-5 as in ImageNet-C.", lambda v: is_whole(v) and 1 <= v <= 5,
        "must be 1 to 5 (ImageNet-C's severities)",
    )  # fmt: skip

    def trials(self, seed: int = 0) -> list[TrialConfig]:
        """One trial per step count and learning rate, each seeded with ``seed``."""
        return [
            TrialConfig(
                lr, steps, self.batch_size, self.image_size, seed, flip=self.flip, freeze_stride=self.freeze_stride
            )
            for steps in self.steps
            for lr in self.lrs
        ]

    def validate(self) -> SweepConfig:
        """This config, where every field passes its check; else a :class:`ParameterError` naming the first that
        does not."""
        check_settings(self)
        return self

    def for_images(self, largest_area: int) -> SweepConfig:
        """This config for data whose largest image has ``largest_area`` pixels: ``small_image_size`` becomes
        the resolution where no ``image_size`` is set and every image is smaller than 96 x 96."""
        if self.image_size is None and self.small_image_size is not None and largest_area < SMALL_IMAGE_AREA:
            return replace(self, image_size=self.small_image_size)
        return self

    def override(self, **values: Any) -> SweepConfig:
        """This config with the given values replaced (``None`` values are ignored; ``image_size=0`` asks for each
        model's own resolution, whatever the data), validated."""
        config = changed(self, "sweep", **values)
        if values.get("image_size") == 0:
            config = replace(config, image_size=None, small_image_size=None)
        return config.validate()


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
PRESETS: Registry[SweepConfig] = Registry("preset")
PRESETS.add(
    "quick",
    SweepConfig("quick", top_k=3, lrs=(0.01,), steps=(300,), batch_size=32, image_size=112, freeze_stride=8,
                shift_images=500),
    help="sized for a CPU, the default there (the Fashion-MNIST demo on 2 cores)",
)  # fmt: skip
PRESETS.add(
    "paper",
    SweepConfig("paper", top_k=5, small_image_size=128, refit=True),
    help="the published protocol (Mustafa et al., 2020), for a GPU, the default there",
)


def preset(name: str) -> SweepConfig:
    """The named preset."""
    return PRESETS.get(name)


def default_preset(gpu: bool) -> str:
    """The preset a device gets where none is named: ``paper`` on a GPU, ``quick`` on a CPU."""
    return "paper" if gpu else "quick"
