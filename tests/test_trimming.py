"""harness.trimming: the trimmed Kolmogorov distance against a linear program, its properties, α̂."""

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.trimming import (ALPHA_GRID, UNTRIMMABLE, alpha_hat, closest_trimming, noise_level, scalar_output,
                              trimmed_kolmogorov_distance)


def reference_cdf(reference: np.ndarray, t: float, interpolate: bool) -> tuple[float, float]:
    """(F₀(t), F₀(t-)) computed directly from the definition."""
    ref = np.sort(reference)
    if not interpolate:
        return float(np.mean(ref <= t)), float(np.mean(ref < t))
    knots = np.unique(ref)
    heights = np.array([np.mean(ref <= k) for k in knots])
    value = float(np.interp(t, knots, heights, left=0.0, right=1.0))
    return value, (0.0 if t <= knots[0] else value)


def lp_distance(candidate: np.ndarray, reference: np.ndarray, alpha: float, interpolate: bool = False) -> float:
    """The trimmed distance as a linear program over the atom weights (HiGHS): min D subject to
    |G̃ - F₀| <= D at every point of both samples and just before it."""
    m = candidate.size
    rows, rhs = [], []
    for p in np.unique(np.concatenate([candidate, reference])):
        right, left = reference_cdf(reference, p, interpolate)
        for indicator, f in (((candidate <= p).astype(float), right), ((candidate < p).astype(float), left)):
            rows += [np.append(indicator, -1.0), np.append(-indicator, -1.0)]
            rhs += [f, -f]
    result = scipy.optimize.linprog(
        c=np.append(np.zeros(m), 1.0), A_ub=np.array(rows), b_ub=np.array(rhs),
        A_eq=np.append(np.ones(m), 0.0)[None], b_eq=[1.0],
        bounds=[(0.0, 1.0 / ((1.0 - alpha) * m))] * m + [(0.0, None)], method="highs")
    assert result.status == 0
    return result.x[-1]


@pytest.mark.parametrize("interpolate", [False, True], ids=["step", "interpolated"])
@pytest.mark.parametrize("case", range(12))
def test_equals_the_linear_program_at_every_grid_level(case, interpolate):
    rng = np.random.default_rng(case)
    m, n = rng.integers(2, 30, size=2)
    if case % 3 == 0:  # ties within and between the samples
        candidate, reference = rng.integers(0, 6, m).astype(float), rng.integers(0, 6, n).astype(float)
    else:
        candidate, reference = rng.normal(0.3 * (case % 4), 1.0, m), rng.normal(0.0, 1.0 + case % 2, n)
    ours = trimmed_kolmogorov_distance(candidate, reference, ALPHA_GRID, interpolate=interpolate)
    expected = [lp_distance(candidate, reference, a, interpolate) for a in ALPHA_GRID]
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)


samples = st.lists(st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False), min_size=1, max_size=25)


# Only the statistic is compared; scipy's p-value for tiny samples may divide by zero and warn.
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@settings(max_examples=150, deadline=None)
@given(samples, samples)
def test_at_alpha_0_it_is_the_two_sample_ks_statistic(candidate, reference):
    statistic = scipy.stats.ks_2samp(candidate, reference, method="asymp").statistic
    assert trimmed_kolmogorov_distance(candidate, reference, 0.0) == pytest.approx(statistic, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(samples, samples)
def test_in_the_unit_interval_and_non_increasing_in_alpha(candidate, reference):
    distances = trimmed_kolmogorov_distance(candidate, reference, ALPHA_GRID)
    assert np.all((distances >= 0) & (distances <= 1))
    assert np.all(np.diff(distances) <= 1e-12)


@settings(max_examples=100, deadline=None)
@given(samples, st.sampled_from(ALPHA_GRID))
def test_zero_for_equal_samples(sample, alpha):
    assert trimmed_kolmogorov_distance(sample, sample, alpha) == pytest.approx(0.0, abs=1e-12)


integer_samples = st.lists(st.integers(-1000, 1000), min_size=1, max_size=25)


@settings(max_examples=100, deadline=None)
@given(integer_samples, integer_samples, st.sampled_from(ALPHA_GRID))
def test_invariant_to_one_strictly_increasing_transform_of_both(candidate, reference, alpha):
    def transform(x):
        x = np.asarray(x, dtype=np.float64)
        return x**3 + 2.0 * x  # strictly increasing, and exact in float64 on these integers
    before = trimmed_kolmogorov_distance(candidate, reference, alpha)
    after = trimmed_kolmogorov_distance(transform(candidate), transform(reference), alpha)
    assert after == before


def test_a_shifted_candidate_needs_trimming_an_equal_one_does_not():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=4000)
    contaminated = np.concatenate([rng.normal(size=3600), rng.normal(6.0, 0.5, size=400)])  # 10% elsewhere
    distances = trimmed_kolmogorov_distance(contaminated, reference, [0.0, 0.05, 0.1, 0.15])
    assert distances[0] > 0.09 and distances[2] < 0.03 and distances[3] <= distances[2]


