import pytest

from harness import settings
from reports import stability


def results(*records, undecidable=()):
    return {"claims": [{"nodeid": f"claims/x.py::t[{s}]", "claim": c, "setting": s, "outcome": outcome,
                        "evidence": None if verdict is None else {
                            "outcome": verdict, "n_seeds": n,
                            "finding": {"expected": "undecidable", "why": "x"} if (c, s) in undecidable else None}}
                       for c, s, verdict, n, outcome in records]}


def test_verdicts_keep_the_seed_count_and_fall_back_to_the_test_outcome():
    table = stability.verdicts(results(("T1", "digits-mlp", "reproduces", 5, "passed"),
                                       ("N1", "digits-mlp", None, 0, "error")))
    assert table == {("T1", "digits-mlp"): "reproduces (5)", ("N1", "digits-mlp"): "error"}


def test_seed_counts_may_differ_but_verdicts_may_not():
    a = stability.verdicts(results(("T1", "s", "reproduces", 5, "passed"), ("N1", "s", "refuted", 10, "xfailed")))
    b = stability.verdicts(results(("T1", "s", "reproduces", 20, "passed"), ("N1", "s", "inconclusive", 40, "failed")))
    rows, unstable = stability.compare({0: a, 1000: b})
    assert rows == [("N1", "s", "refuted (10)", "inconclusive (40)"), ("T1", "s", "reproduces (5)", "reproduces (20)")]
    assert unstable == [("N1", "s")]


def test_a_claim_missing_from_one_seed_set_is_unstable():
    a = stability.verdicts(results(("T1", "s", "reproduces", 5, "passed")))
    _, unstable = stability.compare({0: a, 1000: {}})
    assert unstable == [("T1", "s")]


SPACING = max(settings.get(name).max_seeds for name in settings.names("smoke"))


@pytest.mark.parametrize("offsets", [["0"], ["0", str(SPACING - 1)]])
def test_offsets_must_be_disjoint_seed_sets(offsets, capsys):
    assert stability.main(["--offsets", *offsets]) == 2  # refused before any pytest run
    assert f"at least {SPACING} apart" in capsys.readouterr().err


def test_a_claim_declared_undecidable_is_shown_but_not_compared():
    a = stability.verdicts(results(("S2", "s", "inconclusive", 40, "xfailed"), undecidable={("S2", "s")}))
    b = stability.verdicts(results(("S2", "s", "refuted", 20, "xfailed"), undecidable={("S2", "s")}))
    rows, unstable = stability.compare({0: a, 1000: b})
    assert rows == [("S2", "s", "inconclusive (40, undecidable)", "refuted (20, undecidable)")] and unstable == []
