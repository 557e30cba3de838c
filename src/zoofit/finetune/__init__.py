"""Fine-tuning: one trial = (model, hyper-parameters, seed); the sweep runs trials as stored units."""

from zoofit.finetune.config import PRESETS, SweepConfig, TrialConfig, preset
from zoofit.finetune.runner import TrialRunner, resolve_workers
from zoofit.finetune.sweep import TrialContext, TrialRecord
from zoofit.finetune.trial import TrainedTrial, train_trial

__all__ = [
    "PRESETS",
    "SweepConfig",
    "TrainedTrial",
    "TrialConfig",
    "TrialContext",
    "TrialRecord",
    "TrialRunner",
    "preset",
    "resolve_workers",
    "train_trial",
]
