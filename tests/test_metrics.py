"""Metrics against values computed by hand."""

import math

import numpy as np
import pytest

from zoofit.evaluate import accuracy, expected_calibration_error, nll, per_class_accuracy

PROBS = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])
LABELS = np.array([0, 1, 1, 0])


def test_accuracy_and_nll() -> None:
    assert accuracy(PROBS, LABELS) == 0.75
    assert nll(PROBS, LABELS) == pytest.approx(-(math.log(0.9) + math.log(0.4) + math.log(0.7) + math.log(0.8)) / 4)


def test_ece_one_image_per_bin() -> None:
    # confidences 0.9 (right), 0.6 (wrong), 0.7 (right), 0.8 (right), each alone in its bin
    assert expected_calibration_error(PROBS, LABELS) == pytest.approx((0.1 + 0.6 + 0.3 + 0.2) / 4)


def test_ece_shared_bin_averages_before_the_difference() -> None:
    probs = np.array([[0.90, 0.10], [0.92, 0.08], [0.5, 0.5]])
    labels = np.array([0, 1, 0])
    # bin (13/15, 14/15]: accuracy 1/2, confidence 0.91 -> 0.41 x 2/3; bin (7/15, 8/15]: |1 - 0.5| x 1/3
    assert expected_calibration_error(probs, labels) == pytest.approx(0.41 * 2 / 3 + 0.5 / 3)


def test_perfectly_calibrated_is_zero_and_nll_is_clipped() -> None:
    assert expected_calibration_error(np.eye(3), np.arange(3)) == 0.0
    assert nll(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(-math.log(1e-12))


def test_per_class_accuracy() -> None:
    assert per_class_accuracy(PROBS, LABELS, 3) == [1.0, 0.5, None]
