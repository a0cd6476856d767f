"""Statistical decisions over seeds, and the Evidence a claim test records.

A claim's decision is a conjunction of :class:`Criterion` objects, each comparing an estimate (or
its one-sided confidence bound) with a named threshold. Uncertainty comes from the seeds: the
bootstrap resamples *seeds*, never pairs or examples, because seeds are the independent units.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.stats

DIRECTIONS = (">=", ">", "<=", "<")
# One-sided confidence level of every claim's bootstrap bound (the conventional 95%).
CONFIDENCE = 0.95
# A negative control's null (e.g. a time-shuffled trajectory) may pass a claim's decision at most
# this often: the conventional 5% significance level.
NULL_PASS_RATE_MAX = 0.05
BOOTSTRAP_RESAMPLES = 4000
BOOTSTRAP_SEED = 0  # the resampling is part of the decision: fixed, so a verdict is reproducible


def seed_bootstrap(statistic: Callable[[np.ndarray], np.ndarray], n_seeds: int, level: float = 0.95,
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
        S >= 3 (the jackknife of a resample needs two seeds left).
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
        ``2 * level - 1``.
    """
    if not isinstance(n_seeds, int) or n_seeds < 3:
        raise ValueError(f"n_seeds={n_seeds!r} is invalid: a bootstrap over seeds needs at least 3 seeds")
    if not 0.5 < level < 1:
        raise ValueError(f"level={level} is invalid: expected a one-sided level in (0.5, 1)")
    everything = np.arange(n_seeds)[None, :]
    estimate = float(statistic(everything)[0])
    se = float(_jackknife_se(statistic, everything)[0])
    if not np.isfinite(estimate) or not np.isfinite(se):
        raise ValueError(f"the statistic or its jackknife error is undefined on the seeds: {estimate}, {se}")
    if se == 0:  # every seed gives the same value: no spread to bootstrap
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
    # A resample whose values do not vary (e.g. the seeds it drew agree exactly, as fractions
    # at 1.0 do) has no error of its own; its pivot falls back to the estimate's error (the
    # percentile pivot) instead of an infinite one, which would make the bounds infinite whenever
    # one seed differs from otherwise identical ones.
    pivot = diff / np.where(resample_se > 0, resample_se, se)
    q_low, q_high = np.quantile(pivot, [1 - level, level])
    return estimate - q_high * se, estimate - q_low * se


def _jackknife_se(statistic: Callable[[np.ndarray], np.ndarray], idx: np.ndarray) -> np.ndarray:
    """Jackknife standard error of the statistic of each row of ``idx`` (B, K), leaving out one draw."""
    b, k = idx.shape
    keep = ~np.eye(k, dtype=bool)
    leave_one_out = np.broadcast_to(idx[:, None, :], (b, k, k))[:, keep].reshape(b * k, k - 1)
    values = statistic(leave_one_out).reshape(b, k)
    return np.sqrt((k - 1) / k * ((values - values.mean(axis=1, keepdims=True)) ** 2).sum(axis=1))


