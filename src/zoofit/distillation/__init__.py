"""Distillation: a finished run's ensemble distilled into one student network by function matching (the same
augmented view for teacher and student at each step), stored in the run folder like a trial.

Names are imported on first use."""

from __future__ import annotations

from zoofit.lazy import lazy_exports

_MODULES = {
    "student": ("distill", "distil_into", "student_spec", "unlabelled_images"),
    "unit": ("StudentJob", "train_student"),
    "views": ("kl_divergence", "matched_view"),
}
_HOMES = {name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names}
__all__ = sorted(_HOMES)
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
