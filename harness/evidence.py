"""Three-valued decisions: the :class:`Criterion` objects of a claim and the :class:`Evidence` they add up to.

A criterion compares a statistic of the seeds with a named threshold through the statistic's
interval, computed by the criterion itself at the level it records (the constructors below), so
an interval and its level cannot disagree. Each criterion, and the evidence, ends in one of:

``reproduces``
    The interval clears the threshold (its lower bound for ``>``/``>=``, its upper bound for
    ``<``/``<=``): the claim holds here, with confidence.
``refuted``
    The whole interval lies on the wrong side: the claim is false here, with confidence.
``inconclusive``
    Neither: the seeds do not tell. :mod:`harness.sequential` then asks for more seeds.

The evidence reproduces when every criterion does, is refuted when some criterion is, and is
inconclusive otherwise. "Reproduces" needs all criteria (an intersection-union test), so its
error rate is that of one criterion, at most ``1 - level``; "refuted" names the criterion that
refutes, each at most ``1 - level`` wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from harness.stats import (
    ROUNDING,
    mean_interval,
    pairwise_mean,
    pairwise_mean_interval,
    seed_bootstrap,
    subset_mean_interval,
)

REPRODUCES, REFUTED, INCONCLUSIVE = "reproduces", "refuted", "inconclusive"
OUTCOMES = (REPRODUCES, REFUTED, INCONCLUSIVE)
# The comparisons a criterion may make, and the symbol a report prints for each.
DIRECTIONS = {">=": "≥", ">": ">", "<=": "≤", "<": "<"}
# How a claim test's evidence travels from the test (fixtures.evidence) to the report
# (reports.plugin): as pytest user properties under these names, which survive pytest-xdist.
EVIDENCE_PROPERTY = "evidence"
VERDICT_PROPERTY = "verdict"  # the verdict alone, for junit XML readers
UNBOUNDED = (-math.inf, math.inf)
# Ranges of the statistics claims use: an interval never leaves its statistic's range.
FRACTION = (0.0, 1.0)
COSINE = (-1.0, 1.0)


@dataclass(frozen=True)
class Criterion:
    """One comparison of a claim's decision.

    Build it with :func:`mean_criterion`, :func:`pairwise_criterion`, :func:`bootstrap_criterion`
    or :func:`subset_criterion`, which compute the interval at ``level``.

    Attributes
    ----------
    name : str
        What is measured, e.g. "late consecutive cosine".
    estimate : float
        The point estimate over all seeds (e.g. the mean over seeds).
    threshold : float
    direction : {">=", ">", "<=", "<"}
        The claim holds when ``statistic direction threshold``.
    ci : (float, float)
        One-sided lower and upper bounds at ``level``, inside ``limits``; NaN when the statistic is
        undefined on these seeds (the criterion is then inconclusive).
    level : float
        One-sided confidence level of each bound, in (0.5, 1).
    limits : (float, float)
        The statistic's range, e.g. (0, 1) for a fraction.
    """

    name: str
    estimate: float
    threshold: float
    direction: str
    ci: tuple[float, float]
    level: float
    limits: tuple[float, float] = UNBOUNDED

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"Criterion.direction={self.direction!r} is invalid: expected one of {tuple(DIRECTIONS)}")
        if not 0.5 < self.level < 1:
            raise ValueError(f"Criterion.level={self.level!r} is invalid: expected a one-sided level in (0.5, 1)")
        low, high = self.limits
        if not low < high:
            raise ValueError(f"Criterion.limits={self.limits!r} is invalid: expected (low, high) with low < high")
        lower, upper = self.ci
        if lower > upper:
            raise ValueError(f"Criterion.ci={self.ci!r} is invalid: expected (lower, upper) with lower <= upper")
        # Bounds outside the statistic's range say nothing more than its end: clip them.
        object.__setattr__(self, "ci", (float(min(max(lower, low), high)), float(min(max(upper, low), high))))

    @property
    def outcome(self) -> str:
        """:data:`REPRODUCES`, :data:`REFUTED` or :data:`INCONCLUSIVE` (also when a bound is NaN)."""
        lower, upper = self.ci
        if math.isnan(lower) or math.isnan(upper):
            return INCONCLUSIVE
        # Within rounding of the threshold counts as equal to it (a mean of copies of 0.95 is
        # 0.9499999999999998): ">=" is met by a tie, ">" is not.
        t, tol = self.threshold, ROUNDING * max(1.0, abs(self.threshold))
        if self.direction in (">=", ">"):
            clears = lower >= t - tol if self.direction == ">=" else lower > t + tol
            wrong = upper < t - tol if self.direction == ">=" else upper <= t + tol
        else:
            clears = upper <= t + tol if self.direction == "<=" else upper < t - tol
            wrong = lower > t + tol if self.direction == "<=" else lower >= t - tol
        return REPRODUCES if clears else REFUTED if wrong else INCONCLUSIVE

    def describe(self) -> str:
        """``name: estimate [lower, upper] direction threshold (level one-sided)`` (:func:`format_criterion`)."""
        return format_criterion(asdict(self))


# ----------------------------------------------------------------------------------------------
# How criteria read: the one formatting of the terminal, the decision's messages, the HTML and
# Markdown report and the comparison of two results files (reports read results.json's dicts).


def format_number(value: float | None, digits: int = 5) -> str:
    """A number for people: ``digits`` significant digits, NaN and infinities spelled out, None a dash;
    integers and anything that is not a number as their text."""
    if value is None:
        return "—"
    if isinstance(value, (bool, int, np.integer)) or not isinstance(value, (float, np.floating)):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}g}"


def format_interval(ci: Sequence[float] | None, level: float | None = None) -> str:
    """``[lower, upper]``, with `` (98.75% one-sided)`` when the level is known; "" without an interval."""
    if not isinstance(ci, (list, tuple)) or len(ci) != 2:
        return ""
    text = f"[{format_number(ci[0])}, {format_number(ci[1])}]"
    # .5g: a level split over three looks (1 - 0.05 / 3) reads "98.333%", 0.95 reads "95%".
    if isinstance(level, (int, float)) and math.isfinite(level):
        text += f" ({level * 100:.5g}% one-sided)"
    return text


def format_threshold(direction: str, threshold: float | None, *, symbol: bool = False) -> str:
    """``>= 0.5``, or ``≥ 0.5`` with ``symbol`` (:data:`DIRECTIONS`)."""
    return f"{DIRECTIONS.get(direction, direction) if symbol else direction} {format_number(threshold)}"


def format_criterion(criterion: dict, *, level: bool = True) -> str:
    """``name: estimate [lower, upper] direction threshold``, the interval's level unless ``level`` is False.

    Parameters
    ----------
    criterion : dict
        A criterion as :meth:`Evidence.to_dict` writes it (and results.json holds it); ``ci`` and
        ``level`` may be missing (results of schema version 2).
    """
    interval = format_interval(criterion.get("ci"))
    text = (f"{criterion['name']}: {format_number(criterion.get('estimate'))}{' ' + interval if interval else ''} "
            f"{format_threshold(criterion['direction'], criterion.get('threshold'))}")
    with_level = format_interval(criterion.get("ci"), criterion.get("level")) if level else ""
    return text + with_level[len(interval):]


def _criterion(name: str, estimate: float, ci: tuple[float, float], threshold: float, direction: str, level: float,
               limits: tuple[float, float]) -> Criterion:
    return Criterion(name, float(estimate), float(threshold), direction, (float(ci[0]), float(ci[1])), level,
                     (float(limits[0]), float(limits[1])))


def mean_criterion(name: str, per_seed: np.ndarray, threshold: float, direction: str, *, level: float,
                   limits: tuple[float, float] = UNBOUNDED) -> Criterion:
    """The mean over seeds of one value per seed, ``per_seed`` (S,), with its bootstrap bounds."""
    values = np.asarray(per_seed, dtype=np.float64)
    return _criterion(name, values.mean(), mean_interval(values, level), threshold, direction, level, limits)


def pairwise_criterion(name: str, matrix: np.ndarray, threshold: float, direction: str, *, level: float,
                       limits: tuple[float, float] = UNBOUNDED) -> Criterion:
    """The mean over pairs of distinct seeds of a symmetric (S, S) ``matrix``, with its bootstrap bounds."""
    return _criterion(name, pairwise_mean(matrix), pairwise_mean_interval(matrix, level), threshold, direction,
                      level, limits)


def fraction_criterion(name: str, successes: np.ndarray, trials: np.ndarray, threshold: float, direction: str, *,
                       level: float) -> Criterion:
    """The mean over seeds of a per-seed fraction of random draws (e.g. of sampled models).

    The bootstrap over seeds sees the draws' noise only through the seeds' spread: when every seed
    scores 8 of 8, it has none and would vouch for a fraction of exactly 1. The interval is
    therefore the hull of the seed bootstrap's and the exact (Clopper-Pearson) binomial interval of
    the pooled draws at the same level: 40 of 40 draws bound the fraction below by 0.90 at 98.75%.

    Parameters
    ----------
    successes, trials : array, shape (S,)
        Per seed, the draws that count and the draws made (trials > 0).
    """
    successes, trials = np.asarray(successes, dtype=np.int64), np.asarray(trials, dtype=np.int64)
    if successes.shape != trials.shape or (trials <= 0).any() or ((successes < 0) | (successes > trials)).any():
        raise ValueError(f"successes {successes.tolist()} and trials {trials.tolist()} must be per-seed counts with "
                         "0 <= successes <= trials and trials > 0")
    fractions = successes / trials
    lower, upper = mean_interval(fractions, level)
    x, n = int(successes.sum()), int(trials.sum())
    import scipy.stats  # here, not at the top: see harness.validation on the reports' start-up
    exact_lower = 0.0 if x == 0 else float(scipy.stats.beta.ppf(1 - level, x, n - x + 1))
    exact_upper = 1.0 if x == n else float(scipy.stats.beta.ppf(level, x + 1, n - x))
    return _criterion(name, fractions.mean(), (min(lower, exact_lower), max(upper, exact_upper)), threshold,
                      direction, level, FRACTION)


def bootstrap_criterion(name: str, statistic: Callable[[np.ndarray], np.ndarray], n_seeds: int, threshold: float,
                        direction: str, *, level: float, limits: tuple[float, float] = UNBOUNDED,
                        min_distinct: int = 2) -> Criterion:
    """Any statistic of the seeds (see :func:`harness.stats.seed_bootstrap`), e.g. a paired difference.

    ``statistic`` maps seed indices (B, K) to one value per row (B,); its estimate is its value on
    all seeds. Use ``min_distinct=3`` for statistics that involve pairs of seeds.
    """
    estimate = float(statistic(np.arange(n_seeds)[None, :])[0])
    if math.isnan(estimate):  # undefined on these seeds (e.g. no sample in a band): undecided
        ci = (math.nan, math.nan)
    else:
        ci = seed_bootstrap(statistic, n_seeds, level, min_distinct=min_distinct)
    return _criterion(name, estimate, ci, threshold, direction, level, limits)


def subset_criterion(name: str, values: np.ndarray, subsets: np.ndarray, n_seeds: int, threshold: float,
                     direction: str, *, level: float, limits: tuple[float, float] = UNBOUNDED) -> Criterion:
    """A mean over K-subsets of the seeds (ensembles of K runs), with jackknife-t bounds.

    See :func:`harness.stats.subset_mean_interval`; ``values`` (M,) holds the kernel of each row
    of ``subsets`` (M, K).
    """
    estimate, ci = subset_mean_interval(values, subsets, n_seeds, level)
    return _criterion(name, estimate, ci, threshold, direction, level, limits)


def seeds_text(seeds: Sequence[int]) -> str:
    """``"0-4"`` for consecutive seeds, else the list: messages stay short at 40 seeds."""
    seeds = list(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


@dataclass(frozen=True)
class Evidence:
    """A claim's decision in one setting, over all its seeds.

    Attributes
    ----------
    claim : str
        Catalog id (docs/claims.md), e.g. "T1".
    setting : str
    source : str
        What the source reports, e.g. "[WB] SmallCNN: consecutive cos > 0.95 after ~epoch 10".
    criteria : tuple of Criterion
        The claim reproduces when all do.
    seeds : tuple of int
    details : dict
        JSON-able extra measurements for the report (per-seed values, nulls, figures).
    looks : tuple of int
        Seed count of each look of the sequential decision (:mod:`harness.sequential`), the last
        being ``len(seeds)``; one look by default.
    max_seeds : int or None
        The most seeds the decision could have grown to; None for a decision of fixed seeds.
    """

    claim: str
    setting: str
    source: str
    criteria: tuple[Criterion, ...]
    seeds: tuple[int, ...]
    details: dict = field(default_factory=dict)
    looks: tuple[int, ...] = ()
    max_seeds: int | None = None

    def __post_init__(self) -> None:
        if not self.criteria:
            raise ValueError("Evidence needs at least one criterion: a decision that compares nothing cannot fail")
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "looks", tuple(self.looks) or (len(self.seeds),))
        if self.looks[-1] != len(self.seeds):
            raise ValueError(f"Evidence.looks={self.looks} must end with the seed count {len(self.seeds)}")

    @property
    def outcome(self) -> str:
        """:data:`REPRODUCES` if every criterion does, :data:`REFUTED` if any is, else :data:`INCONCLUSIVE`."""
        outcomes = [c.outcome for c in self.criteria]
        if REFUTED in outcomes:
            return REFUTED
        return REPRODUCES if all(o == REPRODUCES for o in outcomes) else INCONCLUSIVE

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    @property
    def headline(self) -> Criterion:
        """The criterion that explains the outcome: the first refuted, else the first inconclusive, else the first."""
        for wanted in (REFUTED, INCONCLUSIVE):
            for c in self.criteria:
                if c.outcome == wanted:
                    return c
        return self.criteria[0]

    def explain(self) -> str:
        """A multi-line account: outcome, setting, seeds and looks, then each criterion with its own outcome."""
        cap = "" if self.max_seeds is None else f"; cap {self.max_seeds}"
        looks = " -> ".join(map(str, self.looks))
        head = (f"{self.claim} {self.outcome} on {self.setting} over {self.n_seeds} seeds ({seeds_text(self.seeds)}; "
                f"looks {looks}{cap})")
        width = max(map(len, OUTCOMES))
        lines = [head, f"  source: {self.source}"]
        lines += [f"  {c.outcome:<{width}}  {c.describe()}" for c in self.criteria]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-able record (reports/SCHEMA.md): the fields, ``outcome`` and ``n_seeds``, and each
        criterion's ``outcome``; of plain Python values only (:func:`plain`)."""
        out = asdict(self)
        out["outcome"], out["n_seeds"] = self.outcome, self.n_seeds
        for c, d in zip(self.criteria, out["criteria"]):
            d["outcome"] = c.outcome
        return plain(out)


def plain(value: object) -> object:
    """``value`` with numpy scalars and arrays (anything with ``tolist``) in place of Python numbers
    and lists, inside dicts, lists and tuples (kept as such).

    A test's evidence travels to pytest-xdist's controller as a user property, and execnet, which
    carries it, refuses numpy types (a claim's details hold numpy floats).
    """
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(item) for item in value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    return value
