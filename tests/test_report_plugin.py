"""The report plugin (reports/plugin.py, records.py, table.py): results.json, the verdict table and rendering,
in throw-away sessions."""

import json
import math
import shlex
import sys
import tomllib
import types
from pathlib import Path

import pytest

from harness import provenance, settings
from harness.training import resolve_device
from reports import plugin, records, table
from reports.results import SCHEMA_VERSION, counts_text, headline

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]
INI = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]

# The throw-away project's conftest: the harness's plugins, a fake claim catalog (Q9 never runs),
# and a fake renderer whose behaviour the RENDER environment variable picks.
CONFTEST = '''
import os
import sys
import types

pytest_plugins = ["fixtures.options", "reports.plugin"]


class ClaimInfo:
    def __init__(self, claim_id, source):
        self.claim_id = claim_id
        self.source = source

    def to_dict(self):
        return {"id": self.claim_id, "title": "claim " + self.claim_id}


sys.modules["harness.catalog"] = types.ModuleType("harness.catalog")
sys.modules["harness.catalog"].CATALOG = {cid: ClaimInfo(cid, source)
                                          for cid, source in (("Z1", "[Z] Fig. 1"), ("Z2", "[Z] Tab. 2"), ("Q9", "[Q]"))}


def write_report(results, out_dir):
    if os.environ["RENDER"] == "raise":
        raise RuntimeError("renderer broke")
    (out_dir / "index.html").write_text(" ".join(sorted(results)))
    (out_dir / "summary.md").write_text("summary")
    return {"html": out_dir / "index.html", "markdown": out_dir / "summary.md"}


sys.modules["reports.render"] = types.ModuleType("reports.render")
sys.modules["reports.render"].write_report = write_report
'''

# One test per outcome and verdict (Z7: a strict xfail that passes fails; Z8: an error without an
# exception); Z1 on synthetic16-cnn is a declared finding, refuted as declared; Z2 is inconclusive
# at the seed cap (its statistic is NaN); Z5 records two pieces of evidence; Z9 is refuted on its
# second criterion (the headline) and, on synthetic16-cnn, a declared finding that reproduces; the
# test_not_a_claim records an "evidence" property but is no claim test; the last is a negative control. The evidence is written as
# harness.evidence.Evidence.to_dict() writes it (schema version 3), and recorded as
# fixtures.evidence's record_evidence does: through record_property, with the marker.
CLAIM_TESTS = '''
import pytest


def criterion(estimate, outcome, name="score"):
    return {"name": name, "estimate": estimate, "threshold": 0.5, "direction": ">=",
            "ci": [estimate - 0.1, estimate + 0.1], "level": 0.9875, "limits": [0.0, 1.0], "outcome": outcome}


def evidence(request, setting, outcome, *criteria, looks=(5,), finding=None):
    marker = request.node.get_closest_marker("claim").kwargs
    return {"claim": marker["id"], "setting": setting, "source": "made up", "seeds": list(range(looks[-1])),
            "n_seeds": looks[-1], "looks": list(looks), "max_seeds": 40, "outcome": outcome,
            "criteria": list(criteria), "details": {}, "marker": dict(marker), "finding": finding}


REFUTED_AS_DECLARED = {"expected": "refuted", "why": "measured 0.3 < 0.5"}


@pytest.fixture
def broken_setup():
    raise RuntimeError("setup broke")


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown broke")


@pytest.mark.claim(id="Z1")
@pytest.mark.parametrize("setting", ["digits-mlp", pytest.param(
    "synthetic16-cnn", marks=pytest.mark.xfail(strict=True, reason="declared finding: measured 0.3 < 0.5"))])
def test_z1(setting, request, record_property):
    if setting == "digits-mlp":
        record_property("evidence", evidence(request, setting, "reproduces", criterion(0.9, "reproduces"),
                                             looks=(5, 10)))
    else:
        record_property("evidence", evidence(request, setting, "refuted", criterion(0.3, "refuted"),
                                             finding=REFUTED_AS_DECLARED))
        raise AssertionError("Z1 refuted on synthetic16-cnn: score 0.3 [0.2, 0.4] >= 0.5")


@pytest.mark.claim(id="Z2")
@pytest.mark.parametrize("setting", ["made-up"])
def test_z2_fails(setting, request, record_property):
    record_property("evidence", evidence(request, setting, "inconclusive", criterion(float("nan"), "inconclusive"),
                                         looks=(5, 10, 20, 40)))
    raise AssertionError("Z2 inconclusive on made-up at the seed cap 40")


@pytest.mark.claim(id="Z3")
@pytest.mark.parametrize("size", ["big"])
def test_z3_errors_in_setup(size, broken_setup):
    pass


@pytest.mark.claim(id="Z4")
@pytest.mark.skip(reason="no data here")
def test_z4_skipped():
    pass


@pytest.mark.claim(id="Z5")
def test_z5_errors_in_teardown(broken_teardown, request, record_property):
    record_property("evidence", evidence(request, "digits-mlp", "refuted", criterion(0.2, "refuted")))
    record_property("evidence", evidence(request, "digits-mlp", "reproduces", criterion(0.9, "reproduces")))


@pytest.mark.claim(id="Z6")
@pytest.mark.xfail(strict=False, reason="may not reproduce")
def test_z6_xpasses(request, record_property):
    record_property("evidence", evidence(request, "synthetic16-cnn", "reproduces", criterion(0.9, "reproduces")))


@pytest.mark.claim(id="Z7")
@pytest.mark.xfail(strict=True, reason="said not to reproduce")
def test_z7_xpasses_strictly():
    pass


@pytest.mark.claim(id="Z8")
def test_z8_lacks_a_fixture(no_such_fixture):
    pass


@pytest.mark.claim(id="Z9")
@pytest.mark.parametrize("setting", ["digits-mlp", "synthetic16-cnn"])
def test_z9(setting, request, record_property):
    if setting == "digits-mlp":
        record_property("evidence", evidence(request, setting, "refuted", criterion(0.9, "reproduces"),
                                             criterion(0.25, "refuted", name="second")))
        raise AssertionError("Z9 refuted on digits-mlp")
    record_property("evidence", evidence(request, setting, "reproduces", criterion(0.9, "reproduces"),
                                         finding=REFUTED_AS_DECLARED))
    pytest.fail("declared finding now reproduces: Z9 on synthetic16-cnn")


def test_not_a_claim(record_property):
    record_property("evidence", {"not": "a claim"})


def test_negative_control_z1_copies_are_refuted():
    pass
'''

