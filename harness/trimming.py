"""The α-trimming level: how far one model's outputs are from a reference, up to a fraction α.

Banerjee, Marrinan, Cannon, Chiang, Sarwate, arXiv 2310.00541 and 2406.08307 ([Banerjee]):
a candidate model's per-example scalar outputs have the empirical distribution G (m atoms of
mass 1/m); a reference of independently trained models has the ECDF F₀. An α-trimming of G
reweights its atoms, w_j in [0, 1/((1-α) m)] with Σ w_j = 1 (it may discard up to a fraction α);
the trimmed Kolmogorov distance is the smallest sup-distance any α-trimming reaches,

    d_K(R_α(G), F₀) = min over trimmings G̃ of  sup_t |G̃(t) - F₀(t)|,

and the α-trimming level α̂ is the smallest α at which that distance falls below the statistical
noise δ of the samples (:func:`alpha_hat`).

Exact in O((m + n) log(m + n)) per candidate
--------------------------------------------
With the candidate's distinct values v_1 < ... < v_k (masses p_i), a trimming is fixed by its
cumulative values H_i = G̃(v_i): H_0 = 0, H_k = 1 and increments 0 <= H_i - H_{i-1} <= c_i =
p_i / (1 - α). On [v_i, v_{i+1}) the trimming is the constant H_i and F₀ runs from L_i = F₀(v_i)
to U_i = F₀(v_{i+1}-), so the distance is at most D exactly when U_i - D <= H_i <= L_i + D for
every i. These are difference constraints on a chain; they are feasible exactly when no cycle
through the bounds is negative, which for a chain means for every pair i <= j

    max(U_j - D, 0) - min(L_i + D, 1) <= C(i, j) = c_{i+1} + ... + c_j,

with H_0 = 0 and H_k = 1 as fixed ends. Solving each condition for D gives the distance in
closed form (:func:`_trimmed_distances`): the largest of U_0, 1 - L_k, max_j (U_j - C(0, j)),
max_i (1 - L_i - C(i, k)) and max_{i <= j} (U_j - L_i - C(i, j)) / 2 over interior i, j, where the
last is one pass with a running minimum. At α = 0 the trimming is G itself and the distance is
the two-sample Kolmogorov-Smirnov statistic. The authors' code maximises running maxima
``max(x_u[i:n])`` in O(n²) per α; this is the same optimum without them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from harness.validation import check_int

__all__ = ["ALPHA_GRID", "EPSILON", "N_BOOT", "UNTRIMMABLE", "alpha_hat", "closest_trimming", "noise_level",
           "scalar_output", "trimmed_kolmogorov_distance"]

# The authors' grid of trimming levels and their confidence parameter ε of δ = sqrt(log(2/ε)/n) + 1/n.
ALPHA_GRID = (0.0, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45)
EPSILON = 0.01
N_BOOT = 100
# α̂ when no grid level brings the distance below δ: "at least 0.5" (the authors' convention).
UNTRIMMABLE = 0.5
# alpha_hat tries the grid's levels in blocks ending before these indices (a speed choice: the
# result is that of the whole grid).
_LEVEL_BLOCKS = (1, 4)


def _sample(values: object, name: str) -> np.ndarray:
    """A 1-D float64 array of finite values, or ValueError naming ``name``."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sample of scalar outputs; got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: expected at least one output")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values; scalar outputs must be finite")
    return array


def _alphas(alpha: object) -> np.ndarray:
    array = np.atleast_1d(np.asarray(alpha, dtype=np.float64))
    if array.ndim != 1 or array.size == 0 or not np.all((array >= 0) & (array < 1)):
        raise ValueError(f"alpha={alpha!r} is invalid: expected a float or a 1-D array of floats in [0, 1)")
    return array


