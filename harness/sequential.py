"""Seeds added until decided: a group-sequential decision with the error split across its looks.

An inconclusive decision is taken again on twice the seeds, up to a cap that the setting's cost
allows (``Setting.max_seeds``). Looking several times would raise the chance of a wrong
"reproduces" (or "refuted") above the nominal 5% if every look used 95% bounds, so the error
``1 - CONFIDENCE`` is split equally across the planned looks (Bonferroni): with L looks each
bound is at level ``1 - 0.05 / L``, and the chance that any look errs is at most 5%. The plan,
and so the level, is fixed before the first look; stopping early only skips looks.

Examples
--------
>>> schedule = SeedSchedule(first=5, cap=40)
>>> schedule.looks, round(schedule.level, 4)
((5, 10, 20, 40), 0.9875)
>>> SeedSchedule(first=10, cap=10).looks  # --seeds 10: one look at 95%
(10,)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from harness.evidence import INCONCLUSIVE, Evidence
from harness.stats import CONFIDENCE, MIN_SEEDS
from harness.validation import check_int


@dataclass(frozen=True)
class SeedSchedule:
    """The planned seed counts of a sequential decision.

    Attributes
    ----------
    first : int
        Seeds of the first look, >= :data:`harness.stats.MIN_SEEDS`.
    cap : int
        Seeds of the last look, >= ``first``; looks double from ``first`` and end at ``cap``.
    alpha : float
        Error rate over all looks, split equally across them.
    """

    first: int
    cap: int
    alpha: float = 1 - CONFIDENCE

    def __post_init__(self) -> None:
        check_int("SeedSchedule.first", self.first, MIN_SEEDS)
        if not isinstance(self.cap, int) or self.cap < self.first:
            raise ValueError(f"SeedSchedule.cap={self.cap!r} is invalid: expected an int >= first={self.first}")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"SeedSchedule.alpha={self.alpha!r} is invalid: expected a rate in (0, 0.5)")

    @property
    def looks(self) -> tuple[int, ...]:
        """Seed count of each look: ``first``, doubling, then ``cap``."""
        counts = [self.first]
        while counts[-1] < self.cap:
            counts.append(min(2 * counts[-1], self.cap))
        return tuple(counts)

    @property
    def level(self) -> float:
        """One-sided level of every bound at every look."""
        return 1 - self.alpha / len(self.looks)


def decide_sequentially(evidence_at: Callable[[int, float], Evidence], schedule: SeedSchedule,
                        on_look: Callable[[Evidence], None] | None = None) -> Evidence:
    """Decide on ``schedule.first`` seeds, then on more while the decision is inconclusive.

    Parameters
    ----------
    evidence_at : callable
        ``evidence_at(n_seeds, level) -> Evidence``: the claim's decision on its first
        ``n_seeds`` seeds with every bound at ``level``.
    schedule : SeedSchedule
    on_look : callable, optional
        Called with each look's evidence before the next (progress).

    Returns
    -------
    Evidence
        The last look's, with ``looks`` (the seed counts used) and ``max_seeds`` (the cap).
    """
    taken = []
    for n in schedule.looks:
        evidence = evidence_at(n, schedule.level)
        if evidence.n_seeds != n:
            raise ValueError(f"evidence_at({n}, ...) decided on {evidence.n_seeds} seeds, not {n}")
        taken.append(n)
        if on_look is not None:
            on_look(evidence)
        if evidence.outcome != INCONCLUSIVE:
            break
    return dataclasses.replace(evidence, looks=tuple(taken), max_seeds=schedule.cap)


def rivals(index: int, n_runs: int, n_rivals: int) -> list[int]:
    """The ``n_rivals`` runs after run ``index``, cyclically (all others when there are fewer): what
    "closer to its own run than to any other" compares with.

    Against every other run, such a statistic grows stricter as a decision adds seeds (more runs,
    more chances that one lies nearer); against a fixed number of rivals, its meaning is the same at
    every look. Claims take the first look's other runs (``n_seeds - 1``).
    """
    if not 0 <= index < n_runs or n_runs < 2 or n_rivals < 1:
        raise ValueError(f"rivals({index}, {n_runs}, {n_rivals}) is invalid: expected 0 <= index < n_runs, "
                         "n_runs >= 2 and n_rivals >= 1")
    return [(index + k) % n_runs for k in range(1, min(n_rivals, n_runs - 1) + 1)]
