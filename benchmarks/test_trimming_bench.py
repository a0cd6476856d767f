"""The trimmed Kolmogorov distance: closed form against the O(n²) running-maximum form and the LP.

- ``alpha_hat``: the full statistic as a claim uses it: 10 candidates x 100 bootstraps x 13 trimming
  levels on 10,000 examples (bootstrap halves of 5,000), ``harness.trimming.alpha_hat``.
- ``distance-closed-form`` / ``distance-running-max``: one candidate against one reference of
  10,000 outputs each, all 13 levels. The running-maximum row re-implements the O(n²) formulation plainly:
  the same optimum, with every suffix maximum taken by a fresh ``max(x[i:])`` (as the authors' code
  takes ``max(x_u[i:n])``), once per trimming level.
- ``distance-lp``: the linear program over the atom weights (HiGHS) on 200 outputs per sample and
  one level, the exact reference the tests compare against.

Target: the closed form at least 100x the running-maximum form at n = 10,000.

Run: ``pytest benchmarks/test_trimming_bench.py --benchmark-only``.
"""

import numpy as np
import pytest
import scipy.optimize

from harness.trimming import ALPHA_GRID, alpha_hat, trimmed_kolmogorov_distance

N_EXAMPLES = 10_000
N_CANDIDATES = 10
LP_N = 200


@pytest.fixture(scope="module")
def outputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(0.1, 1.0, (N_CANDIDATES, N_EXAMPLES)), rng.normal(0.0, 1.0, (3, N_EXAMPLES))


def running_max_distance(candidate: np.ndarray, reference: np.ndarray, alpha: float) -> float:
    """The trimmed distance with its suffix maxima taken one slice at a time: O(k²) for k values."""
    ref = np.sort(reference)
    values, counts = np.unique(candidate, return_counts=True)
    lower = np.searchsorted(ref, values, "right") / ref.size
    left = np.searchsorted(ref, values, "left") / ref.size
    upper = np.append(left[1:], 1.0)
    prefix = np.cumsum(counts / candidate.size / (1.0 - alpha))
    best = max(left[0], 1.0 - lower[-1])
    gain = upper[:-1] - prefix[:-1]
    for i in range(values.size - 1):
        tail = gain[i:].max()  # max over j >= i, recomputed for every i
        best = max(best, (tail - (lower[i] - prefix[i])) / 2.0, gain[i], 1.0 - lower[i] - (prefix[-1] - prefix[i]))
    return min(max(best, 0.0), 1.0)


def lp_distance(candidate: np.ndarray, reference: np.ndarray, alpha: float) -> float:
    m = candidate.size
    rows, rhs = [], []
    for p in np.unique(np.concatenate([candidate, reference])):
        for indicator, f in (((candidate <= p).astype(float), np.mean(reference <= p)),
                             ((candidate < p).astype(float), np.mean(reference < p))):
            rows += [np.append(indicator, -1.0), np.append(-indicator, -1.0)]
            rhs += [f, -f]
    result = scipy.optimize.linprog(np.append(np.zeros(m), 1.0), A_ub=np.array(rows), b_ub=np.array(rhs),
                                    A_eq=np.append(np.ones(m), 0.0)[None], b_eq=[1.0],
                                    bounds=[(0.0, 1.0 / ((1.0 - alpha) * m))] * m + [(0.0, None)], method="highs")
    return result.x[-1]


@pytest.mark.benchmark(group="trimming: alpha_hat, 10 candidates x 100 bootstraps x 13 levels, n = 10,000")
def test_alpha_hat(benchmark, outputs):
    candidates, reference = outputs
    levels = benchmark.pedantic(lambda: [alpha_hat(c, reference)[0] for c in candidates], rounds=1, iterations=1)
    assert all(0.0 <= level <= 0.5 for level in levels)


@pytest.mark.benchmark(group="trimming: one distance at 13 levels, 10,000 vs 10,000 outputs")
def test_distance_closed_form(benchmark, outputs):
    candidates, reference = outputs
    distances = benchmark(trimmed_kolmogorov_distance, candidates[0], reference[0], ALPHA_GRID)
    assert np.allclose(distances, [running_max_distance(candidates[0], reference[0], a) for a in ALPHA_GRID],
                       atol=1e-12)


@pytest.mark.benchmark(group="trimming: one distance at 13 levels, 10,000 vs 10,000 outputs")
def test_distance_running_max(benchmark, outputs):
    candidates, reference = outputs
    benchmark.pedantic(lambda: [running_max_distance(candidates[0], reference[0], a) for a in ALPHA_GRID],
                       rounds=3, iterations=1)


@pytest.mark.benchmark(group="trimming: the linear program, 200 vs 200 outputs, one level")
def test_distance_lp(benchmark, outputs):
    candidates, reference = outputs
    candidate, ref = candidates[0, :LP_N], reference[0, :LP_N]
    result = benchmark.pedantic(lp_distance, args=(candidate, ref, 0.1), rounds=1, iterations=1)
    assert result == pytest.approx(trimmed_kolmogorov_distance(candidate, ref, 0.1), abs=1e-9)