FIELDS = ("claim", "source", "setting", "outcome", "skip_reason", "message")
# nodeid -> (claim, source, setting, outcome, skip_reason, message), verdict of the evidence, earlier verdicts
EXPECTED = {
    "test_claims.py::test_z1[digits-mlp]": (
        ("Z1", "[Z] Fig. 1", "digits-mlp", "passed", None, None), "reproduces", []),
    "test_claims.py::test_z1[synthetic16-cnn]": (
        ("Z1", "[Z] Fig. 1", "synthetic16-cnn", "xfailed", "declared finding: measured 0.3 < 0.5",
         "AssertionError: Z1 refuted on synthetic16-cnn: score 0.3 [0.2, 0.4] >= 0.5"), "refuted", []),
    "test_claims.py::test_z2_fails[made-up]": (
        ("Z2", "[Z] Tab. 2", "made-up", "failed", None,
         "AssertionError: Z2 inconclusive on made-up at the seed cap 40"), "inconclusive", []),
    "test_claims.py::test_z3_errors_in_setup[big]": (
        ("Z3", None, "big", "error", None, "RuntimeError: setup broke"), None, []),
    "test_claims.py::test_z4_skipped": (("Z4", None, None, "skipped", "no data here", None), None, []),
    "test_claims.py::test_z5_errors_in_teardown": (
        ("Z5", None, "digits-mlp", "error", None, "RuntimeError: teardown broke"), "reproduces", ["refuted"]),
    "test_claims.py::test_z6_xpasses": (("Z6", None, "synthetic16-cnn", "xpassed", "may not reproduce", None),
                                        "reproduces", []),
    "test_claims.py::test_z7_xpasses_strictly": (
        ("Z7", None, None, "failed", None, "[XPASS(strict)] said not to reproduce"), None, []),
    "test_claims.py::test_z8_lacks_a_fixture": (
        ("Z8", None, None, "error", None, "fixture 'no_such_fixture' not found"), None, []),
    "test_claims.py::test_z9[digits-mlp]": (
        ("Z9", None, "digits-mlp", "failed", None, "AssertionError: Z9 refuted on digits-mlp"), "refuted", []),
    "test_claims.py::test_z9[synthetic16-cnn]": (
        ("Z9", None, "synthetic16-cnn", "failed", None,
         "declared finding now reproduces: Z9 on synthetic16-cnn"), "reproduces", []),
}


