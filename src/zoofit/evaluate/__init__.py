"""Evaluation: metrics of predicted probabilities."""

from zoofit.evaluate.metrics import (
    accuracy,
    expected_calibration_error,
    image_nll,
    label_nll,
    nll,
    per_class_accuracy,
    reliability,
    summarize,
)

__all__ = [
    "accuracy",
    "expected_calibration_error",
    "image_nll",
    "label_nll",
    "nll",
    "per_class_accuracy",
    "reliability",
    "summarize",
]
