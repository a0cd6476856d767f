"""Tests of harness.metrics: every registered metric against a reference, and every property the
registry claims for it.

Three layers:

1. Every metric against a slow float64 reference written with plain Python loops (or, for the
   diversity-plane curves, derived independently from the model each curve describes), on
   random inputs from hypothesis (bounded floats, small shapes, argmax ties and zeros included).
2. Registry tests: every public metric is registered in ``METRICS`` and classified in
   ``METRIC_PROPERTIES`` with properties from ``PROPERTY_VOCABULARY``, one direction among them,
   and has bounds, test inputs, a reference and a generic check.
3. Generic property tests driven by the registry: one test per property, run on every metric
   that claims it. Inputs are built per argument *role* (``SIGNATURES``), so each transform
   (permute examples, rename classes, scale, swap) knows which axis of which argument to touch.

Known values and the validation of each module's inputs are tested beside the module:
test_weightspace.py, test_cka.py, test_diversity.py, test_scoring.py, test_validation.py.
"""

from __future__ import annotations

import inspect
import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness import cka, diversity, scoring, weightspace
from harness.cka import linear_cka
from harness.diversity import (
    disagreement,
    diversity_bounds,
    diversity_upper_model,
    js_diversity,
    pairwise_disagreement,
)
from harness.metrics import METRIC_BOUNDS, METRIC_DIRECTIONS, METRIC_PROPERTIES, METRICS, PROPERTY_VOCABULARY
from harness.scoring import ECE_BINS, NLL_EPS, brier_score_loss, expected_calibration_error, nll
from harness.weightspace import cosine_similarity, pairwise_cosine

# The modules whose public functions are metrics, except those in NOT_METRICS.
METRIC_MODULES = (weightspace, cka, diversity, scoring)
# Public functions of the metric modules that select inputs rather than measure anything.
NOT_METRICS = {"weight_vector", "run_weight_vectors", "parameter_names"}
# Float64 results of the fast and reference paths differ by summation order only.
RTOL, ATOL = 1e-9, 1e-12
# Slack for range and extreme-value checks: a few ulps of float64 rounding, nothing more.
ROUNDING = 1e-12
# Independent random inputs of the sizes in `independent_inputs` land far from the identity value:
# |cos| ~ 1/sqrt(50), disagreement ~ 0.8, error Jaccard ~ 0.7, CKA ~ 0.02, JS ~ 0.25 nats.
INDEPENDENT_MARGIN = 0.05
# Generic property tests run on ~14 metrics each; fewer examples keep the file within its budget.
PROPERTY_EXAMPLES = 25


def _to_numpy(value) -> np.ndarray:
    """A metric's result (float, tensor, array, or tuple of them) as one flat float64 array."""
    if isinstance(value, tuple):
        return np.concatenate([_to_numpy(v) for v in value])
    if isinstance(value, torch.Tensor):
        value = value.numpy()
    return np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()


def assert_same(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(_to_numpy(actual), _to_numpy(expected), rtol=rtol, atol=atol)


# ==============================================================================================
# 1. Slow references: plain loops over examples, classes and pairs, in float64.


def ref_argmax(row) -> int:
    best = 0
    for c in range(1, len(row)):
        if row[c] > row[best]:  # strict: ties keep the lowest index
            best = c
    return best


def ref_labels(pred) -> list[int]:
    pred = np.asarray(pred)
    return [int(v) for v in pred] if pred.ndim == 1 else [ref_argmax(row) for row in pred]


def ref_cosine(a, b) -> float:
    a, b = [float(v) for v in a], [float(v) for v in b]
    dot = math.fsum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b)))


def ref_disagreement(a, b) -> float:
    la, lb = ref_labels(a), ref_labels(b)
    return sum(x != y for x, y in zip(la, lb)) / len(la)


def ref_pairwise(scalar):
    def matrix(stack):
        k = len(stack)
        return np.array([[scalar(stack[i], stack[j]) for j in range(k)] for i in range(k)])
    return matrix


def ref_normalized_diversity(pred, ref, labels) -> float:
    lp = ref_labels(pred)
    acc = sum(p == y for p, y in zip(lp, labels)) / len(lp)
    return ref_disagreement(pred, ref) / (1 - acc)


def ref_error_jaccard(a, b, labels) -> float:
    la, lb = ref_labels(a), ref_labels(b)
    err_a = {i for i, y in enumerate(labels) if la[i] != y}
    err_b = {i for i, y in enumerate(labels) if lb[i] != y}
    return 1.0 if not err_a | err_b else len(err_a & err_b) / len(err_a | err_b)


