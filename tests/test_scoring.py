"""Tests of harness.scoring: known values of the Brier score, NLL and expected calibration error.

Each is also checked against a slow reference, and for each property the registry claims, in
test_metrics.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.scoring import NLL_EPS, brier_score, brier_score_loss, expected_calibration_error, nll

# Slack for known values: a few ulps of float64 rounding, nothing more.
ROUNDING = 1e-12


@pytest.mark.parametrize("c", [2, 3, 10, 100])
def test_brier_and_nll_of_uniform_and_perfect_predictions(c):
    labels = np.arange(c) % c
    uniform = np.full((c, c), 1 / c)
    assert brier_score_loss(uniform, labels) == pytest.approx(1 - 1 / c, abs=ROUNDING)
    assert nll(uniform, labels) == pytest.approx(math.log(c), abs=ROUNDING)
    assert brier_score_loss(np.eye(c), labels) == 0.0
    assert brier_score_loss(np.eye(c)[(labels + 1) % c], labels) == 2.0  # confidently wrong


def test_nll_clamps_a_zero_probability():
    assert nll(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(-math.log(NLL_EPS))


def test_ece_of_calibrated_and_miscalibrated_toys():
    # Two confidence levels, each right exactly as often as it claims: perfectly calibrated.
    probs = np.array([[0.6, 0.4]] * 5 + [[0.9, 0.1]] * 10)
    labels = np.array([0, 0, 0, 1, 1] + [0] * 9 + [1])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0, abs=ROUNDING)
    # 90% confident and always wrong: the gap is 0.9.
    assert expected_calibration_error(np.array([[0.9, 0.1]] * 4), np.ones(4, dtype=np.int64)) == pytest.approx(0.9)


def test_ece_bins_are_right_closed():
    # With 5 bins, confidence 0.6 sits in (0.4, 0.6] and 0.7 in (0.6, 0.8]: separate bins give
    # (0.6 + 0.3) / 2; left-closed bins would pool them to |0.5 - 0.65| = 0.15.
    probs, labels = np.array([[0.6, 0.4], [0.7, 0.3]]), np.array([1, 0])
    assert expected_calibration_error(probs, labels, n_bins=5) == pytest.approx(0.45)
    # A confidence of exactly 1 lands in the last bin (and is perfectly calibrated there).
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([0]), n_bins=5) == 0.0



def test_brier_score_is_an_alias_of_brier_score_loss():
    assert brier_score is brier_score_loss
