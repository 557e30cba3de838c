"""Fine-tuning: one trial = (model, hyper-parameters, seed); the sweep runs trials as stored units.

Names are imported on first use: the settings (``zoofit.finetune.config``) need neither torch nor timm, so the CLI
builds its options from them at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoofit.lazy import lazy_exports

_HOMES = {
    "PRESETS": "zoofit.finetune.config",
    "SweepConfig": "zoofit.finetune.config",
    "TrialConfig": "zoofit.finetune.config",
    "preset": "zoofit.finetune.config",
    "TrialRunner": "zoofit.finetune.runner",
    "resolve_workers": "zoofit.finetune.runner",
    "TrialContext": "zoofit.finetune.sweep",
    "TrialRecord": "zoofit.finetune.sweep",
    "TrainedTrial": "zoofit.finetune.trial",
    "train_trial": "zoofit.finetune.trial",
}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

if TYPE_CHECKING:  # the same names, for type checkers and editors
    from zoofit.finetune.config import PRESETS, SweepConfig, TrialConfig, preset  # noqa: F401
    from zoofit.finetune.runner import TrialRunner, resolve_workers  # noqa: F401
    from zoofit.finetune.sweep import TrialContext, TrialRecord  # noqa: F401
    from zoofit.finetune.trial import TrainedTrial, train_trial  # noqa: F401