def test_shapes_batches_and_torch_inputs():
    rng = np.random.default_rng(1)
    batch, reference = rng.normal(size=(3, 50)), rng.normal(size=80)
    assert isinstance(trimmed_kolmogorov_distance(batch[0], reference, 0.1), float)
    assert trimmed_kolmogorov_distance(batch[0], reference, [0.0, 0.1]).shape == (2,)
    assert trimmed_kolmogorov_distance(batch, reference, 0.1).shape == (3,)
    grid = trimmed_kolmogorov_distance(torch.as_tensor(batch), torch.as_tensor(reference), ALPHA_GRID)
    assert grid.shape == (3, len(ALPHA_GRID))
    np.testing.assert_array_equal(grid[1], trimmed_kolmogorov_distance(batch[1], reference, ALPHA_GRID))


@pytest.mark.parametrize("call, message", [
    (lambda: trimmed_kolmogorov_distance([], [1.0]), r"candidate is empty"),
    (lambda: trimmed_kolmogorov_distance([1.0], []), r"reference is empty"),
    (lambda: trimmed_kolmogorov_distance([1.0, np.nan], [1.0]), r"candidate holds NaN or infinite"),
    (lambda: trimmed_kolmogorov_distance([1.0], [np.inf]), r"reference holds NaN or infinite"),
    (lambda: trimmed_kolmogorov_distance([1.0], [1.0], 1.0), r"alpha=1.0 is invalid: .* in \[0, 1\)"),
    (lambda: trimmed_kolmogorov_distance([1.0], [1.0], [-0.1]), r"alpha=\[-0.1\] is invalid"),
    (lambda: alpha_hat(np.ones(10), np.ones(10), grid=(0.0, 0.2, 0.1)), r"grid=.* strictly increasing"),
    (lambda: alpha_hat(np.ones(10), np.ones(9)), r"reference must have shape \(N,\) or \(R, N\) with N = 10"),
    (lambda: alpha_hat(np.ones(10), np.ones(10), epsilon=0.0), r"epsilon=0.0 is invalid"),
    (lambda: alpha_hat(np.ones(10), np.ones(10), n_boot=0), r"n_boot=0 is invalid"),
    (lambda: scalar_output(torch.zeros(4, 1)), r"logits must have shape \(N, C\) with C >= 2"),
])
def test_bad_input_is_a_value_error_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_alpha_hat_is_0_for_one_distribution_and_grows_with_contamination():
    rng = np.random.default_rng(2)
    n = 4000
    reference = rng.normal(size=(3, n))
    same, per_boot = alpha_hat(rng.normal(size=n), reference, n_boot=20)
    assert same == 0.0 and per_boot.shape == (20,)
    contaminated = np.where(rng.random(n) < 0.2, rng.normal(8.0, 0.5, n), rng.normal(size=n))
    level, _ = alpha_hat(contaminated, reference, n_boot=20)
    assert 0.1 <= level <= 0.3
    far, per_boot = alpha_hat(rng.normal(20.0, 1.0, n), reference, n_boot=5)
    assert far == UNTRIMMABLE and set(per_boot) == {UNTRIMMABLE}
    (first, first_boot), (again, again_boot) = (alpha_hat(contaminated, reference, n_boot=20, seed=3) for _ in "ab")
    assert first == again and np.array_equal(first_boot, again_boot)  # a function of the outputs and the seed


