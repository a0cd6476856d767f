import math

import numpy as np
import pytest

from harness.evidence import (
    FRACTION,
    INCONCLUSIVE,
    REFUTED,
    REPRODUCES,
    Criterion,
    Evidence,
    bootstrap_criterion,
    fraction_criterion,
    mean_criterion,
    pairwise_criterion,
    seeds_text,
    subset_criterion,
)
from harness.stats import resampled_mean, seed_subsets


def crit(ci, direction=">=", threshold=0.5, estimate=None):
    lower, upper = ci
    return Criterion("x", (lower + upper) / 2 if estimate is None else estimate, threshold, direction, ci, 0.95)


@pytest.mark.parametrize("direction, ci, outcome", [
    (">=", (0.6, 0.9), REPRODUCES), (">=", (0.5, 0.9), REPRODUCES), (">=", (0.1, 0.4), REFUTED),
    (">=", (0.4, 0.6), INCONCLUSIVE),
    (">", (0.6, 0.9), REPRODUCES), (">", (0.5, 0.9), INCONCLUSIVE), (">", (0.1, 0.5), REFUTED),
    ("<=", (0.1, 0.5), REPRODUCES), ("<=", (0.6, 0.9), REFUTED), ("<=", (0.4, 0.6), INCONCLUSIVE),
    ("<", (0.1, 0.4), REPRODUCES), ("<", (0.1, 0.5), INCONCLUSIVE), ("<", (0.5, 0.9), REFUTED),
])
def test_criterion_outcome_by_direction(direction, ci, outcome):
    assert crit(ci, direction).outcome == outcome


def test_a_tie_within_rounding_is_a_tie():
    assert crit((0.9499999999999998, 0.96), threshold=0.95).outcome == REPRODUCES  # >= is met by a tie
    assert crit((0.0, 4e-17), ">", threshold=0.0).outcome == REFUTED  # > is not


def test_nan_bounds_are_inconclusive():
    assert crit((math.nan, math.nan), estimate=math.nan).outcome == INCONCLUSIVE


def test_bounds_are_clipped_to_the_statistic_range():
    c = Criterion("fraction", 0.98, 0.95, ">=", (0.93, 1.04), 0.95, FRACTION)
    assert c.ci == (0.93, 1.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"direction": "=>"}, r"Criterion.direction='=>' is invalid"),
    ({"level": 0.4}, r"Criterion.level=0.4 is invalid"),
    ({"ci": (0.9, 0.1)}, r"Criterion.ci=\(0.9, 0.1\) is invalid"),
    ({"limits": (1.0, 0.0)}, r"Criterion.limits=\(1.0, 0.0\) is invalid"),
])
def test_criterion_validation(kwargs, message):
    fields = {"name": "x", "estimate": 0.5, "threshold": 0.0, "direction": ">=", "ci": (0.4, 0.6), "level": 0.95}
    with pytest.raises(ValueError, match=message):
        Criterion(**(fields | kwargs))


def test_constructors_compute_the_interval_at_their_level():
    x = np.random.default_rng(0).normal(0.3, 0.1, 8)
    loose = mean_criterion("m", x, 0.0, ">=", level=0.9)
    tight = mean_criterion("m", x, 0.0, ">=", level=0.99)
    assert loose.level == 0.9 and tight.level == 0.99  # stored as given, not computed
    assert tight.ci[0] < loose.ci[0] <= x.mean() <= loose.ci[1] < tight.ci[1]
    m = np.random.default_rng(1).normal(size=(6, 6))
    pair = pairwise_criterion("p", m + m.T, 0.0, ">=", level=0.95)
    assert pair.ci[0] <= pair.estimate <= pair.ci[1]
    boot = bootstrap_criterion("b", lambda idx: resampled_mean(x, idx), len(x), 0.0, ">=", level=0.95)
    assert boot.estimate == pytest.approx(x.mean()) and boot.ci == pytest.approx(mean_criterion(
        "m", x, 0.0, ">=", level=0.95).ci)
    subsets = seed_subsets(8, 3)
    sub = subset_criterion("s", x[subsets].mean(1), subsets, 8, 0.0, ">=", level=0.95)
    assert sub.estimate == pytest.approx(x.mean()) and sub.outcome == REPRODUCES


def test_an_undefined_statistic_is_inconclusive():
    c = bootstrap_criterion("b", lambda idx: np.full(len(idx), np.nan), 5, 0.0, ">=", level=0.95)
    assert math.isnan(c.estimate) and c.outcome == INCONCLUSIVE