def _per_seed(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"per-seed values must be a 1-D array of at least 2 seeds; got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"per-seed values contain NaN or infinite values: {values.tolist()}")
    return values


def mean_interval(per_seed: np.ndarray, level: float = 0.95, **kwargs) -> tuple[float, float]:
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
    return seed_bootstrap(lambda idx: resampled_mean(values, idx), len(values), level, **kwargs)


def pairwise_mean_interval(matrix: np.ndarray, level: float = 0.95, **kwargs) -> tuple[float, float]:
    """Bootstrap bounds of the mean over pairs of distinct seeds of a pairwise statistic.

    The seeds are resampled, then the mean is recomputed over every pair (a, b), a < b, of the
    resample whose two seeds differ: a seed drawn twice is not paired with itself, because the
    diagonal (a seed against itself) is not a sample of the pairwise statistic.

    Parameters
    ----------
    matrix : array, shape (S, S)
        Symmetric pairwise values (e.g. cross-seed cosine); the diagonal is ignored. S >= 3.

    Returns
    -------
    (lower, upper) : tuple of float
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 3:
        raise ValueError(f"matrix must be square (S, S) with S >= 3 seeds; got shape {m.shape}")
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
    """
    m = np.asarray(matrix, dtype=np.float64)
    a, b = idx[:, :, None], idx[:, None, :]
    valid = (a != b) & np.triu(np.ones(idx.shape[1], dtype=bool), k=1)
    total = np.where(valid, m[a, b], 0.0).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / valid.sum(axis=(1, 2))


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
    return float(scipy.stats.spearmanr(np.arange(len(values)), values).statistic)


@dataclass(frozen=True)
class Criterion:
    """One comparison of a claim's decision.

    Attributes
    ----------
    name : str
        What is measured, e.g. "late consecutive cosine".
    estimate : float
        The point estimate (e.g. mean over seeds).
    threshold : float
    direction : {">=", ">", "<=", "<"}
        The claim holds when ``value direction threshold``.
    ci : (float, float) or None
        Bootstrap interval whose relevant end (lower for ">=" and ">", upper for "<=" and "<") is compared at
        confidence ``level``; None when the estimate itself is compared (e.g. a maximum over
        every seed, which needs no interval).
    level : float or None
    """

    name: str
    estimate: float
    threshold: float
    direction: str
    ci: tuple[float, float] | None = None
    level: float | None = None

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"Criterion.direction={self.direction!r} is invalid: expected one of {DIRECTIONS}")
        if (self.ci is None) != (self.level is None):
            raise ValueError("Criterion.ci and Criterion.level go together: give both or neither")

    @property
    def value(self) -> float:
        """The number compared with the threshold: the relevant CI end, or the estimate."""
        if self.ci is None:
            return self.estimate
        return self.ci[0] if self.direction.startswith(">") else self.ci[1]

    @property
    def passed(self) -> bool:
        if math.isnan(self.value):
            return False
        return {">=": self.value >= self.threshold, ">": self.value > self.threshold,
                "<=": self.value <= self.threshold, "<": self.value < self.threshold}[self.direction]

    def describe(self) -> str:
        compared = "" if self.ci is None else (
            f" [{'lower' if self.direction.startswith('>') else 'upper'} {self.level:.0%} bound {self.value:.5g}]")
        return (f"{'PASS' if self.passed else 'FAIL'}  {self.name}: {self.estimate:.5g}{compared} "
                f"{self.direction} {self.threshold:.5g}")


@dataclass(frozen=True)
class Evidence:
    """A claim's decision in one setting, over all its seeds.

    Attributes
    ----------
    claim : str
        Catalog id (CLAIMS.md), e.g. "T1".
    setting : str
    source : str
        What the source reports, e.g. "[WB] SmallCNN: consecutive cos > 0.95 after ~epoch 10".
    criteria : tuple of Criterion
        All must pass for the claim to pass.
    seeds : tuple of int
    details : dict
        JSON-able extra measurements for the report (per-seed values, nulls).
    """

    claim: str
    setting: str
    source: str
    criteria: tuple[Criterion, ...]
    seeds: tuple[int, ...]
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.criteria:
            raise ValueError("Evidence needs at least one criterion: a decision that compares nothing cannot fail")

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria)

    @property
    def main(self) -> Criterion:
        """The first criterion: the claim's headline statistic in tables."""
        return self.criteria[0]

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def explain(self) -> str:
        """A multi-line account: verdict, setting, seeds, then each criterion."""
        head = f"{self.claim} {self.verdict} on {self.setting} over {len(self.seeds)} seeds {list(self.seeds)}"
        lines = [head, f"  source: {self.source}"] + [f"  {c.describe()}" for c in self.criteria]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["verdict"], out["n_seeds"] = self.verdict, self.n_seeds
        for c, d in zip(self.criteria, out["criteria"]):
            d["value"], d["passed"] = c.value, c.passed
        return out
