"""Confidence intervals over seeds for the statistics that claims are decided on.

Uncertainty comes from the seeds: the bootstrap resamples *seeds*, never pairs or examples,
because seeds are the independent units. Statistics of one value per seed and of pairs of seeds
get studentized bootstrap bounds (:func:`seed_bootstrap`); statistics of ensembles of K seeds
(U-statistics of order K) get jackknife-t bounds (:func:`subset_mean_interval`). The decisions
built on them are in :mod:`harness.evidence` and :mod:`harness.sequential`.
"""

from __future__ import annotations

import math
import itertools
from collections.abc import Callable

import numpy as np

from harness.validation import check_int

# Nominal one-sided confidence level of a decision over all its looks (the conventional 95%);
# harness.sequential splits 1 - CONFIDENCE across the looks.
CONFIDENCE = 0.95
# A negative control's null (e.g. a time-shuffled trajectory) may pass a claim's decision at most
# this often: the conventional 5% significance level.
NULL_PASS_RATE_MAX = 0.05
BOOTSTRAP_RESAMPLES = 4000
BOOTSTRAP_SEED = 0  # the resampling is part of the decision: fixed, so a verdict is reproducible
# The fewest seeds any claim is decided on. A pairwise statistic's bootstrap needs resamples of at
# least 3 distinct seeds (see seed_bootstrap's min_distinct); with 3 seeds only 22% of resamples
# hold 3 (and those are the seeds themselves, so they carry no spread), with 4 seeds 66% do.
MIN_SEEDS = 4
# Relative size below which a spread is rounding, not variation: the mean of ten copies of 0.95
# is 0.9499999999999998, and its jackknife error ~1e-16, not 0.
ROUNDING = 1e-12
# Ensembles of K seeds averaged over at most this many K-subsets (a fixed random sample when
# there are more): the sampling error of 2,000 subsets is small beside the seeds' own.
MAX_SUBSETS = 2000
_JACKKNIFE_ELEMENTS = 1 << 22  # seed indices per chunk of leave-one-out resamples (32 MiB of int64)