def bootstrap_alpha_hat(candidate: np.ndarray, reference: np.ndarray, n_boot: int, seed: int,
                        interpolate: bool) -> np.ndarray:
    """α̂_b as alpha_hat's docstring defines it: the drawn halves as samples, every grid level's distance."""
    half = candidate.size // 2
    delta = noise_level(half)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        idx = rng.integers(0, candidate.size, size=2 * half)
        distances = trimmed_kolmogorov_distance(candidate[idx[:half]], reference[:, idx[half:]].ravel(), ALPHA_GRID,
                                                interpolate=interpolate)
        below = np.flatnonzero(distances <= delta)
        out.append(ALPHA_GRID[below[0]] if below.size else UNTRIMMABLE)
    return np.array(out)


@pytest.mark.parametrize("interpolate", [False, True], ids=["step", "interpolated"])
@pytest.mark.parametrize("case", range(8))
def test_alpha_hat_is_bitwise_the_bootstrap_of_its_definition(case, interpolate):
    # alpha_hat counts multiplicities of pre-sorted outputs and tries the levels in blocks; the
    # definition sorts each drawn sample and scans the whole grid. Rounded outputs make ties.
    rng = np.random.default_rng(case)
    n, n_ref = int(rng.integers(2, 600)), int(rng.integers(1, 5))
    candidate = rng.normal(0.3 * (case % 4), 1.0, n)
    reference = rng.normal(0.0, 1.0, (n_ref, n))
    if case % 2:
        candidate, reference = np.round(candidate, 1), np.round(reference, 1)
    _, per_boot = alpha_hat(candidate, reference, n_boot=30, seed=case, interpolate=interpolate)
    np.testing.assert_array_equal(per_boot, bootstrap_alpha_hat(candidate, reference, 30, case, interpolate))


def test_scalar_output_is_the_logit_gap_for_two_classes_and_the_margin_for_more():
    two = torch.tensor([[1.0, 3.0], [2.0, -1.0]])
    assert scalar_output(two).tolist() == [2.0, -3.0]
    many = torch.tensor([[0.5, 2.0, 1.0], [4.0, -1.0, 3.5]])
    assert scalar_output(many).tolist() == pytest.approx([1.0, 0.5])
    assert scalar_output(many).dtype == torch.float64


def step_distance(values: np.ndarray, cdf: np.ndarray, reference: np.ndarray) -> float:
    """sup |G̃ - F₀| of a step function (``cdf`` at ``values``) against the reference's step ECDF,
    at every point of both and just before it."""
    points = np.unique(np.concatenate([values, reference]))
    steps = np.append(0.0, cdf)
    gaps = [np.abs(steps[np.searchsorted(values, points, side)] - np.searchsorted(np.sort(reference), points, side)
                   / reference.size) for side in ("right", "left")]
    return float(max(g.max() for g in gaps))


@pytest.mark.parametrize("case", range(40))
def test_closest_trimming_is_a_trimming_at_the_distance(case):
    rng = np.random.default_rng(case)
    m, n = rng.integers(1, 40, size=2)
    candidate = np.round(rng.normal(size=m) + rng.normal(), 1)  # rounded: ties within and across samples
    reference = np.round(rng.normal(size=n), 1)
    alpha = ALPHA_GRID[case % len(ALPHA_GRID)]
    values, cdf = closest_trimming(candidate, reference, alpha)
    steps = np.diff(np.append(0.0, cdf))
    caps = np.unique(candidate, return_counts=True)[1] / m / (1 - alpha)
    assert np.array_equal(values, np.unique(candidate))
    assert cdf[-1] == pytest.approx(1.0, abs=1e-12)
    assert (steps >= -1e-12).all() and (steps <= caps + 1e-9).all()
    assert step_distance(values, cdf, reference) == pytest.approx(
        trimmed_kolmogorov_distance(candidate, reference, alpha), abs=1e-9)


def test_noise_level_is_the_authors_delta():
    assert noise_level(1000) == pytest.approx(np.sqrt(np.log(200) / 1000) + 1e-3)
    with pytest.raises(ValueError, match="n"):
        noise_level(0)