def ref_brier(probs, labels) -> float:
    total = 0.0
    for row, y in zip(probs, labels):
        for c, p in enumerate(row):
            total += (p - (1.0 if c == y else 0.0)) ** 2
    return total / len(labels)


def ref_nll(probs, labels) -> float:
    return sum(-math.log(max(row[y], NLL_EPS)) for row, y in zip(probs, labels)) / len(labels)


def ref_ece(probs, labels, n_bins=ECE_BINS) -> float:
    conf = [max(row) for row in probs]
    correct = [ref_argmax(row) == y for row, y in zip(probs, labels)]
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        # Confidences a rounding error above 1 count in the last bin.
        members = [i for i, c in enumerate(conf) if lo < c <= hi or (b == n_bins - 1 and c > hi)]
        if members:
            acc = sum(correct[i] for i in members) / len(members)
            mean_conf = sum(conf[i] for i in members) / len(members)
            total += len(members) / len(labels) * abs(acc - mean_conf)
    return total


def ref_entropy(row) -> float:
    return -sum(p * math.log(p) for p in row if p > 0)


def ref_js(probs) -> float:
    m, n, c = probs.shape
    total = 0.0
    for i in range(n):
        mean = [sum(probs[j][i][k] for j in range(m)) / m for k in range(c)]
        total += ref_entropy(mean) - sum(ref_entropy(probs[j][i]) for j in range(m)) / m
    return total / n


def ref_hsic(k, g, debiased=False) -> float:
    """HSIC of two Gram matrices as the papers write it: tr(KHLH)/(n-1)^2 (Kornblith et al. 2019,
    eq. 3), or the unbiased estimator of Song et al. (2012) on K, L with zeroed diagonals."""
    n = len(k)
    ones = np.ones(n)
    if not debiased:
        h = np.eye(n) - np.outer(ones, ones) / n
        return np.trace(k @ h @ g @ h) / (n - 1) ** 2
    k, g = k - np.diag(np.diag(k)), g - np.diag(np.diag(g))
    return (np.trace(k @ g) + (ones @ k @ ones) * (ones @ g @ ones) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * (ones @ k @ g @ ones)) / (n * (n - 3))


def ref_cka(x, y, debiased=False) -> float:
    # Raw (uncentred) features: the biased form centres the Gram matrices, and the unbiased
    # estimator is invariant to centring, so the fast path's own centring is checked too.
    k, g = x @ x.T, y @ y.T
    return ref_hsic(k, g, debiased) / math.sqrt(ref_hsic(k, k, debiased) * ref_hsic(g, g, debiased))


def ref_lower_model(a, a_ref, c) -> float:
    # Perturbed reference: replace the reference's prediction by a uniform random label with
    # probability q. Accuracy (1 - q) a_ref + q / C = a gives q; the label differs w.p. (C-1)/C.
    q = (a_ref - a) / (a_ref - 1 / c)
    return q * (c - 1) / c


def ref_upper_model(a, a_ref, c) -> float:
    # Independent errors: with the true class 0, each classifier predicts 0 with its accuracy and
    # each wrong class uniformly otherwise; they differ unless they predict the same class.
    p = [a] + [(1 - a) / (c - 1)] * (c - 1)
    q = [a_ref] + [(1 - a_ref) / (c - 1)] * (c - 1)
    return 1 - sum(x * y for x, y in zip(p, q))


def ref_bounds(a, a_ref, steps=1000) -> tuple[float, float]:
    # Scan every coupling: x = P(both right) in [max(0, a + a_ref - 1), min(a, a_ref)]. Exactly one
    # right always differs; both wrong may differ or not (C >= 3), so d lies in
    # [(a - x) + (a_ref - x), 1 - x].
    lo_x, hi_x = max(0.0, a + a_ref - 1), min(a, a_ref)
    xs = [lo_x + (hi_x - lo_x) * i / steps for i in range(steps + 1)]
    return min(a + a_ref - 2 * x for x in xs), max(1 - x for x in xs)


