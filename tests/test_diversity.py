"""Tests of harness.diversity: known values of disagreement, error overlap, Jensen-Shannon diversity
and the diversity-plane curves.

Every metric here is also checked against a slow reference, and for each property the registry
claims, in test_metrics.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.diversity import (
    disagreement,
    diversity_bounds,
    diversity_lower_model,
    diversity_upper_model,
    error_jaccard,
    js_diversity,
    normalized_diversity,
    pairwise_disagreement,
)

# Slack for known values: a few ulps of float64 rounding, nothing more.
ROUNDING = 1e-12


def test_disagreement_mixes_labels_and_probabilities():
    labels = np.array([0, 1, 2, 2])
    probs = np.eye(3)[[0, 2, 2, 1]]
    assert disagreement(labels, probs) == pytest.approx(0.5)
    assert pairwise_disagreement(np.stack([labels, [0, 2, 2, 1]])).tolist() == [[0.0, 0.5], [0.5, 0.0]]


def test_normalized_diversity_divides_by_the_samples_own_error_rate():
    labels = np.zeros(4, dtype=np.int64)
    pred = np.array([1, 0, 0, 0])  # 1 error: error rate 1/4
    ref = np.array([0, 1, 1, 0])  # disagrees with pred on 3 of 4
    assert normalized_diversity(pred, ref, labels) == pytest.approx(3.0)
    assert normalized_diversity(ref, pred, labels) == pytest.approx(1.5)  # ref's error rate is 2/4


def test_error_jaccard_known_values():
    labels = np.zeros(4, dtype=np.int64)
    assert error_jaccard(np.array([1, 1, 0, 0]), np.array([0, 1, 1, 0]), labels) == 1 / 3
    assert error_jaccard(np.array([1, 0, 0, 0]), np.array([0, 1, 0, 0]), labels) == pytest.approx(0.0)
    assert error_jaccard(labels, labels, labels) == pytest.approx(1.0)  # no errors at all: equal (empty) error sets



def test_js_diversity_known_values():
    one_hot = np.eye(3)[None, :, :]  # (1, 3, 3)
    assert js_diversity(np.concatenate([one_hot, one_hot])) == 0.0
    opposite = np.stack([np.eye(2), np.eye(2)[::-1]])  # two members, always confident and opposed
    assert js_diversity(opposite) == pytest.approx(math.log(2))
    spread = np.stack([np.eye(4)[[m]] for m in range(4)])  # 4 members, each sure of its own class
    assert js_diversity(spread) == pytest.approx(math.log(4))



@pytest.mark.parametrize("c", [2, 3, 10, 100])
def test_diversity_models_at_the_reference_and_at_chance(c):
    a_ref = np.linspace(1 / c + 0.01, 1.0, 25)
    np.testing.assert_array_equal(diversity_lower_model(a_ref, a_ref, c), 0.0)
    # Both models describe a classifier at chance accuracy 1/C as disagreeing (C-1)/C of the time.
    np.testing.assert_allclose(diversity_lower_model(1 / c, a_ref, c), (c - 1) / c, atol=ROUNDING)
    np.testing.assert_allclose(diversity_upper_model(1 / c, a_ref, c), (c - 1) / c, atol=ROUNDING)
    assert diversity_upper_model(1.0, 1.0, c) == 0.0


@pytest.mark.parametrize("c", [2, 3, 10, 100])
def test_hard_bounds_contain_both_models_where_they_are_valid(c):
    """The upper model is valid for all accuracies, the lower one for 1/C <= a <= a_ref."""
    grid = np.linspace(0.0, 1.0, 101)
    a, a_ref = np.meshgrid(grid, grid)
    low, high = diversity_bounds(a, a_ref)
    d_up = diversity_upper_model(a, a_ref, c)
    assert ((low - ROUNDING <= d_up) & (d_up <= high + ROUNDING)).all()
    valid = (a_ref > 1 / c) & (a >= 1 / c) & (a <= a_ref)
    d_low = diversity_lower_model(a[valid], a_ref[valid], c)
    assert ((low[valid] - ROUNDING <= d_low) & (d_low <= high[valid] + ROUNDING)).all()
    assert (d_low <= d_up[valid] + ROUNDING).all()  # and the lower model stays below the upper
