"""Evaluation: metrics of predicted probabilities."""

from zoofit.evaluate.metrics import (
    accuracy,
    expected_calibration_error,
    nll,
    per_class_accuracy,
    reliability,
    summarize,
)

__all__ = ["accuracy", "expected_calibration_error", "nll", "per_class_accuracy", "reliability", "summarize"]