REFERENCES = {
    "cosine_similarity": ref_cosine,
    "pairwise_cosine": ref_pairwise(ref_cosine),
    "disagreement": ref_disagreement,
    "pairwise_disagreement": ref_pairwise(ref_disagreement),
    "normalized_diversity": ref_normalized_diversity,
    "error_jaccard": ref_error_jaccard,
    "diversity_lower_model": ref_lower_model,
    "diversity_upper_model": ref_upper_model,
    "diversity_bounds": ref_bounds,
    "brier_score_loss": ref_brier,
    "nll": ref_nll,
    "expected_calibration_error": ref_ece,
    "js_diversity": ref_js,
    "linear_cka": ref_cka,
}
PAIRWISE_OF = {"pairwise_cosine": "cosine_similarity", "pairwise_disagreement": "disagreement"}


# ==============================================================================================
# Inputs by role. One draw fixes the shared sizes (examples n, classes c, vector length d, stack
# size k); each argument is then drawn for its role.

SIGNATURES = {
    "cosine_similarity": ("vector", "vector"),
    "pairwise_cosine": ("vectors",),
    "disagreement": ("pred", "pred"),
    "pairwise_disagreement": ("preds",),
    "normalized_diversity": ("pred", "pred", "labels"),
    "error_jaccard": ("pred", "pred", "labels"),
    "diversity_lower_model": ("acc", "acc", "classes"),
    "diversity_upper_model": ("acc", "acc", "classes"),
    "diversity_bounds": ("acc", "acc"),
    "brier_score_loss": ("probs", "labels"),
    "nll": ("probs", "labels"),
    "expected_calibration_error": ("probs", "labels"),
    "js_diversity": ("members",),
    "linear_cka": ("features", "features"),
}
EXAMPLE_AXIS = {"pred": 0, "labels": 0, "probs": 0, "features": 0, "preds": 1, "members": 1}
CLASS_ROLES = {"pred", "labels", "probs", "preds", "members"}
STACK_ROLES = {"vectors", "preds", "members"}  # one argument holding K compared inputs

# Bounded floats away from underflow (squares of 1e-300 vanish; the references would divide 0 by 0)
# and including exact zeros.
FLOATS = st.one_of(st.just(0.0), st.floats(1e-3, 10.0), st.floats(-10.0, -1e-3))


def _normalise(weights: np.ndarray) -> np.ndarray:
    weights = weights.astype(np.float64)
    weights[weights.sum(-1) == 0] = 1.0  # an all-zero row becomes uniform
    return weights / weights.sum(-1, keepdims=True)


