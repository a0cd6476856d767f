import pytest

from reports import stability


def results(*records):
    return {"claims": [{"nodeid": f"claims/x.py::t[{s}]", "claim": c, "setting": s, "outcome": outcome,
                        "evidence": None if verdict is None else {"outcome": verdict, "n_seeds": n}}
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


@pytest.mark.parametrize("offsets", [["0"], ["0", "50"]])
def test_offsets_must_be_disjoint_seed_sets(offsets, capsys):
    assert stability.main(["--offsets", *offsets]) == 2
    assert "at least 100 apart" in capsys.readouterr().err