@pytest.fixture
def session(pytester, tmp_path, monkeypatch):
    """``session(*args, render="ok")``: a subprocess pytest run of the claim tests, reporting into tmp_path/report.

    A subprocess each: torch does not survive being imported twice in one interpreter.
    """
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest(CONFTEST)
    markers = "\n    ".join(INI["markers"])
    pytester.makeini(f"[pytest]\naddopts = {shlex.join(INI['addopts'])}\nmarkers =\n    {markers}\n")
    pytester.makepyfile(test_claims=CLAIM_TESTS)
    # Plugins the sessions do not need are left out: each costs import time in every process.
    quiet = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")

    def run(*args: str, render: str = "ok") -> pytest.RunResult:
        monkeypatch.setenv("RENDER", render)
        return pytester.runpytest_subprocess(*quiet, f"--runs-dir={tmp_path / 'runs'}",
                                             f"--report-dir={tmp_path / 'report'}", *args)

    return run


@pytest.mark.integration
@pytest.mark.parametrize("args", [("-p", "no:xdist"), ("-n", "2")], ids=["serial", "xdist"])
def test_results_json_records_every_claim_test_and_the_terminal_shows_them(session, tmp_path, args):
    result = session(*args)
    result.assert_outcomes(passed=4, failed=4, errors=3, skipped=1, xfailed=1, xpassed=1)
    results = json.loads((tmp_path / "report" / "results.json").read_text())

    records = sorted(results["claims"], key=lambda r: r["nodeid"])  # xdist runs them in any order
    assert [r["nodeid"] for r in records] == sorted(EXPECTED)
    for record in records:
        fields, verdict, earlier = EXPECTED[record["nodeid"]]
        assert tuple(record[f] for f in FIELDS) == fields, record["nodeid"]
        assert (record["evidence"] or {}).get("outcome") == verdict, record["nodeid"]
        assert [ev["outcome"] for ev in record["evidence_more"]] == earlier, record["nodeid"]
        assert record["duration_s"] >= 0
    z2 = next(r for r in records if r["claim"] == "Z2")["evidence"]
    assert z2["looks"] == [5, 10, 20, 40] and math.isnan(z2["criteria"][0]["estimate"])

    assert results["schema_version"] == SCHEMA_VERSION == 3
    assert results["summary"] == {"passed": 1, "failed": 4, "xfailed": 1, "xpassed": 1, "skipped": 1, "error": 3}
    # Every test, by kind: pytest's 4 passed are these 3 and Z5, whose teardown error is its outcome here.
    only_passed = {"passed": 1, "failed": 0, "xfailed": 0, "xpassed": 0, "skipped": 0, "error": 0}
    assert results["tests"] == {"claim": results["summary"], "negative_control": only_passed, "other": only_passed}
    assert results["git"] == {"commit": None, "dirty": None}  # the pytester folder is no git checkout
    assert results["command"][0] == "pytest" and f"--report-dir={tmp_path / 'report'}" in results["command"]
    assert results["duration_s"] > 0 and results["created"].endswith("+00:00")
    assert results["machine"]["device"] == str(resolve_device("auto"))
    assert {"torch", "numpy", "scipy", "python", "cpu_count", "cuda"} <= set(results["machine"])
    assert results["options"] == {"runs_dir": str(tmp_path / "runs"), "data_root": results["options"]["data_root"],
                                  "device": "auto", "seeds": None, "seed_offset": 0,
                                  "markexpr": "not gpu and not slow and not integration"}
    # Settings: the registered ones the records ran on ("made-up" and "big" are not settings).
    assert set(results["settings"]) == {"digits-mlp", "synthetic16-cnn"}
    digits = results["settings"]["digits-mlp"]
    assert digits["cache_key"] == settings.get("digits-mlp").cache_key() and digits["tier"] == "smoke"
    assert results["catalog"] == {"Z1": {"id": "Z1", "title": "claim Z1"}, "Z2": {"id": "Z2", "title": "claim Z2"}}
    # The renderer got the whole document.
    assert (tmp_path / "report" / "index.html").read_text().split() == sorted(results)

    result.stdout.fnmatch_lines_random([
        "claim *setting *statistic *verdict *seeds *test",
        "Z1 *digits-mlp *score: 0.9 [[]0.8, 1[]] >= 0.5 *reproduces *5→10 *passed",
        "Z1 *synthetic16-cnn *score: 0.3 [[]0.2, 0.4[]] >= 0.5 *refuted (finding) *5 *xfailed",
        "Z2 *made-up *score: NaN [[]NaN, NaN[]] >= 0.5 *inconclusive *5→10→20→40 *failed",
        "Z3 *big *RuntimeError: setup broke *- *- *error",
        "Z4 *- *no data here *- *- *skipped",
        "Z8 *- *fixture 'no_such_fixture' not found *- *- *error",
        "Z9 *digits-mlp *second: 0.25 [[]0.15, 0.35[]] >= 0.5 *refuted *5 *failed",
        "Z9 *synthetic16-cnn *score: 0.9 [[]0.8, 1[]] >= 0.5 *reproduces *5 *failed",
        "counted: 11 claim tests (1 passed, 4 failed, 1 xfailed, 1 xpassed, 1 skipped, 3 errors), "
        "1 negative control (1 passed), 1 other test (1 passed); "
        "13 tests in all: 3 passed, 4 failed, 1 xfailed, 1 xpassed, 1 skipped, 3 errors",
        f"results: {tmp_path / 'report' / 'results.json'}",
        f"report: {tmp_path / 'report' / 'index.html'}, {tmp_path / 'report' / 'summary.md'}",
    ])
    assert "not_a_claim" not in json.dumps(results) and result.stdout.str().count("claim verdicts") == 1


