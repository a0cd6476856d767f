"""Statistical decisions over seeds, and the Evidence a claim test records.

A claim's decision is a conjunction of :class:`Criterion` objects, each comparing an estimate (or
its one-sided confidence bound) with a named threshold. Uncertainty comes from the seeds: the
bootstrap resamples *seeds*, never pairs or examples, because seeds are the independent units.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

DIRECTIONS = (">=", "<=")
BOOTSTRAP_RESAMPLES = 4000
BOOTSTRAP_SEED = 0  # the resampling is part of the decision: fixed, so a verdict is reproducible


def bootstrap_interval(per_seed: np.ndarray, level: float = 0.95, n_resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over seeds, two-sided at ``2 * level - 1``.

    Each end is a one-sided bound at ``level``: the lower end is the one-sided lower bound, the
    upper end the one-sided upper bound.

    Parameters
    ----------
    per_seed : array, shape (S,)
        One value per seed, S >= 2.
    level : float
        One-sided confidence level in (0.5, 1).

    Returns
    -------
    (lower, upper) : tuple of float
    """
    values = np.asarray(per_seed, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"per_seed must be a 1-D array of at least 2 seeds; got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"per_seed contains NaN or infinite values: {values.tolist()}")
    if not 0.5 < level < 1:
        raise ValueError(f"level={level} is invalid: expected a one-sided level in (0.5, 1)")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_resamples, len(values)))].mean(axis=1)
    lower, upper = np.quantile(means, [1 - level, level])
    return float(lower), float(upper)


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
    direction : {">=", "<="}
        The claim holds when ``value direction threshold``.
    ci : (float, float) or None
        Bootstrap interval whose relevant end (lower for ">=", upper for "<=") is compared at
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
        return self.ci[0] if self.direction == ">=" else self.ci[1]

    @property
    def passed(self) -> bool:
        if math.isnan(self.value):
            return False
        return self.value >= self.threshold if self.direction == ">=" else self.value <= self.threshold

    def describe(self) -> str:
        compared = "" if self.ci is None else (
            f" [{'lower' if self.direction == '>=' else 'upper'} {self.level:.0%} bound {self.value:.5g}]")
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
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    def explain(self) -> str:
        """A multi-line account: verdict, setting, seeds, then each criterion."""
        head = f"{self.claim} {self.verdict} on {self.setting} over {len(self.seeds)} seeds {list(self.seeds)}"
        lines = [head, f"  source: {self.source}"] + [f"  {c.describe()}" for c in self.criteria]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["verdict"] = self.verdict
        for c, d in zip(self.criteria, out["criteria"]):
            d["value"], d["passed"] = c.value, c.passed
        return out