def seed_bootstrap(statistic: Callable[[np.ndarray], np.ndarray], n_seeds: int, level: float = CONFIDENCE,
                   n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                   min_distinct: int = 2) -> tuple[float, float]:
    """One-sided bootstrap-t bounds of a statistic of the seeds, resampling *seeds*.

    Each resample draws ``n_seeds`` seed indices with replacement and recomputes the statistic on
    them (for pairwise statistics: over every pair of the resample, see
    :func:`pairwise_mean_interval`). The bounds are studentized (bootstrap-t): each resample's
    statistic is divided by its own jackknife-over-seeds standard error, and the quantiles of
    that pivot scale the jackknife error of the estimate. With the few seeds a claim has, the
    plain percentile bootstrap is too narrow (with S = 5 a nominal 5% one-sided test of a mean
    passes a boundary null ~12% of the time); the studentized bounds hold their level (see the
    slow calibration test in ``tests/test_stats.py``).

    Parameters
    ----------
    statistic : callable
        Maps seed indices, an int array of shape (B, K) for any K >= 2, to the statistic of each
        row, shape (B,). NaN marks a row on which the statistic is undefined.
    n_seeds : int
        S >= ``min_distinct`` + 1 (the jackknife of a resample needs two seeds left, and enough
        resamples must hold ``min_distinct`` distinct seeds).
    level : float
        One-sided confidence level in (0.5, 1).
    n_resamples : int
    seed : int
        Seed of the resampling.
    min_distinct : int
        Resamples with fewer distinct seeds are set aside: their jackknife error is undefined or
        structurally zero (2 for statistics of single seeds; 3 for pairwise statistics, whose
        resample of two distinct seeds holds one pair).

    Returns
    -------
    (lower, upper) : tuple of float
        The one-sided lower and upper bounds at ``level``; together a two-sided interval at
        ``2 * level - 1``. Always ``lower <= estimate <= upper``.
    """
    need = max(3, min_distinct + 1)
    if not isinstance(n_seeds, int) or n_seeds < need:
        kind = "a pairwise statistic" if min_distinct >= 3 else "a statistic of single seeds"
        raise ValueError(f"n_seeds={n_seeds!r} is invalid: a bootstrap over seeds of {kind} needs at least "
                         f"{need} seeds")
    _check_level(level)
    everything = np.arange(n_seeds)[None, :]
    estimate = float(statistic(everything)[0])
    se = float(_jackknife_se(statistic, everything)[0])
    if not np.isfinite(estimate) or not np.isfinite(se):
        raise ValueError(f"the statistic or its jackknife error is undefined on the seeds: {estimate}, {se}")
    if negligible(se, estimate):  # every seed gives the same value: no spread to bootstrap
        return estimate, estimate
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))
    distinct = (np.diff(np.sort(idx, axis=1), axis=1) != 0).sum(axis=1) + 1
    idx = idx[distinct >= min_distinct]
    if len(idx) < n_resamples // 2:
        raise ValueError(f"only {len(idx)} of {n_resamples} resamples hold {min_distinct} distinct seeds: "
                         "too few seeds")
    diff = statistic(idx) - estimate
    resample_se = _jackknife_se(statistic, idx)
    # Resamples on which the statistic (or its jackknife) is undefined are set aside too, e.g. a
    # pooled band statistic whose resample drew only seeds without a sample in the band.
    defined = np.isfinite(diff) & np.isfinite(resample_se)
    if defined.sum() < n_resamples // 2:
        raise ValueError(f"the statistic is defined on only {defined.sum()} of {n_resamples} resamples: too few "
                         "seeds")
    diff, resample_se = diff[defined], resample_se[defined]
    # A resample whose values do not vary (e.g. the seeds it drew agree exactly, as fractions
    # at 1.0 do) has no error of its own; its pivot falls back to the estimate's error (the
    # percentile pivot) instead of an infinite one, which would make the bounds infinite whenever
    # one seed differs from otherwise identical ones.
    pivot = diff / np.where(negligible(resample_se, estimate), se, resample_se)
    q_low, q_high = np.quantile(pivot, [1 - level, level])
    # A skewed pivot can put both quantiles on one side of 0; a bound never excludes the estimate.
    return min(estimate, estimate - q_high * se), max(estimate, estimate - q_low * se)


def negligible(spread: float | np.ndarray, value: float) -> bool | np.ndarray:
    """Whether ``spread`` is rounding beside ``value`` (at most ROUNDING relative, or absolute below 1)."""
    return spread <= ROUNDING * max(1.0, abs(value))


def accuracy_standard_error(accuracy: float, n_examples: int) -> float:
    """Binomial standard error of an accuracy measured on ``n_examples`` examples, sqrt(p (1 - p) / n).

    The test-set noise of one accuracy: differences below it are not resolved by the test set
    (e.g. 0.79 points at 96.5% on digits' 540 test images, 0.46 at 70% on 10,000).
    """
    n_examples = check_int("n_examples", n_examples, 1)
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy={accuracy!r} is invalid: expected a fraction in [0, 1]")
    return math.sqrt(accuracy * (1.0 - accuracy) / n_examples)


def _check_level(level: float) -> None:
    if not 0.5 < level < 1:
        raise ValueError(f"level={level} is invalid: expected a one-sided level in (0.5, 1)")


