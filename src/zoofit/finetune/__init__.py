"""Fine-tuning: one trial = (model, hyper-parameters, seed); the sweep runs trials as stored units."""

from zoofit.finetune.config import PRESETS, SweepConfig, TrialConfig, preset
from zoofit.finetune.sweep import TrialRecord, run_trial
from zoofit.finetune.trial import TrainedTrial, train_trial

__all__ = ["PRESETS", "SweepConfig", "TrainedTrial", "TrialConfig", "TrialRecord", "preset", "run_trial", "train_trial"]