@pytest.mark.integration
def test_a_failing_renderer_keeps_results_json_and_the_exit_status(session, tmp_path):
    result = session("-p", "no:xdist", "-k", "z1", render="raise")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["results: *results.json",
                                 "report: WARNING, not rendered (RuntimeError: renderer broke); "
                                 "results.json is complete"])
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert [r["outcome"] for r in results["claims"]] == ["passed", "xfailed"]
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["results.json"]  # no temporary file left


def test_render_reports_a_missing_renderer_as_its_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "reports.render", None)  # its import now fails, as before render.py exists
    assert plugin.render({}, tmp_path) == ({}, "ModuleNotFoundError: import of reports.render halted; "
                                               "None in sys.modules")


def test_setting_is_the_setting_argument_else_the_parametrize_id():
    assert records.setting_of({"setting": "digits-mlp"}, "digits-mlp") == "digits-mlp"
    assert records.setting_of({"setting": settings.get("synthetic16-cnn")}, "s0") == "synthetic16-cnn"
    assert records.setting_of({"size": 3}, "3") == "3"
    assert records.setting_of({}, None) is None


@pytest.mark.parametrize(("nodeid", "is_claim_test", "kind"), [
    ("claims/test_e.py::test_n1_ensembles_beat_members[digits-mlp]", True, "claim"),
    ("claims/test_e.py::test_negative_control_n1_copies_are_refuted[digits-mlp]", False, "negative_control"),
    ("claims/test_e.py::TestN::test_negative_control_n2", False, "negative_control"),
    ("claims/test_e.py::test_negative_control_marked_as_a_claim", True, "claim"),
    ("tests/test_x.py::test_helper[test_negative_control_id]", False, "other"),
    ("tests/test_negative_control_module.py::test_other", False, "other"),
])
def test_a_test_is_a_claim_test_by_its_marker_a_negative_control_by_its_name(nodeid, is_claim_test, kind):
    assert records.kind_of_test(nodeid, is_claim_test) == kind


def test_tests_section_counts_each_kind_per_outcome_every_key_present():
    section = records.tests_section([("claim", "passed"), ("claim", "xfailed"), ("negative_control", "passed"),
                                     ("claim", "passed")])
    assert section["claim"] == {"passed": 2, "failed": 0, "xfailed": 1, "xpassed": 0, "skipped": 0, "error": 0}
    assert sum(section["negative_control"].values()) == 1 and sum(section["other"].values()) == 0
    assert list(section) == ["claim", "negative_control", "other"]


@pytest.mark.parametrize(("results", "text"), [
    ({"tests": {"claim": {"passed": 29, "xfailed": 3}, "negative_control": {"passed": 45}, "other": {}}},
     "32 claim tests (29 passed, 3 xfailed), 45 negative controls (45 passed); 77 tests in all: 74 passed, 3 xfailed"),
    ({"tests": {"claim": {}, "negative_control": {"passed": 1}, "other": {"error": 1}}},
     "0 claim tests, 1 negative control (1 passed), 1 other test (1 error); 2 tests in all: 1 passed, 1 error"),
    ({"tests": {"claim": {}}}, "0 claim tests; 0 tests in all"),
    ({"summary": {"passed": 2, "error": 2}, "claims": []},
     "4 claim tests (2 passed, 2 errors); negative controls and other tests not counted in this file"),
    ({"claims": [{"outcome": "failed"}]},
     "1 claim test (1 failed); negative controls and other tests not counted in this file"),
], ids=["claims-and-controls", "singular", "nothing", "summary-only", "records-only"])
def test_counts_text_says_what_it_counts_and_adds_up_to_pytests_count(results, text):
    assert counts_text(results) == text


