"""S1 on digits-mlp (issue 24): why its verdict cannot repeat at the cap, and how the test judges it.

The dropout criterion's per-run fractions (8 samples per run, 4 rivals per run) are heavy-tailed:
most runs keep 7 or 8 of 8 samples home, a few whose rivals hold a near twin keep 3 or 4. The
counts below are those measured on digits-mlp at --seed-offset 3000 (refuted at 40 seeds, upper
bound 0.937) and the same seeds with two of the low-tail runs replaced by typical ones, as a
disjoint seed set draws them (offset 4000 gave 0.9094 [0.858, 0.948]: refuted by 0.002). A
refutation that hangs on how many near twins a seed set holds cannot repeat: the finding is
declared undecidable, so the test is an xfail whatever the verdict (old registry: strict refuted,
so the inconclusive seed set failed the build).
"""

import numpy as np
import pytest

from fixtures.evidence import judge
from harness import findings
from harness.catalog import S1_OWN_MODE_FRACTION_MIN
from harness.evidence import INCONCLUSIVE, REFUTED, Evidence, fraction_criterion
from harness.sequential import SeedSchedule

DRAWN = 8
LEVEL = SeedSchedule(5, 40).level  # 98.75%: the looks 5 -> 10 -> 20 -> 40 of digits-mlp
# own-mode counts of 8 per run: {count: runs}
OFFSET_3000 = {3: 1, 4: 2, 6: 2, 7: 17, 8: 18}
FEWER_TWINS = {4: 1, 6: 2, 7: 17, 8: 20}  # two low-tail runs replaced by typical ones


def _counts(histogram: dict[int, int]) -> np.ndarray:
    return np.repeat(list(histogram), list(histogram.values()))


def _criterion(histogram: dict[int, int]):
    own = _counts(histogram)
    assert len(own) == 40
    return fraction_criterion("dropout: fraction of samples closest to their own solution", own,
                              np.full(len(own), DRAWN), S1_OWN_MODE_FRACTION_MIN, ">=", level=LEVEL)


def _evidence(criterion) -> Evidence:
    return Evidence("S1", "digits-mlp", "src", (criterion,), seeds=tuple(range(40)), looks=(5, 10, 20, 40),
                    max_seeds=40)


def test_the_heavy_tail_flips_the_verdict_at_the_cap():
    refuted, other = _criterion(OFFSET_3000), _criterion(FEWER_TWINS)
    assert refuted.outcome == REFUTED, refuted.describe()
    assert other.outcome == INCONCLUSIVE, other.describe()
    # both seed sets' means lie below the threshold: the claim's fraction is not in doubt, the
    # verdict at 40 seeds is, since the standardised effect is below the 1.0 that repeats at cap 40
    for histogram in (OFFSET_3000, FEWER_TWINS):
        fractions = _counts(histogram) / DRAWN
        assert fractions.mean() < S1_OWN_MODE_FRACTION_MIN
        assert (S1_OWN_MODE_FRACTION_MIN - fractions.mean()) / fractions.std(ddof=1) < 1.0


def test_s1_on_digits_is_declared_undecidable():
    declared = findings.declared("S1", "digits-mlp")
    assert declared is not None and declared.expected == findings.UNDECIDABLE


@pytest.mark.parametrize("histogram", [OFFSET_3000, FEWER_TWINS], ids=["refuted", "inconclusive"])
def test_both_verdicts_are_an_xfail_not_a_failure(histogram):
    # pytest.xfail raises XFailed, a subclass of Failed: a failing judge (the old strict refuted
    # finding on the inconclusive seed set) raises plain Failed and escapes this check.
    with pytest.raises(pytest.xfail.Exception, match="declared undecidable"):
        judge(_evidence(_criterion(histogram)))