def _jackknife_se(statistic: Callable[[np.ndarray], np.ndarray], idx: np.ndarray) -> np.ndarray:
    """Jackknife standard error of the statistic of each row of ``idx`` (B, K), leaving out one draw.

    Rows are processed in chunks of at most ``_JACKKNIFE_ELEMENTS`` leave-one-out indices, so that
    memory stays bounded at 100 seeds and 4,000 resamples.
    """
    b, k = idx.shape
    keep = ~np.eye(k, dtype=bool)
    out = np.empty(b)
    step = max(1, _JACKKNIFE_ELEMENTS // (k * k))
    for start in range(0, b, step):
        part = idx[start:start + step]
        leave_one_out = np.broadcast_to(part[:, None, :], (len(part), k, k))[:, keep].reshape(len(part) * k, k - 1)
        values = statistic(leave_one_out).reshape(len(part), k)
        out[start:start + step] = np.sqrt((k - 1) / k * ((values - values.mean(axis=1, keepdims=True)) ** 2).sum(axis=1))
    return out


def _per_seed(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"per-seed values must be a 1-D array of at least 2 seeds; got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"per-seed values contain NaN or infinite values: {values.tolist()}")
    return values


def mean_interval(per_seed: np.ndarray, level: float = CONFIDENCE, **kwargs) -> tuple[float, float]:
    """Bootstrap bounds of the mean over seeds of one value per seed.

    Parameters
    ----------
    per_seed : array, shape (S,)
    level : float
        One-sided level; see :func:`seed_bootstrap` for the interval and ``kwargs``.

    Returns
    -------
    (lower, upper) : tuple of float
    """
    values = _per_seed(per_seed)
    _check_level(level)
    if np.ptp(values) == 0:  # exactly the value itself (a float mean of copies may round below it)
        return float(values[0]), float(values[0])
    return seed_bootstrap(lambda idx: resampled_mean(values, idx), len(values), level, **kwargs)


def pairwise_mean_interval(matrix: np.ndarray, level: float = CONFIDENCE, **kwargs) -> tuple[float, float]:
    """Bootstrap bounds of the mean over pairs of distinct seeds of a pairwise statistic.

    The seeds are resampled, then the mean is recomputed over every pair (a, b), a < b, of the
    resample whose two seeds differ: a seed drawn twice is not paired with itself, because the
    diagonal (a seed against itself) is not a sample of the pairwise statistic.

    Parameters
    ----------
    matrix : array, shape (S, S)
        Symmetric pairwise values (e.g. cross-seed cosine); the diagonal is ignored.
        S >= MIN_SEEDS.

    Returns
    -------
    (lower, upper) : tuple of float
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < MIN_SEEDS:
        raise ValueError(f"matrix must be square (S, S) with S >= {MIN_SEEDS} seeds; got shape {m.shape}")
    off_diagonal = m[~np.eye(len(m), dtype=bool)]
    if not np.isfinite(off_diagonal).all():
        raise ValueError("matrix contains NaN or infinite values off the diagonal")
    if not np.allclose(m, m.T, equal_nan=True):
        raise ValueError("matrix must be symmetric: a pairwise statistic of seeds a and b is that of b and a")
    return seed_bootstrap(lambda idx: resampled_pairwise_mean(m, idx), len(m), level, min_distinct=3, **kwargs)


def resampled_mean(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mean of per-seed ``values`` (S,) over each row of seed indices ``idx`` (B, K) -> (B,)."""
    return np.asarray(values, dtype=np.float64)[idx].mean(axis=1)


def resampled_pairwise_mean(matrix: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mean of ``matrix`` (S, S) over the pairs of distinct seeds in each row of ``idx`` (B, K) -> (B,).

    Pairs of two draws of the same seed are skipped; a row that drew one seed only gives NaN.
    Computed from the seeds' counts w in each row, as (w^T M w) / (sum_{a != b} w_a w_b) with the
    diagonal of M zeroed: O(B S^2) time and O(B S) memory, not O(B K^2).
    """
    m = np.array(matrix, dtype=np.float64)
    np.fill_diagonal(m, 0.0)
    b, s = len(idx), len(m)
    counts = np.bincount((idx + s * np.arange(b)[:, None]).ravel(), minlength=b * s).reshape(b, s).astype(np.float64)
    total = ((counts @ m) * counts).sum(1)
    pairs = counts.sum(1) ** 2 - (counts**2).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, total / pairs, np.nan)


def pairwise_mean(matrix: np.ndarray) -> float:
    """Mean of a pairwise statistic over pairs of distinct seeds (the off-diagonal upper triangle)."""
    m = np.asarray(matrix, dtype=np.float64)
    return float(m[np.triu_indices(len(m), k=1)].mean())


def spearman_trend(series: np.ndarray) -> float:
    """Spearman rank correlation of a series with its index (time): -1 strictly falling, +1 rising.

    Parameters
    ----------
    series : array, shape (T,), T >= 3

    Returns
    -------
    float in [-1, 1]; NaN-free (a constant series raises)
    """
    values = np.asarray(series, dtype=np.float64)
    if values.ndim != 1 or len(values) < 3:
        raise ValueError(f"a trend needs a 1-D series of at least 3 points; got shape {values.shape}")
    if np.ptp(values) == 0:
        raise ValueError("a constant series has no rank trend")
    import scipy.stats  # here, not at the top: see harness.validation on the reports' start-up
    return float(scipy.stats.spearmanr(np.arange(len(values)), values).statistic)


def seed_subsets(n_seeds: int, order: int, max_subsets: int = MAX_SUBSETS,
                 rng: np.random.Generator | int = BOOTSTRAP_SEED) -> np.ndarray:
    """The K-subsets of S seeds that a statistic of ensembles averages over, shape (M, K), rows sorted.

    Every subset when there are at most ``max_subsets``, else that many independent uniform draws
    (with replacement across draws): an unbiased sample of the mean over all K-subsets (an
    incomplete U-statistic). ``rng`` is a generator or its seed: the sample is part of the decision.
    """
    if not 1 <= order <= n_seeds:
        raise ValueError(f"order={order} is invalid: expected 1 <= order <= n_seeds={n_seeds}")
    if math.comb(n_seeds, order) <= max_subsets:
        return np.array(list(itertools.combinations(range(n_seeds), order)), dtype=np.int64).reshape(-1, order)
    # Argsorting uniform keys gives a uniformly random order of the seeds.
    rng = np.random.default_rng(rng)
    return np.sort(rng.random((max_subsets, n_seeds)).argsort(axis=1)[:, :order], axis=1)


def subset_mean_interval(values: np.ndarray, subsets: np.ndarray, n_seeds: int,
                         level: float = CONFIDENCE) -> tuple[float, tuple[float, float]]:
    """Estimate and jackknife-t bounds of a mean over K-subsets of seeds (a U-statistic of order K).

    Statistics of ensembles of K runs (accuracy of a K-run ensemble, its gain over its members)
    are means of a kernel over K-subsets of the seeds. A bootstrap resample of seeds repeats seeds,
    and an ensemble of a run with itself is a smaller ensemble, so its bootstrap distribution is
    biased toward smaller ensembles. The delete-one-seed jackknife has no such bias and estimates
    a U-statistic's variance consistently (conservatively; Arvesen 1969): the i-th pseudo-value is
    the mean over the subsets without seed i, and the bounds use Student's t with S - 1 degrees
    of freedom.

    Parameters
    ----------
    values : array, shape (M,)
        The kernel on each subset.
    subsets : int array, shape (M, K)
        Seed indices of each subset (:func:`seed_subsets`).
    n_seeds : int
        S >= K + 1: leaving a seed out must leave a K-subset.
    level : float
        One-sided level in (0.5, 1).

    Returns
    -------
    estimate : float
    (lower, upper) : tuple of float
    """
    values = np.asarray(values, dtype=np.float64)
    subsets = np.asarray(subsets)
    if subsets.ndim != 2 or values.shape != (len(subsets),):
        raise ValueError(f"values {values.shape} must hold one value per subset of subsets {subsets.shape}")
    if n_seeds < subsets.shape[1] + 1:
        raise ValueError(f"n_seeds={n_seeds} is invalid: a statistic of {subsets.shape[1]}-run ensembles needs at "
                         f"least {subsets.shape[1] + 1} seeds for its jackknife")
    _check_level(level)
    if not np.isfinite(values).all():
        raise ValueError("values contain NaN or infinite values")
    estimate = float(values.mean())
    contains = (subsets[:, :, None] == np.arange(n_seeds)).any(axis=1)  # (M, S)
    kept = (~contains).sum(axis=0)
    if kept.min() == 0:
        raise ValueError("every subset holds some seed: too few subsets for a delete-one-seed jackknife")
    pseudo = (values[:, None] * ~contains).sum(axis=0) / kept
    se = float(np.sqrt((n_seeds - 1) / n_seeds * ((pseudo - pseudo.mean()) ** 2).sum()))
    if negligible(se, estimate):
        return estimate, (estimate, estimate)
    import scipy.stats  # here, not at the top: see harness.validation on the reports' start-up
    half = float(scipy.stats.t.ppf(level, n_seeds - 1)) * se
    return estimate, (estimate - half, estimate + half)