def _nonzero_rows(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[..., 0][~x.any(-1)] = 1.0
    return x


def probs_strategy(shape, ties: bool):
    if ties:  # floats in [0, 1]: zeros, repeated values and argmax ties all occur
        return hnp.arrays(np.float64, shape, elements=st.floats(0.0, 1.0)).map(_normalise)
    # Integer weights w * C + j + 1 for class j: no two classes of a row tie, so renaming classes
    # cannot change an argmax (the property tests need that; ties are the references' business).
    tie_break = np.arange(shape[-1]) + 1
    return hnp.arrays(np.int64, shape, elements=st.integers(0, 1000)).map(
        lambda w: _normalise(w * shape[-1] + tie_break))


def role_strategy(role: str, dims: dict, ties: bool):
    n, c, d, k = dims["n"], dims["c"], dims["d"], dims["k"]

    def labels(shape):
        return hnp.arrays(np.int64, shape, elements=st.integers(0, c - 1))

    return {
        "vector": lambda: hnp.arrays(np.float64, d, elements=FLOATS).map(_nonzero_rows),
        "vectors": lambda: hnp.arrays(np.float64, (k, d), elements=FLOATS).map(_nonzero_rows),
        "labels": lambda: labels(n),
        "probs": lambda: probs_strategy((n, c), ties),
        "pred": lambda: st.one_of(labels(n), probs_strategy((n, c), ties)),
        "preds": lambda: st.one_of(labels((k, n)), probs_strategy((k, n, c), ties)),
        "members": lambda: probs_strategy((k, n, c), ties),
        "features": lambda: st.integers(1, 3).flatmap(
            lambda width: hnp.arrays(np.float64, (n, width), elements=FLOATS)),
        "acc": lambda: st.floats(0.0, 1.0),
        "classes": lambda: st.just(c),
    }[role]()


def _well_conditioned(x: np.ndarray) -> bool:
    """Columns spread enough that centring loses < 1e-3 of the values' precision."""
    return np.linalg.norm(x - x.mean(0)) > 1e-3 * np.linalg.norm(x)


def _fix_inputs(name: str, args: tuple, dims: dict) -> tuple:
    """Keep each metric's inputs inside its documented domain."""
    if name == "normalized_diversity":  # pred must make at least one error
        pred, ref, labels = args
        labels = labels.copy()
        labels[0] = (ref_labels(pred)[0] + 1) % dims["c"]
        return pred, ref, labels
    if name == "diversity_lower_model":  # 1/C < a_ref and 1/C <= a <= a_ref
        frac, a_ref, c = args
        a_ref = 1 / c + (1 - 1 / c) * max(a_ref, 0.01)
        return 1 / c + frac * (a_ref - 1 / c), a_ref, c
    if name == "linear_cka":
        assume(all(_well_conditioned(x) for x in args))
    return args


@st.composite
def metric_inputs(draw, name: str, ties: bool = False, **fixed):
    dims = {"n": draw(st.integers(2, 10)), "c": draw(st.integers(2, 4)), "d": draw(st.integers(1, 6)),
            "k": draw(st.integers(1, 4))} | fixed
    args = tuple(draw(role_strategy(role, dims, ties)) for role in SIGNATURES[name])
    return _fix_inputs(name, args, dims), dims


def call(name: str, *args):
    return METRICS[name](*args)


def having(prop: str) -> list[str]:
    return sorted(name for name, props in METRIC_PROPERTIES.items() if prop in props)


# ==============================================================================================
# 1. Fast == reference


@pytest.mark.parametrize("name", sorted(METRIC_PROPERTIES))
@settings(max_examples=PROPERTY_EXAMPLES)
@given(data=st.data())
def test_matches_reference(name, data):
    args, _ = data.draw(metric_inputs(name, ties=True))
    assert_same(call(name, *args), REFERENCES[name](*args))


@settings(max_examples=PROPERTY_EXAMPLES)
@given(inputs=metric_inputs("expected_calibration_error", ties=True), n_bins=st.integers(1, 20))
def test_ece_matches_reference_for_any_bin_count(inputs, n_bins):
    (probs, labels), _ = inputs
    assert_same(expected_calibration_error(probs, labels, n_bins), ref_ece(probs, labels, n_bins))


@settings(max_examples=PROPERTY_EXAMPLES)
@given(data=st.data(), n=st.integers(4, 10))
def test_debiased_cka_matches_the_gram_matrix_estimator(data, n):
    (x, y), _ = data.draw(metric_inputs("linear_cka", ties=True, n=n))
    # Skip near-degenerate draws, where the unbiased self-HSIC is a cancellation of large terms.
    for z in (x, y):
        k = z @ z.T
        assume(ref_hsic(k, k, debiased=True) > 1e-6 * np.trace(k) ** 2 / n**2)
    assert_same(linear_cka(x, y, debiased=True), ref_cka(x, y, debiased=True), rtol=1e-7, atol=1e-9)


@settings(max_examples=PROPERTY_EXAMPLES)
@given(inputs=metric_inputs("js_diversity", ties=True))
def test_js_diversity_is_at_most_log_of_members_or_classes(inputs):
    (probs,), _ = inputs
    m, _, c = probs.shape
    assert js_diversity(probs) <= math.log(min(m, c)) + ROUNDING


def test_cka_accepts_more_features_than_examples():
    """The N x N Gram path (P * Q > N^2) agrees with the reference too."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 20)), rng.standard_normal((5, 30))
    assert_same(linear_cka(x, y), ref_cka(x, y))
    assert_same(linear_cka(x, y, debiased=True), ref_cka(x, y, debiased=True))


def test_diversity_bounds_are_tight_over_every_labelling():
    """Enumerate all predictions of two classifiers on 3 examples of 3 classes (true class 0 for
    all, which loses nothing: renaming classes per example changes neither accuracy nor d)."""
    n, c = 3, 3
    seen: dict[tuple[float, float], list[float]] = {}
    for a, b in itertools.product(itertools.product(range(c), repeat=n), repeat=2):
        acc_a, acc_b = a.count(0) / n, b.count(0) / n
        seen.setdefault((acc_a, acc_b), []).append(sum(x != y for x, y in zip(a, b)) / n)
    for (acc_a, acc_b), ds in seen.items():
        low, high = diversity_bounds(acc_a, acc_b)
        assert (min(ds), max(ds)) == pytest.approx((low, high)), (acc_a, acc_b)


# ==============================================================================================
# 2. The registry


@pytest.mark.parametrize("module", METRIC_MODULES, ids=lambda module: module.__name__)
def test_all_lists_every_public_function(module):
    public = {name for name, obj in vars(module).items()
              if inspect.isfunction(obj) and obj.__module__ == module.__name__ and not name.startswith("_")}
    assert public - set(module.__all__) == set(), f"public functions missing from {module.__name__}.__all__"
    assert [name for name in module.__all__ if not hasattr(module, name)] == []


def test_every_metric_is_classified():
    # By function, not name: the brier_score_loss alias is the registered brier_score_loss.
    listed = {getattr(module, name) for module in METRIC_MODULES for name in module.__all__
              if callable(getattr(module, name)) and name not in NOT_METRICS}
    assert listed - set(METRICS.values()) == set(), "register new metrics in METRICS"
    assert set(METRICS.values()) - listed == set(), "METRICS names functions not in a metric module's __all__"
    assert set(METRICS) == set(METRIC_PROPERTIES), "classify new metrics in METRIC_PROPERTIES"


def test_properties_come_from_the_vocabulary():
    unknown = {name: sorted(props - set(PROPERTY_VOCABULARY)) for name, props in METRIC_PROPERTIES.items()}
    assert {name: props for name, props in unknown.items() if props} == {}
    assert set(METRIC_DIRECTIONS) <= set(PROPERTY_VOCABULARY)


@pytest.mark.parametrize("name", sorted(METRIC_PROPERTIES))
def test_every_metric_has_one_direction(name):
    assert len(METRIC_PROPERTIES[name] & set(METRIC_DIRECTIONS)) == 1, f"give {name} exactly one of {METRIC_DIRECTIONS}"


@pytest.mark.parametrize("name", sorted(METRIC_PROPERTIES))
def test_registry_entry_is_consistent(name):
    props, (low, high) = METRIC_PROPERTIES[name], METRIC_BOUNDS[name]
    assert low < high
    assert ("bounded" in props) == (math.isfinite(low) and math.isfinite(high))
    assert ("nonnegative" in props) == (low == 0)
    if "identity_extreme" in props:
        assert props & {"similarity", "dissimilarity"}, "identity_extreme needs a direction"
    if "pairwise" in props:
        assert name in PAIRWISE_OF


def test_the_tests_cover_every_metric_and_property():
    assert set(SIGNATURES) == set(METRIC_PROPERTIES), "give new metrics a SIGNATURES entry"
    assert set(REFERENCES) == set(METRIC_PROPERTIES), "give new metrics a slow reference"
    assert CHECKED_PROPERTIES == set(PROPERTY_VOCABULARY), "give new properties a generic test"


# ==============================================================================================
# 3. Generic property tests, one per property of the vocabulary


def permute_examples(args, roles, perm):
    return tuple(np.take(x, perm, axis=EXAMPLE_AXIS[role]) if role in EXAMPLE_AXIS else x
                 for x, role in zip(args, roles))


def rename_classes(x, sigma):
    """Class j becomes sigma[j]: labels are mapped, probability columns moved."""
    if np.issubdtype(x.dtype, np.integer):
        return sigma[x]
    out = np.empty_like(x)
    out[..., sigma] = x
    return out


def identical_inputs(args, roles):
    if roles[0] in STACK_ROLES:  # every member of the stack equals the first
        return (np.repeat(args[0][:1], len(args[0]), axis=0),) + args[1:]
    return (args[0], args[0]) + args[2:]


def extreme_value(name):
    low, high = METRIC_BOUNDS[name]
    return high if "similarity" in METRIC_PROPERTIES[name] else low


@pytest.mark.parametrize("name", sorted(METRIC_PROPERTIES))
@settings(max_examples=PROPERTY_EXAMPLES)
@given(data=st.data())
def test_values_lie_within_bounds(name, data):
    args, _ = data.draw(metric_inputs(name))
    values = _to_numpy(call(name, *args))
    low, high = METRIC_BOUNDS[name]
    assert ((values >= low - ROUNDING) & (values <= high + ROUNDING)).all(), values


@pytest.mark.parametrize("name", having("symmetric"))
@settings(max_examples=PROPERTY_EXAMPLES)
@given(data=st.data())
def test_symmetric(name, data):
    args, dims = data.draw(metric_inputs(name))
    roles = SIGNATURES[name]
    value = call(name, *args)
    if roles[0] == "members":  # the members' order does not matter
        perm = data.draw(st.permutations(range(dims["k"])))
        assert_same(call(name, args[0][perm]), value)
    elif roles[0] in STACK_ROLES:  # a symmetric matrix, and reordering the stack reorders it
        perm = data.draw(st.permutations(range(dims["k"])))
        assert_same(value, value.T)
        assert_same(call(name, args[0][perm]), value[perm][:, perm])
    else:
        assert roles[0] == roles[1]
        assert_same(call(name, args[1], args[0], *args[2:]), value)


@pytest.mark.parametrize("name", having("example_order_invariant"))
@settings(max_examples=PROPERTY_EXAMPLES)
@given(data=st.data())
def test_example_order_invariant(name, data):
    args, dims = data.draw(metric_inputs(name))
    perm = np.array(data.draw(st.permutations(range(dims["n"]))))
    assert_same(call(name, *permute_examples(args, SIGNATURES[name], perm)), call(name, *args))


@pytest.mark.parametrize("name", having("class_permutation_invariant"))
@settings(max_examples=PROPERTY_EXAMPLES)
@given(data=st.data())
def test_class_permutation_invariant(name, data):
    args, dims = data.draw(metric_inputs(name))
    sigma = np.array(data.draw(st.permutations(range(dims["c"]))))
    renamed = tuple(rename_classes(x, sigma) if role in CLASS_ROLES else x
                    for x, role in zip(args, SIGNATURES[name]))
    assert_same(call(name, *renamed), call(name, *args))


@pytest.mark.parametrize("name", having("scale_invariant"))
@settings(max_examples=PROPERTY_EXAMPLES)
@given(data=st.data())
def test_scale_invariant(name, data):
    args, dims = data.draw(metric_inputs(name))
    scales = st.floats(1e-2, 1e2)
    scaled = tuple(x * np.array(data.draw(st.lists(scales, min_size=dims["k"], max_size=dims["k"])))[:, None]
                   if role == "vectors" else x * data.draw(scales)
                   for x, role in zip(args, SIGNATURES[name]))
    assert_same(call(name, *scaled), call(name, *args))


@pytest.mark.parametrize("name", having("orthogonal_invariant"))
@settings(max_examples=PROPERTY_EXAMPLES)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_orthogonal_invariant(name, data, seed):
    args, _ = data.draw(metric_inputs(name))
    rng = np.random.default_rng(seed)
    rotated = tuple(x @ np.linalg.qr(rng.standard_normal((x.shape[1], x.shape[1])))[0] for x in args)
    assert_same(call(name, *rotated), call(name, *args), rtol=1e-7)


@pytest.mark.parametrize("name", having("translation_invariant"))
@settings(max_examples=PROPERTY_EXAMPLES)
@given(data=st.data())
def test_translation_invariant(name, data):
    args, _ = data.draw(metric_inputs(name))
    shifted = tuple(x + data.draw(hnp.arrays(np.float64, x.shape[1], elements=st.floats(-10, 10))) for x in args)
    assert_same(call(name, *shifted), call(name, *args), rtol=1e-7)


@pytest.mark.parametrize("name", having("identity_extreme"))
@settings(max_examples=PROPERTY_EXAMPLES)
@given(data=st.data())
def test_identical_inputs_give_the_extreme_value(name, data):
    args, _ = data.draw(metric_inputs(name))
    values = _to_numpy(call(name, *identical_inputs(args, SIGNATURES[name])))
    np.testing.assert_allclose(values, extreme_value(name), rtol=0, atol=ROUNDING)


def independent_inputs(name: str, rng: np.random.Generator) -> tuple:
    """Independent random inputs, large enough that they are unmistakably not identical."""
    n, c, d, k = 300, 5, 50, 4
    build = {
        "vector": lambda: rng.standard_normal(d),
        "vectors": lambda: rng.standard_normal((k, d)),
        "labels": lambda: rng.integers(0, c, n),
        "pred": lambda: rng.dirichlet(np.ones(c), n),
        "preds": lambda: rng.dirichlet(np.ones(c), (k, n)),
        "members": lambda: rng.dirichlet(np.ones(c), (k, n)),
        "features": lambda: rng.standard_normal((n, 6)),
    }
    return tuple(build[role]() for role in SIGNATURES[name])


@pytest.mark.parametrize("name", having("identity_extreme"))
def test_independent_inputs_do_not_give_the_extreme_value(name):
    args = independent_inputs(name, np.random.default_rng(0))
    value = call(name, *args)
    if SIGNATURES[name][0] in {"vectors", "preds"}:  # the diagonal compares a row with itself
        value = value[~torch.eye(len(value), dtype=torch.bool)]
    distance = np.abs(_to_numpy(value) - extreme_value(name))
    assert distance.min() > INDEPENDENT_MARGIN, distance


@pytest.mark.parametrize("name", having("perfect_is_zero"))
@settings(max_examples=PROPERTY_EXAMPLES)
@given(data=st.data())
def test_perfect_predictions_score_zero(name, data):
    (_, labels), dims = data.draw(metric_inputs(name))
    # Exact on any CPU: every term is exactly 0 (p - onehot = 0, log(1) = 0, confidence 1 - correct
    # 1 = 0), and sums and means of exact zeros do not round.
    assert call(name, np.eye(dims["c"])[labels], labels) == 0.0


@pytest.mark.parametrize("name", having("loss"))
def test_a_loss_is_lowest_for_perfect_predictions(name):
    """Lower is better: one-hot probabilities on the true labels give the lower bound, and
    confidently wrong ones a higher value."""
    labels = np.array([0, 1, 2, 1])
    perfect, wrong = np.eye(3)[labels], np.eye(3)[(labels + 1) % 3]
    assert call(name, perfect, labels) == METRIC_BOUNDS[name][0] < call(name, wrong, labels)


@pytest.mark.parametrize("name", having("pairwise"))
@settings(max_examples=PROPERTY_EXAMPLES)
@given(data=st.data())
def test_pairwise_matrix_holds_the_two_input_metric(name, data):
    (stack,), dims = data.draw(metric_inputs(name))
    matrix = call(name, stack)
    assert matrix.shape == (dims["k"], dims["k"]) and matrix.dtype == torch.float64
    scalar = METRICS[PAIRWISE_OF[name]]
    assert_same(matrix, [[scalar(a, b) for b in stack] for a in stack])


@pytest.mark.parametrize("name", having("elementwise"))
@settings(max_examples=PROPERTY_EXAMPLES)
@given(data=st.data(), c=st.integers(2, 10), size=st.integers(1, 6))
def test_elementwise_over_arrays(name, data, c, size):
    draws = [data.draw(metric_inputs(name, c=c))[0] for _ in range(size)]
    columns = tuple(np.array(column) if role == "acc" else column[0]
                    for column, role in zip(zip(*draws), SIGNATURES[name]))
    batched = call(name, *columns)
    assert isinstance(batched, (tuple, np.ndarray))
    one_by_one = [call(name, *args) for args in draws]
    if isinstance(batched, tuple):
        assert_same(batched, tuple(np.array(part) for part in zip(*one_by_one)))
    else:
        assert_same(batched, one_by_one)
    assert all(isinstance(v, float) for v in _flatten_results(one_by_one))


def _flatten_results(results):
    return [v for r in results for v in (r if isinstance(r, tuple) else (r,))]


CHECKED_PROPERTIES = {
    "bounded", "nonnegative",  # test_values_lie_within_bounds and test_registry_entry_is_consistent
    "similarity", "dissimilarity",  # test_identical_inputs_give_the_extreme_value
    "loss",  # test_a_loss_is_lowest_for_perfect_predictions
    "symmetric", "example_order_invariant", "class_permutation_invariant", "scale_invariant",
    "orthogonal_invariant", "translation_invariant", "identity_extreme", "perfect_is_zero",
    "pairwise", "elementwise",
}


# ==============================================================================================
# Conventions shared by every metric module


def test_results_are_python_floats_and_float64_tensors():
    probs, labels = np.array([[0.7, 0.3], [0.2, 0.8]]), np.array([0, 0])
    for value in (brier_score_loss(probs, labels), nll(probs, labels), expected_calibration_error(probs, labels),
                  disagreement(probs, labels), cosine_similarity(probs[0], probs[1]),
                  js_diversity(probs[None]), linear_cka(probs, probs), diversity_upper_model(0.5, 0.5, 2)):
        assert type(value) is float
    assert pairwise_cosine(torch.ones(2, 3, dtype=torch.float32)).dtype == torch.float64
    assert pairwise_disagreement(torch.from_numpy(np.stack([probs, probs]))).dtype == torch.float64
    assert isinstance(diversity_upper_model(np.array([0.5]), 0.5, 2), np.ndarray)