def test_a_fraction_at_its_maximum_keeps_its_bound_at_one():
    c = mean_criterion("f", np.ones(6), 0.95, ">=", level=0.99, limits=FRACTION)
    assert c.ci == (1.0, 1.0) and c.outcome == REPRODUCES


def test_evidence_outcome_and_headline():
    ok, maybe, bad = crit((0.6, 0.9)), crit((0.4, 0.6)), crit((0.1, 0.2))
    assert Evidence("Z", "s", "src", (ok, ok), seeds=(0, 1, 2, 3)).outcome == REPRODUCES
    undecided = Evidence("Z", "s", "src", (ok, maybe), seeds=(0, 1, 2, 3))
    assert undecided.outcome == INCONCLUSIVE and undecided.headline is maybe
    refuted = Evidence("Z", "s", "src", (ok, maybe, bad), seeds=(0, 1, 2, 3))
    assert refuted.outcome == REFUTED and refuted.headline is bad


def test_evidence_explain_and_record():
    ok, bad = crit((0.6, 0.9)), crit((0.1, 0.2))
    ev = Evidence("T0", "digits-mlp", "source", (ok, bad), seeds=tuple(range(10)), looks=(5, 10), max_seeds=20)
    lines = ev.explain().splitlines()
    assert lines[0] == "T0 refuted on digits-mlp over 10 seeds (0-9; looks 5 -> 10; cap 20)"
    assert lines[2].startswith("  reproduces    x: 0.75 [0.6, 0.9] >= 0.5")
    assert lines[3].startswith("  refuted       x: 0.15 [0.1, 0.2] >= 0.5")
    record = ev.to_dict()
    assert record["outcome"] == REFUTED and record["n_seeds"] == 10 and record["looks"] == (5, 10)
    assert [c["outcome"] for c in record["criteria"]] == [REPRODUCES, REFUTED]
    # Stored as given (clipping to unbounded limits leaves them), not computed: exact.
    assert record["criteria"][0]["ci"] == (0.6, 0.9) and record["criteria"][0]["level"] == 0.95


def test_evidence_records_hold_plain_python_values():
    # pytest-xdist's execnet carries the record to the controller and refuses numpy types.
    details = {"mean": np.float64(0.5), "per_seed": np.arange(3), "nested": [(np.int64(2), {"x": np.float32(1.5)})]}
    record = Evidence("T0", "s", "src", (crit((0.6, 0.9)),), seeds=(0, 1, 2, 3), details=details).to_dict()
    assert record["details"] == {"mean": 0.5, "per_seed": [0, 1, 2], "nested": [(2, {"x": 1.5})]}

    def leaves(value):
        if isinstance(value, dict):
            return [leaf for item in value.values() for leaf in leaves(item)]
        return [leaf for item in value for leaf in leaves(item)] if isinstance(value, (list, tuple)) else [value]

    assert all(type(leaf) in (int, float, str, bool, type(None)) for leaf in leaves(record))


def test_evidence_validation():
    with pytest.raises(ValueError, match=r"at least one criterion"):
        Evidence("T0", "s", "src", (), seeds=(0, 1))
    with pytest.raises(ValueError, match=r"looks=\(5,\) must end with the seed count 4"):
        Evidence("T0", "s", "src", (crit((0.6, 0.9)),), seeds=(0, 1, 2, 3), looks=(5,))
    assert Evidence("T0", "s", "src", (crit((0.6, 0.9)),), seeds=(0, 1, 2, 3)).looks == (4,)


def test_seeds_text():
    assert seeds_text([1000, 1001, 1002]) == "1000-1002"
    assert seeds_text([0, 2, 5]) == "0, 2, 5"


def test_a_fraction_of_all_draws_is_bounded_by_the_draws_not_the_seeds():
    # 5 seeds scoring 8 of 8: no spread for the bootstrap; 40 of 40 draws vouch for >= 0.896 at 98.75%.
    c = fraction_criterion("f", [8] * 5, [8] * 5, 0.95, ">=", level=0.9875)
    assert c.estimate == 1.0 and c.ci[0] == pytest.approx(0.0125 ** (1 / 40)) and c.outcome == INCONCLUSIVE
    assert fraction_criterion("f", [8] * 20, [8] * 20, 0.95, ">=", level=0.9875).outcome == REPRODUCES
    spread = fraction_criterion("f", [8, 4, 8, 6, 7], [8] * 5, 0.95, ">=", level=0.95)
    assert spread.ci[0] <= mean_criterion("m", np.array([8, 4, 8, 6, 7]) / 8, 0.95, ">=", level=0.95).ci[0]
    with pytest.raises(ValueError, match=r"must be per-seed counts"):
        fraction_criterion("f", [9], [8], 0.95, ">=", level=0.95)