def test_git_info_is_null_outside_a_checkout_and_without_git(tmp_path, monkeypatch):
    assert provenance.git_info(tmp_path) == {"commit": None, "dirty": None}
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable to be found
    assert provenance.git_info(ROOT) == {"commit": None, "dirty": None}


def test_write_results_replaces_the_file_and_keeps_nan(tmp_path):
    path = tmp_path / "out" / "results.json"
    records.write_results(path, {"x": 1})
    records.write_results(path, {"x": float("nan"), "y": [float("inf")]})
    loaded = json.loads(path.read_text())
    assert math.isnan(loaded["x"]) and loaded["y"] == [math.inf]
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]


def test_sections_keep_only_known_settings_and_catalogued_claims(monkeypatch):
    assert list(records.settings_section(["digits-mlp", "nope", "digits-mlp"])) == ["digits-mlp"]
    info = types.SimpleNamespace(to_dict=lambda: {"id": "T1"})
    monkeypatch.setattr(records, "CATALOG", {"T1": info})
    assert records.catalog_section(["T1", "X9", "T1"]) == {"T1": {"id": "T1"}}


def criterion(name: str, outcome: str, estimate: float = 0.2, ci=(0.1, 0.3)) -> dict:
    return {"name": name, "estimate": estimate, "threshold": 0.1, "direction": "<=", "ci": list(ci),
            "level": 0.9875, "limits": [0.0, 1.0], "outcome": outcome}


@pytest.mark.parametrize(("outcomes", "shown"), [
    (("reproduces", "inconclusive", "refuted", "refuted"), "c"),
    (("reproduces", "inconclusive", "inconclusive"), "b"),
    (("reproduces", "reproduces"), "a"),
], ids=["first-refuted", "first-inconclusive", "first"])
def test_headline_is_the_first_refuted_else_inconclusive_else_first_criterion(outcomes, shown):
    criteria = [criterion(name, outcome) for name, outcome in zip("abcd", outcomes)]
    assert headline({"criteria": criteria}) == f"{shown}: 0.2 [0.1, 0.3] <= 0.1"


def test_headline_numbers_have_five_significant_digits_and_no_level():
    evidence = {"criteria": [criterion("cos", "reproduces", estimate=0.1234567, ci=(-math.inf, 0.9876543))]}
    assert headline(evidence) == "cos: 0.12346 [−∞, 0.98765] <= 0.1"
    assert headline({"criteria": []}) is None


def test_verdict_rows_show_the_three_verdicts_a_finding_and_the_looks():
    def rec(claim, outcome, test, looks=(5,), finding=None):
        evidence = {"outcome": outcome, "criteria": [criterion("s", outcome)], "looks": list(looks),
                    "n_seeds": looks[-1], "finding": finding}
        return {"claim": claim, "setting": "digits-mlp", "evidence": evidence, "outcome": test}

    declared = {"expected": "refuted", "why": "as measured"}
    records = [rec("A", "reproduces", "passed", (5, 10)), rec("B", "refuted", "failed"),
               rec("C", "inconclusive", "failed", (5, 10, 20)), rec("D", "refuted", "xfailed", finding=declared),
               rec("E", "reproduces", "failed", finding=declared),
               {"claim": "F", "setting": None, "evidence": None, "outcome": "skipped", "skip_reason": "no GPU",
                "message": None}]
    assert [row[3:] for row in table.verdict_rows(records)] == [
        ("reproduces", "5→10", "passed"), ("refuted", "5", "failed"), ("inconclusive", "5→10→20", "failed"),
        ("refuted (finding)", "5", "xfailed"), ("reproduces", "5", "failed"), ("-", "-", "skipped")]


def test_a_dry_runs_verdict_says_so_whatever_the_findings():
    evidence = {"outcome": "refuted", "finding": {"expected": "undecidable", "why": "-"}, "dry_run": True}
    assert table.verdict_label(evidence) == "refuted (dry run)"
    assert table.verdict_label({**evidence, "dry_run": False}) == "refuted (undecidable)"
