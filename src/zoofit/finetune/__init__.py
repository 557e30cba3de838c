"""Fine-tuning: one trial = (model, hyper-parameters, seed); the sweep runs trials as stored units.

Names are imported on first use. The settings live below every stage, in :mod:`zoofit.sweep_config`."""

from __future__ import annotations

from zoofit.lazy import lazy_exports

_MODULES = {
    "runner": ("TrialRunner", "resolve_workers"),
    "sweep": ("TrialContext", "TrialRecord"),
    "trial": ("TrainedTrial", "train_trial"),
}
_HOMES = {name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