def _distinct(sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A sample's distinct values, increasing, and how many outputs hold each (int64)."""
    return np.unique(sample, return_counts=True)


def _reference_cdf(knots: np.ndarray, counts: np.ndarray, interpolate: bool):
    """``(F₀(t), F₀(t-))`` as a function of an array of points t.

    The reference is given as its distinct values ``knots`` (increasing) and their multiplicities
    ``counts``: F₀ jumps by ``counts[i] / n`` at ``knots[i]``. The counts are integers (held exactly
    in float64 as well), so F₀ is a count of outputs divided by n, whatever produced the counts.
    """
    cumulative = np.cumsum(counts)
    n = cumulative[-1]
    heights = cumulative / n
    if not interpolate:
        steps = np.append(0.0, heights)  # steps[i] = F₀ just above the i-th knot from the bottom, steps[0] = 0
        return lambda t: (steps[np.searchsorted(knots, t, "right")], steps[np.searchsorted(knots, t, "left")])

    # The authors' ECDF: linear between the distinct reference values, each at its ECDF value;
    # 0 below the smallest, 1 above the largest (a jump at the smallest: F₀(min-) = 0).
    def cdf(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        value = np.interp(t, knots, heights, left=0.0, right=1.0)
        return value, np.where(t <= knots[0], 0.0, value)

    return cdf


def _trimmed_distances(counts: np.ndarray, right: np.ndarray, left: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """d_K(R_α(G), F₀) for each α of ``alphas`` (A,); shape (A,).

    The candidate is given by the multiplicities ``counts`` (k,) of its distinct values v_1 < ... < v_k,
    the reference by ``(right, left) = (F₀(v_i), F₀(v_i-))`` (k,) each. Each level's distance is
    computed from its own row of (A, k) arrays: any subset of levels gives bitwise the same values.
    """
    k = counts.size
    lower = right  # L_i = F₀(v_i), i = 1..k
    upper = np.append(left[1:], 1.0)  # U_i = F₀(v_{i+1}-), U_k = 1
    start = left[0]  # U_0 = F₀(v_1-): below the candidate's smallest value the trimming is 0
    # C(0, i) = (p_1 + ... + p_i) / (1 - α), shape (A, k): one cumulative sum scaled per level.
    prefix = np.outer(1.0 / (1.0 - alphas), np.cumsum(counts) / counts.sum())
    total = prefix[:, -1:]
    # Fixed ends: H_0 = 0 (D >= U_0 and U_j - C(0, j)), H_k = 1 (D >= 1 - L_k and 1 - L_i - C(i, k)).
    candidates = [np.full(alphas.size, start), np.full(alphas.size, 1.0 - lower[-1])]
    if k > 1:
        gain = upper[:-1] - prefix[:, :-1]  # U_j - C(0, j), interior j
        # L_i - C(0, i) for interior i, replaced in place by its running minimum over i <= j
        # (the arrays are (A, k): temporaries, not the arithmetic, dominate the time).
        low = np.minimum.accumulate(np.subtract(lower[:-1], prefix[:, :-1]), axis=1)
        candidates.append(gain.max(axis=1))
        candidates.append(1.0 - low[:, -1] - total[:, 0])  # 1 - L_i - C(i, k), at the smallest L_i - C(0, i)
        # Interior pairs i <= j: (U_j - L_i - C(i, j)) / 2 = (gain_j - (L_i - C(0, i))) / 2.
        candidates.append(np.subtract(gain, low, out=gain).max(axis=1) / 2.0)
    return np.clip(np.max(candidates, axis=0), 0.0, 1.0)


def trimmed_kolmogorov_distance(candidate: object, reference: object, alpha: float | Sequence[float] = 0.0, *,
                                interpolate: bool = False) -> float | np.ndarray:
    """d_K(R_α(G), F₀): the Kolmogorov distance from the closest α-trimming of the candidate to the reference.

    Parameters
    ----------
    candidate : array_like, shape (m,) or (B, m)
        Scalar outputs of the candidate model (one sample, or B samples decided at once); trimmed.
    reference : array_like, shape (n,)
        Scalar outputs of the reference; its ECDF F₀ is not trimmed.
    alpha : float or array_like, shape (A,)
        Trimming levels in [0, 1).
    interpolate : bool
        F₀ linearly interpolated between the reference's distinct values (the authors' code)
        instead of the right-continuous step ECDF.

    Returns
    -------
    float, or numpy.ndarray of shape (A,), (B,) or (B, A)
        In [0, 1]; a float for one candidate and a scalar ``alpha``.

    Raises
    ------
    ValueError
        An empty sample, NaN or infinite outputs, or ``alpha`` outside [0, 1).
    """
    alphas = _alphas(alpha)
    cdf = _reference_cdf(*_distinct(_sample(reference, "reference")), interpolate)
    batch = np.asarray(candidate.detach().cpu() if isinstance(candidate, torch.Tensor) else candidate)
    samples = batch if batch.ndim == 2 else batch[None]
    if samples.ndim != 2:
        raise ValueError(f"candidate must have shape (m,) or (B, m); got {batch.shape}")
    out = []
    for row in samples:
        values, counts = _distinct(_sample(row, "candidate"))
        out.append(_trimmed_distances(counts, *cdf(values), alphas))
    out = np.stack(out)
    if batch.ndim == 1:
        out = out[0]
        return float(out[0]) if np.ndim(alpha) == 0 else out
    return out[:, 0] if np.ndim(alpha) == 0 else out


def closest_trimming(candidate: object, reference: object, alpha: float, *,
                     interpolate: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """An α-trimming of the candidate at the distance d_K(R_α(G), F₀) from the reference (for figures).

    The chain of the module docstring, solved at D = d_K: walking back from H_k = 1, each H_i has
    the least value A_i its later bounds allow (A_i = max over j >= i of U_j - D - C(i, j), and
    >= 0); walking forward from H_0 = 0, H_i = max(A_i, H_{i-1}), the lowest trimming within D.

    Parameters
    ----------
    candidate : array_like, shape (m,)
    reference : array_like, shape (n,)
    alpha : float in [0, 1)
    interpolate : bool
        See :func:`trimmed_kolmogorov_distance`.

    Returns
    -------
    values : numpy.ndarray, shape (k,)
        The candidate's distinct values, increasing.
    cdf : numpy.ndarray, shape (k,)
        The trimmed candidate's distribution function at each value (right-continuous steps).
    """
    cand = _sample(candidate, "candidate")
    if np.ndim(alpha) != 0:
        raise ValueError(f"alpha={alpha!r} is invalid: expected one float in [0, 1)")
    level = float(_alphas(alpha)[0])
    cdf = _reference_cdf(*_distinct(_sample(reference, "reference")), interpolate)
    values, counts = _distinct(cand)
    right, left = cdf(values)
    # Slack for rounding: the optimum makes some bounds meet exactly.
    distance = float(_trimmed_distances(counts, right, left, np.array([level]))[0]) + 1e-12
    upper = np.append(left[1:], 1.0)
    prefix = np.cumsum(counts / cand.size / (1.0 - level))  # C(0, i), i = 1..k
    # A_i = max(0, max_{j >= i} (b_j - C(0, j)) + C(0, i)) with b_j = U_j - D, and b_k = 1: H_k = 1 is fixed.
    floor = np.append(upper[:-1] - distance, 1.0)
    need = np.maximum.accumulate((floor - prefix)[::-1])[::-1] + prefix
    return values, np.minimum(np.maximum.accumulate(np.maximum(need, 0.0)), 1.0)


def noise_level(n: int, epsilon: float = EPSILON) -> float:
    """δ = sqrt(log(2 / ε) / n) + 1 / n: the distance two samples of n outputs from one
    distribution exceed with probability at most ε (a DKW-type bound, the authors' threshold)."""
    n = check_int("n", n, 1)
    return math.sqrt(math.log(2.0 / epsilon) / n) + 1.0 / n


def alpha_hat(candidate: object, reference: object, *, grid: Sequence[float] = ALPHA_GRID, epsilon: float = EPSILON,
              n_boot: int = N_BOOT, seed: int = 0, interpolate: bool = False) -> tuple[float, np.ndarray]:
    """The α-trimming level of a candidate against a reference, by the authors' bootstrap.

    Each bootstrap draws the N examples with replacement and splits them into two disjoint halves
    of n = N // 2: the candidate's outputs on the first half against the reference's outputs on
    the second, so the two samples share no example. Its α̂_b is the smallest grid level whose
    trimmed distance is at most δ = sqrt(log(2 / ε) / n) + 1 / n (a DKW-type bound on the
    sampling error of n outputs), or :data:`UNTRIMMABLE` when none is.

    Parameters
    ----------
    candidate : array_like, shape (N,)
        The candidate model's scalar output on each of N examples.
    reference : array_like, shape (N,) or (R, N)
        The reference models' outputs on the same examples, aligned by example; R models pooled.
    grid : sequence of float
        Increasing trimming levels in [0, 1).
    epsilon : float in (0, 1)
    n_boot : int >= 1
    seed : int
        Seed of the resampling (a fixed seed makes α̂ a function of the outputs).
    interpolate : bool
        See :func:`trimmed_kolmogorov_distance`.

    Returns
    -------
    mean : float
        The mean of α̂_b over bootstraps.
    per_bootstrap : numpy.ndarray, shape (n_boot,)
    """
    cand = _sample(candidate, "candidate")
    ref = np.asarray(reference.detach().cpu() if isinstance(reference, torch.Tensor) else reference, dtype=np.float64)
    ref = ref[None] if ref.ndim == 1 else ref
    if ref.ndim != 2 or ref.shape[1] != cand.size:
        raise ValueError(f"reference must have shape (N,) or (R, N) with N = {cand.size} examples aligned with the "
                         f"candidate; got {np.shape(reference)}")
    for row in ref:
        _sample(row, "reference")
    levels = _alphas(grid)
    if np.any(np.diff(levels) <= 0):
        raise ValueError(f"grid={tuple(grid)!r} is invalid: expected strictly increasing trimming levels")
    if not 0 < epsilon < 1:
        raise ValueError(f"epsilon={epsilon!r} is invalid: expected a float in (0, 1)")
    n_boot = check_int("n_boot", n_boot, 1)
    half = cand.size // 2
    if half < 1:
        raise ValueError(f"candidate has {cand.size} example(s): the bootstrap halves need at least 2")
    delta = noise_level(half, epsilon)
    # Each bootstrap's two samples as multiplicities of the outputs' distinct values, sorted once
    # here: a bootstrap then counts (np.bincount) instead of sorting, and its ECDFs are bitwise
    # those of np.unique on the drawn samples (the same integer counts over the same n).
    cand_values, cand_of = np.unique(cand, return_inverse=True)
    ref_values, ref_of = np.unique(ref, return_inverse=True)
    ref_of, example_of = ref_of.ravel(), np.tile(np.arange(cand.size), len(ref))
    # F₀ at the candidate's values, as positions among all the reference's distinct values: a
    # bootstrap's step ECDF is then its cumulative counts read at these positions.
    right_at, left_at = np.searchsorted(ref_values, cand_values, "right"), np.searchsorted(ref_values, cand_values, "left")
    n_ref = len(ref) * half
    # Most bootstraps of a seed against its peers stop at the first level or two: the levels are
    # tried in growing blocks, and a block's distances equal those of the whole grid.
    blocks = [slice(start, stop) for start, stop in zip((0, *_LEVEL_BLOCKS), (*_LEVEL_BLOCKS, levels.size))
              if start < levels.size]
    rng = np.random.default_rng(seed)
    per_boot = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, cand.size, size=2 * half)
        counts = np.bincount(cand_of[idx[:half]], minlength=cand_values.size)
        drawn = np.bincount(idx[half:], minlength=cand.size)  # (N,): times each example is in the second half
        ref_counts = np.bincount(ref_of, weights=drawn[example_of], minlength=ref_values.size)
        held = counts > 0
        counts = counts[held]
        if interpolate:
            ref_held = ref_counts > 0
            bounds = _reference_cdf(ref_values[ref_held], ref_counts[ref_held], True)(cand_values[held])
        else:
            steps = np.append(0.0, np.cumsum(ref_counts)) / n_ref
            bounds = steps[right_at[held]], steps[left_at[held]]
        per_boot[b] = UNTRIMMABLE
        for block in blocks:  # the smallest level within delta, in blocks of levels from the bottom
            below = np.flatnonzero(_trimmed_distances(counts, *bounds, levels[block]) <= delta)
            if below.size:
                per_boot[b] = levels[block][below[0]]
                break
    return float(per_boot.mean()), per_boot


def scalar_output(logits: object) -> torch.Tensor:
    """One scalar per example: the logit gap z₁ - z₀ for two classes (the authors' output before
    thresholding), the margin (top-1 minus top-2 logit) for more (our extension).

    Parameters
    ----------
    logits : torch.Tensor or array_like, shape (N, C), C >= 2

    Returns
    -------
    torch.Tensor, shape (N,), float64
    """
    z = torch.as_tensor(logits, dtype=torch.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"logits must have shape (N, C) with C >= 2 classes; got {tuple(z.shape)}")
    if z.shape[1] == 2:
        return z[:, 1] - z[:, 0]
    top = z.topk(2, dim=1).values
    return top[:, 0] - top[:, 1]
