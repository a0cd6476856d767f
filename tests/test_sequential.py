import numpy as np
import pytest

from harness.evidence import INCONCLUSIVE, REFUTED, REPRODUCES, Evidence, mean_criterion
from harness.sequential import SeedSchedule, decide_sequentially, rivals


def test_looks_double_to_the_cap_and_split_the_level():
    assert SeedSchedule(5, 100).looks == (5, 10, 20, 40, 80, 100)
    assert SeedSchedule(6, 20).looks == (6, 12, 20)
    assert SeedSchedule(5, 20).level == pytest.approx(1 - 0.05 / 3)
    assert SeedSchedule(10, 10).looks == (10,) and SeedSchedule(10, 10).level == pytest.approx(0.95)


@pytest.mark.parametrize("kwargs, message", [
    ({"first": 3, "cap": 10}, r"SeedSchedule.first=3 is invalid: expected an int >= 4"),
    ({"first": 8, "cap": 5}, r"SeedSchedule.cap=5 is invalid: expected an int >= first=8"),
    ({"first": 5, "cap": 5, "alpha": 0.7}, r"SeedSchedule.alpha=0.7 is invalid"),
])
def test_schedule_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SeedSchedule(**kwargs)


def decision_on(values: np.ndarray, threshold: float = 0.0):
    """A claim "mean >= threshold" decided on the first n of ``values``, one per seed."""
    def evidence_at(n: int, level: float) -> Evidence:
        return Evidence("Z", "s", "src", (mean_criterion("mean", values[:n], threshold, ">=", level=level),),
                        seeds=tuple(range(n)))
    return evidence_at


def test_a_clear_decision_takes_one_look():
    values = np.random.default_rng(0).normal(5.0, 1.0, 40)
    evidence = decide_sequentially(decision_on(values), SeedSchedule(5, 40))
    assert evidence.outcome == REPRODUCES and evidence.looks == (5,) and evidence.max_seeds == 40
    assert evidence.criteria[0].level == pytest.approx(1 - 0.05 / 4)


def test_an_inconclusive_decision_grows_until_decided():
    values = np.random.default_rng(1).normal(0.5, 1.0, 80)
    seen = []
    evidence = decide_sequentially(decision_on(values), SeedSchedule(5, 80), on_look=lambda e: seen.append(e.outcome))
    assert seen[0] == INCONCLUSIVE and evidence.outcome == REPRODUCES
    assert evidence.looks[-1] == evidence.n_seeds and len(seen) == len(evidence.looks) > 1


def test_an_undecidable_claim_stops_at_the_cap():
    values = np.tile([-1.0, 1.0], 20)  # mean exactly 0 against a strict threshold of 0: never decided
    evidence = decide_sequentially(decision_on(values, threshold=0.0), SeedSchedule(4, 40))
    assert evidence.outcome == INCONCLUSIVE and evidence.looks == (4, 8, 16, 32, 40)


def test_a_refuted_claim_stops_early():
    values = np.random.default_rng(2).normal(-3.0, 1.0, 40)
    assert decide_sequentially(decision_on(values), SeedSchedule(5, 40)).outcome == REFUTED


def test_evidence_must_use_the_seeds_asked_for():
    values = np.ones(10)
    with pytest.raises(ValueError, match=r"evidence_at\(5, ...\) decided on 4 seeds"):
        decide_sequentially(lambda n, level: decision_on(values)(n - 1, level), SeedSchedule(5, 10))


def test_rivals_are_a_fixed_number_of_following_runs():
    assert rivals(0, 40, 4) == [1, 2, 3, 4]
    assert rivals(38, 40, 4) == [39, 0, 1, 2]
    assert rivals(1, 3, 4) == [2, 0]  # all the others when there are fewer
    with pytest.raises(ValueError, match=r"rivals\(5, 5, 4\) is invalid"):
        rivals(5, 5, 4)
