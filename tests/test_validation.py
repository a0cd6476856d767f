"""Tests of harness.validation: integer arguments, and each kind of bad tensor input, refused
with a message that names what was expected.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.cka import linear_cka
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
from harness.scoring import brier_score_loss, expected_calibration_error, nll
from harness.validation import check_int
from harness.weightspace import cosine_similarity, pairwise_cosine


@pytest.mark.parametrize("value, low", [(0, 0), (3, 1), (np.int64(2), 2), (np.uint8(7), 0)])
def test_check_int_returns_a_python_int(value, low):
    result = check_int("n", value, low)
    assert result == value and type(result) is int


@pytest.mark.parametrize("value, match", [
    (0, r"n=0 is invalid: expected an int >= 1"),
    (True, r"n=True is invalid: expected an int >= 1"),
    (2.0, r"n=2.0 is invalid"),
    ("3", r"n='3' is invalid"),
    (None, r"n=None is invalid"),
    (np.int64(-1), r"n=\S*-1\S* is invalid: expected an int >= 1"),  # repr np.int64(-1) in numpy 2
])
def test_check_int_refuses_anything_but_an_int_at_or_above_low(value, match):
    with pytest.raises(ValueError, match=match):
        check_int("n", value, 1)


# ----------------------------------------------------------------------------------------------
# Tensor inputs, through the metrics that take them


P2 = np.array([[0.7, 0.3], [0.4, 0.6]])
Y2 = np.array([0, 1])

BAD_INPUTS = [
    # wrong number of dimensions
    (brier_score_loss, (np.array([0.7, 0.3]), Y2), r"probs must have shape \(N, C\); got shape \(2,\)"),
    (js_diversity, (P2,), r"probs must have shape \(M, N, C\)"),
    (disagreement, (P2[None], Y2), r"a must have shape \(N,\) labels or \(N, C\) probabilities"),
    (pairwise_disagreement, (Y2,), r"preds must have shape \(K, N\) labels or \(K, N, C\)"),
    (pairwise_cosine, (np.ones(3),), r"thetas must have shape \(K, D\)"),
    (linear_cka, (np.ones(4), np.ones((4, 2))), r"x must have shape \(N, P\)"),
    (nll, (P2, Y2[:, None]), r"labels must have shape \(N,\)"),
    # mismatched lengths or shapes
    (brier_score_loss, (P2, np.array([0, 1, 1])), r"same number of examples; got 2 and 3"),
    (disagreement, (Y2, np.array([0, 1, 1])), r"same number of examples N"),
    (disagreement, (P2, np.full((2, 3), 1 / 3)), r"same number of classes"),
    (error_jaccard, (Y2, Y2, np.array([0])), r"same number of examples N"),
    (cosine_similarity, (np.ones(3), np.ones(4)), r"same shape \(D,\); got \(3,\) and \(4,\)"),
    (linear_cka, (np.eye(4), np.eye(5)), r"same examples; got N=4 and N=5"),
    # not probabilities
    (brier_score_loss, (np.array([[2.0, 1.0], [0.5, 0.1]]), Y2), r"rows sum to 1 \(tolerance 0.001\); row 0 sums to 3"),
    (nll, (np.array([[1.2, -0.2], [0.5, 0.5]]), Y2), r"negative entry"),
    (expected_calibration_error, (np.array([[np.nan, 0.5], [0.5, 0.5]]), Y2), r"1 NaN or infinite"),
    (pairwise_disagreement, (np.full((2, 2, 2), 0.6),), r"rows sum to 1"),
    (js_diversity, (np.full((2, 2, 2), np.inf),), r"NaN or infinite"),
    # labels
    (brier_score_loss, (P2, np.array([0, 2])), r"labels must be class labels in \[0, 2\); got values from 0 to 2"),
    (nll, (P2, np.array([-1, 0])), r"class labels in \[0, 2\)"),
    (nll, (P2, np.array([0.0, 1.0])), r"integer class labels; got dtype torch.float64"),
    (disagreement, (np.array([0, -1]), Y2), r"a must be class labels in \[0, C\)"),
    (disagreement, (np.array([0, 5]), P2), r"a must be class labels in \[0, 2\)"),
    (normalized_diversity, (Y2, Y2, Y2), r"acc = 1"),
    # empty inputs
    (disagreement, (np.array([], dtype=np.int64), np.array([], dtype=np.int64)), r"a is empty"),
    (brier_score_loss, (np.zeros((0, 2)), np.array([], dtype=np.int64)), r"probs is empty"),
    (pairwise_cosine, (np.zeros((0, 3)),), r"thetas is empty"),
    # vectors and features
    (pairwise_cosine, (np.array([[1.0, 0.0], [0.0, 0.0]]),), r"undefined for a zero vector: rows \[1\]"),
    (cosine_similarity, (np.array([1.0, np.inf]), np.ones(2)), r"NaN or infinite"),
    (linear_cka, (np.ones((4, 2)), np.eye(4)), r"x has no variance"),
    # keyword arguments and types
    (expected_calibration_error, (P2, Y2, 0), r"n_bins=0 is invalid: expected an int >= 1"),
    (cosine_similarity, (np.array(["a", "b"]), np.ones(2)), r"a must hold real numbers"),
    # the diversity-plane curves
    (diversity_upper_model, (1.2, 0.5, 10), r"a must be accuracies in \[0, 1\]; got values from 1.2"),
    (diversity_bounds, (0.5, np.nan), r"a_ref must be accuracies in \[0, 1\]"),
    (diversity_upper_model, (0.5, 0.5, 1), r"num_classes=1 is invalid: expected an int >= 2"),
    (diversity_lower_model, (0.5, 0.5, 2.0), r"num_classes=2.0 is invalid"),
    (diversity_lower_model, (0.1, 0.1, 10), r"a_ref must beat chance \(> 1/C = 0.1\)"),
]


@pytest.mark.parametrize("func, args, match", BAD_INPUTS,
                         ids=[f"{func.__name__}-{i}" for i, (func, _, _) in enumerate(BAD_INPUTS)])
def test_bad_input_is_refused_with_a_clear_message(func, args, match):
    with pytest.raises(ValueError, match=match):
        func(*args)



def test_non_array_input_is_a_type_error():
    with pytest.raises(TypeError, match=r"probs must be a torch.Tensor or numpy.ndarray; got list"):
        brier_score_loss([[1.0, 0.0]], Y2[:1])
