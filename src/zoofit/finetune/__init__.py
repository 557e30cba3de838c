"""Fine-tuning: one trial = (model, hyper-parameters, seed); the sweep runs trials as stored units.

Names are imported on first use: the settings (``zoofit.finetune.config``) need neither torch nor timm, so the CLI
builds its options from them at once."""

from __future__ import annotations

from zoofit.lazy import lazy_exports

_MODULES = {
    "config": ("PRESETS", "SweepConfig", "TrialConfig", "preset"),
    "runner": ("TrialRunner", "resolve_workers"),
    "sweep": ("TrialContext", "TrialRecord"),
    "trial": ("TrainedTrial", "train_trial"),
}
_HOMES = {name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
