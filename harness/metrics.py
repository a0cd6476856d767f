"""The metric registry: every metric of the harness, its direction, properties and range.

The metrics themselves live in small modules named by what they measure:

- :mod:`harness.weightspace`: flat weight vectors of models and checkpoints, and their cosines;
- :mod:`harness.cka`: linear CKA between two representations of the same examples;
- :mod:`harness.diversity`: disagreement of predictions, error overlap, the Jensen-Shannon
  diversity of an ensemble, and the reference curves of the diversity-accuracy plane;
- :mod:`harness.scoring`: Brier score, NLL and expected calibration error against true labels;

and all check their inputs with :mod:`harness.validation`. This module lists them in
:data:`METRICS` and records what each guarantees, so that the unit tests check every property of
every metric generically (tests/test_metrics.py).

Direction rule for names (as in scikit-learn): ``*_similarity`` is higher for more alike inputs,
``*_distance`` lower; ``*_loss`` and ``*_error`` are lower for better predictions (a ``*_score``
would be higher, hence ``brier_score_loss``); ``disagreement`` is a fraction of examples
(0 = identical predictions). Every metric records its direction in :data:`METRIC_PROPERTIES`,
exactly one of :data:`METRIC_DIRECTIONS`; for names without a suffix (``nll``, ``linear_cka``) that entry
is the only statement of it.

=========================== ================================================ ============= ==============
metric                      definition                                       direction     source
=========================== ================================================ ============= ==============
cosine_similarity           a.b / (|a| |b|)                                  similarity    [Fort] Fig. 2a
pairwise_cosine             (K, K) matrix of cosine_similarity               similarity    [Fort] Fig. 3
disagreement                mean_n 1[argmax a_n != argmax b_n]               dissimilarity [Fort] Fig. 2b
pairwise_disagreement       (K, K) matrix of disagreement                    dissimilarity [Fort] Fig. 3
normalized_diversity        disagreement(pred, ref) / (1 - acc(pred))        dissimilarity [Fort] Fig. 5
diversity_lower_model       (a_r - a) / (a_r + (a_r - 1)/(C - 1))            dissimilarity [Fort] code
diversity_upper_model       a_r(1-a) + a(1-a_r) + (1-a_r)(1-a)(C-2)/(C-1)    dissimilarity [Fort] code
diversity_bounds            (|a - a_r|, min(1, 2 - a - a_r))                 dissimilarity docs/claims.md
brier_score_loss            mean_n sum_c (p_nc - 1[c = y_n])^2               loss          [Fort] code
nll                         mean_n -log max(p_n,y_n, NLL_EPS)                loss          [Fort] Sec. 5
expected_calibration_error  sum_b |B_b|/N |acc_b - conf_b|, 15 bins (0, 1]   loss          Guo et al. 2017
js_diversity                mean_n H(mean_m p_mn) - mean_m H(p_mn), nats     dissimilarity [Fort] code
linear_cka                  |Y'X|_F^2 / (|X'X|_F |Y'Y|_F), centred columns   similarity    Kornblith 2019
error_jaccard               |E_a & E_b| / |E_a | E_b|, E = misclassified     similarity    [WB]
=========================== ================================================ ============= ==============

The diversity-plane curves are not measurements: the lower and upper curves are reference models
of a classifier's disagreement with a reference, and the bounds hard limits on it. Their direction
is that of the disagreement they give.

Conventions
-----------
- Inputs may be torch tensors or numpy arrays; computations run on the input's device.
  Scalars are returned as Python floats, matrices as float64 torch tensors. The diversity-plane
  curves (:func:`~harness.diversity.diversity_lower_model`,
  :func:`~harness.diversity.diversity_upper_model`, :func:`~harness.diversity.diversity_bounds`)
  take accuracies as floats or numpy arrays and return floats or float64 numpy arrays, for plotting.
- Predictions are either integer labels (N,) or probabilities (N, C); probabilities become labels
  by argmax, ties going to the lowest class index (torch and numpy agree on this).
- Probabilities must be finite, non-negative and sum to 1 within
  :data:`~harness.validation.PROB_TOLERANCE` per row: softmax outputs in float32 pass, logits do not.
- Every metric's mathematical properties (direction, symmetry, range, invariances, the value of
  identical inputs) are listed in :data:`METRIC_PROPERTIES`, in the vocabulary
  :data:`PROPERTY_VOCABULARY`, with ranges in :data:`METRIC_BOUNDS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from harness import cka, diversity, scoring, weightspace

__all__ = ["METRICS", "METRIC_BOUNDS", "METRIC_DIRECTIONS", "METRIC_PROPERTIES", "PROPERTY_VOCABULARY"]

# Every metric, by the name the tables below use (its function's own name).
METRICS: dict[str, Callable] = {
    metric.__name__: metric for metric in (
        weightspace.cosine_similarity,
        weightspace.pairwise_cosine,
        diversity.disagreement,
        diversity.pairwise_disagreement,
        diversity.normalized_diversity,
        diversity.diversity_lower_model,
        diversity.diversity_upper_model,
        diversity.diversity_bounds,
        scoring.brier_score_loss,
        scoring.nll,
        scoring.expected_calibration_error,
        diversity.js_diversity,
        cka.linear_cka,
        diversity.error_jaccard,
    )
}

# The properties that say which way a metric's values point; every metric has exactly one.
METRIC_DIRECTIONS = ("similarity", "dissimilarity", "loss")

# ----------------------------------------------------------------------------------------------
# The property registry: what each metric guarantees, in a fixed vocabulary, so that the unit
# tests can check every property of every metric generically (tests/test_metrics.py).

PROPERTY_VOCABULARY: dict[str, str] = {
    "symmetric": "the compared inputs can swap: f(a, b, ...) = f(b, a, ...); for a (K, K) pairwise "
                 "matrix M = M'; for an ensemble (M, N, C), any order of the members",
    "bounded": "both ends of METRIC_BOUNDS[name] are finite",
    "nonnegative": "the lower end of METRIC_BOUNDS[name] is 0",
    "similarity": "direction: higher means more alike; the upper end of METRIC_BOUNDS is the most alike",
    "dissimilarity": "direction: higher means less alike (a disagreement or diversity); the lower end of "
                     "METRIC_BOUNDS is the most alike",
    "loss": "direction: lower means better predictions of the true labels; the lower end of "
            "METRIC_BOUNDS is the best",
    "identity_extreme": "identical inputs (or identical members, or identical rows of a stack) give "
                        "the extreme value that 'similarity'/'dissimilarity' names, and independent "
                        "random inputs do not",
    "example_order_invariant": "permuting the examples (the N axis) of every input the same way "
                               "leaves the value unchanged",
    "class_permutation_invariant": "renaming the classes (permuting the C axis and mapping labels) "
                                   "the same way in every input leaves the value unchanged (up to "
                                   "argmax ties)",
    "scale_invariant": "multiplying any vector or feature input by a positive scalar leaves the "
                       "value unchanged",
    "orthogonal_invariant": "multiplying each feature matrix on the right by its own orthogonal "
                            "matrix leaves the value unchanged",
    "translation_invariant": "adding a constant vector to every example's features leaves the "
                             "value unchanged",
    "perfect_is_zero": "one-hot probabilities on the true labels give 0",
    "pairwise": "returns the (K, K) matrix whose (i, j) entry is the two-input metric of rows i and j",
    "elementwise": "accepts arrays and acts element by element, as a loop over scalars would",
}


def _props(names: str) -> frozenset[str]:
    return frozenset(names.split())


METRIC_PROPERTIES: dict[str, frozenset[str]] = {
    "cosine_similarity": _props("symmetric bounded similarity identity_extreme scale_invariant"),
    "pairwise_cosine": _props("pairwise symmetric bounded similarity identity_extreme scale_invariant"),
    "disagreement": _props("symmetric bounded nonnegative dissimilarity identity_extreme "
                           "example_order_invariant class_permutation_invariant"),
    "pairwise_disagreement": _props("pairwise symmetric bounded nonnegative dissimilarity identity_extreme "
                                    "example_order_invariant class_permutation_invariant"),
    "normalized_diversity": _props("nonnegative dissimilarity identity_extreme "
                                   "example_order_invariant class_permutation_invariant"),
    "error_jaccard": _props("symmetric bounded nonnegative similarity identity_extreme "
                            "example_order_invariant class_permutation_invariant"),
    "diversity_lower_model": _props("bounded nonnegative dissimilarity elementwise"),
    "diversity_upper_model": _props("symmetric bounded nonnegative dissimilarity elementwise"),
    "diversity_bounds": _props("symmetric bounded nonnegative dissimilarity elementwise"),
    "brier_score_loss": _props("bounded nonnegative loss perfect_is_zero "
                               "example_order_invariant class_permutation_invariant"),
    "nll": _props("nonnegative loss perfect_is_zero example_order_invariant class_permutation_invariant"),
    "expected_calibration_error": _props("bounded nonnegative loss perfect_is_zero "
                                         "example_order_invariant class_permutation_invariant"),
    "js_diversity": _props("symmetric nonnegative dissimilarity identity_extreme "
                           "example_order_invariant class_permutation_invariant"),
    "linear_cka": _props("symmetric bounded nonnegative similarity identity_extreme example_order_invariant "
                         "scale_invariant orthogonal_invariant translation_invariant"),
}

# The range of each metric's values with its default arguments (math.inf where unbounded). The
# lower model's range holds on its domain 1/C <= a <= a_ref; debiased CKA lies in [-1, 1].
METRIC_BOUNDS: dict[str, tuple[float, float]] = {
    "cosine_similarity": (-1.0, 1.0),
    "pairwise_cosine": (-1.0, 1.0),
    "disagreement": (0.0, 1.0),
    "pairwise_disagreement": (0.0, 1.0),
    "normalized_diversity": (0.0, math.inf),
    "error_jaccard": (0.0, 1.0),
    "diversity_lower_model": (0.0, 1.0),
    "diversity_upper_model": (0.0, 1.0),
    "diversity_bounds": (0.0, 1.0),
    "brier_score_loss": (0.0, 2.0),
    "nll": (0.0, math.inf),
    "expected_calibration_error": (0.0, 1.0),
    "js_diversity": (0.0, math.inf),
    "linear_cka": (0.0, 1.0),
}
