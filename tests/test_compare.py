"""Tests of ``reports.compare``: matching claims, kinds of change, moved statistics, seed counts, schema 2, the CLI."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from reports.compare import (
    ADDED,
    ATTENTION,
    CHANGED,
    IMPROVEMENT,
    REGRESSION,
    RELATIVE_TOLERANCE,
    REMOVED,
    SeedChange,
    compare,
    main,
    relative_change,
    render_text,
    to_json,
)
from reports.results import INCONCLUSIVE, LEGACY_FAIL, LEGACY_PASS, REFUTED, REPRODUCES

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = REPO_ROOT / "tests" / "data"
DECLARED = {"expected": REFUTED, "why": "digits saturates early"}


def criterion_outcome(ci, threshold, direction) -> str:
    """The criterion's verdict from its interval, as harness.evidence decides it (ties aside)."""
    lower, upper = ci
    if direction.startswith(">"):
        return REPRODUCES if lower >= threshold else REFUTED if upper < threshold else INCONCLUSIVE
    return REPRODUCES if upper <= threshold else REFUTED if lower > threshold else INCONCLUSIVE


def criterion(name="headline", estimate=0.9, threshold=0.5, direction=">=", ci=(0.8, 1.0)):
    """One criterion as ``Evidence.to_dict`` writes it (schema version 3)."""
    return {"name": name, "estimate": estimate, "threshold": threshold, "direction": direction, "ci": list(ci),
            "level": 0.9875, "limits": [-math.inf, math.inf], "outcome": criterion_outcome(ci, threshold, direction)}


def record(claim="T1", setting="digits-mlp", outcome=None, criteria=None, evidence=True, message=None,
           skip_reason=None, looks=(5,), finding=None):
    """A claim record of schema version 3; the verdict follows the criteria, the test outcome the verdict
    (xfailed for a declared finding refuted as declared)."""
    criteria = [criterion()] if criteria is None else criteria
    outcomes = {c["outcome"] for c in criteria}
    verdict = REFUTED if REFUTED in outcomes else REPRODUCES if outcomes == {REPRODUCES} else INCONCLUSIVE
    ev = {"claim": claim, "setting": setting, "source": "[WB]", "seeds": list(range(looks[-1])), "n_seeds": looks[-1],
          "looks": list(looks), "max_seeds": 40, "outcome": verdict, "criteria": criteria, "details": {},
          "marker": {"id": claim, "source": "[WB]"}, "finding": finding}
    expected = "passed" if verdict == REPRODUCES and finding is None else (
        "xfailed" if finding is not None and finding["expected"] == verdict else "failed")
    return {"nodeid": f"claims/test_x.py::test_{(claim or 'x').lower()}[{setting}]", "claim": claim, "source": "[WB]",
            "setting": setting, "outcome": outcome or expected, "duration_s": 0.1, "skip_reason": skip_reason,
            "message": message, "evidence": ev if evidence else None, "evidence_more": []}


def refuted(claim="T1", setting="digits-mlp", **kwargs):
    """A record whose only criterion's interval lies below its threshold."""
    return record(claim, setting, criteria=[criterion(estimate=0.3, ci=(0.2, 0.4))], **kwargs)


def inconclusive(claim="T1", setting="digits-mlp", **kwargs):
    """A record whose only criterion's interval straddles its threshold."""
    return record(claim, setting, criteria=[criterion(estimate=0.5, ci=(0.4, 0.6))], **kwargs)


def skipped(claim="T1", setting="digits-mlp", reason="gpu tier: CUDA is not available"):
    return record(claim, setting, outcome="skipped", evidence=False, skip_reason=reason)


def as_v2(rec: dict) -> dict:
    """The record as schema version 2 wrote it: PASS/FAIL on the compared bound, no looks, cap or finding."""
    if rec["evidence"] is None:
        return rec
    ev = {k: v for k, v in rec["evidence"].items() if k not in ("looks", "max_seeds", "outcome", "finding")}
    ev["criteria"] = [{**{k: v for k, v in c.items() if k not in ("limits", "outcome")},
                       "value": c["ci"][0] if c["direction"].startswith(">") else c["ci"][1],
                       "passed": c["outcome"] == REPRODUCES} for c in ev["criteria"]]
    ev["verdict"] = "PASS" if all(c["passed"] for c in ev["criteria"]) else "FAIL"
    return {**rec, "evidence": ev}


def results(*records, version=3):
    """A results document of ``version`` holding ``records``."""
    return {"schema_version": version, "created": "2026-11-22T04:10:00+00:00", "duration_s": 1.0,
            "command": ["pytest"], "git": {"commit": "668157a0", "dirty": False},
            "machine": {"device": "cpu", "cuda": None}, "options": {}, "settings": {}, "summary": {},
            "claims": list(records)}


def results_v2(*records):
    return results(*map(as_v2, records), version=2)


def only_change(old, new):
    comparison = compare(results(*old), results(*new))
    assert len(comparison.changes) == 1, comparison.changes
    return comparison.changes[0]


# --- verdicts and outcomes -----------------------------------------------------------------------

def test_identical_results_have_no_changes():
    doc = results(record("T1"), refuted("F1", finding=DECLARED), inconclusive("I2"), skipped("I1"))
    comparison = compare(doc, doc)
    assert comparison.changes == comparison.moved == comparison.seeds == () and not comparison.has_regression


@pytest.mark.parametrize("name", ["results_v3.json", "results_v2.json"])
def test_schema_example_fixtures_compared_with_themselves_have_no_changes(name):
    # The renderer's fixtures: every outcome and verdict, NaN intervals, records without evidence.
    doc = json.loads((DATA / name).read_text(encoding="utf-8"))
    comparison = compare(doc, doc)
    assert (comparison.changes, comparison.moved, comparison.seeds) == ((), (), ())


@pytest.mark.parametrize("fallen", [refuted, inconclusive])
def test_reproduces_to_refuted_or_inconclusive_is_a_regression(fallen):
    change = only_change([record()], [fallen()])
    assert (change.kind, change.old.verdict, change.new.verdict) == (REGRESSION, REPRODUCES, fallen.__name__)
    assert (change.claim, change.setting) == ("T1", "digits-mlp")
    assert change.reason.startswith(f"the claim no longer reproduces ({fallen.__name__}): headline: ")


@pytest.mark.parametrize("before", [refuted, inconclusive])
def test_refuted_or_inconclusive_to_reproduces_is_an_improvement(before):
    comparison = compare(results(before()), results(record()))
    (change,) = comparison.changes
    assert change.kind == IMPROVEMENT and f"({before.__name__} before: headline" in change.reason
    assert not comparison.has_regression


@pytest.mark.parametrize(("old", "new"), [(refuted, inconclusive), (inconclusive, refuted)])
def test_between_refuted_and_inconclusive_is_a_change(old, new):
    change = only_change([old()], [new()])
    assert change.kind == CHANGED and change.reason == f"{old.__name__} (failed) -> {new.__name__} (failed)"


def test_declared_finding_that_now_reproduces_needs_attention_but_is_no_regression():
    new = record("N1", finding=DECLARED, message="Failed: declared finding now reproduces: N1 on digits-mlp")
    comparison = compare(results(refuted("N1", finding=DECLARED)), results(new))
    (change,) = comparison.changes
    assert change.kind == ATTENTION and not comparison.has_regression
    assert change.new.outcome == "failed" and "revise the finding" in change.reason
    assert change.new.describe() == "reproduces (failed, declared finding refuted)"


def test_declared_finding_back_to_refuted_is_no_regression():
    change = only_change([record("N1", finding=DECLARED)], [refuted("N1", finding=DECLARED)])
    assert change.kind == CHANGED and change.reason == "back to the declared finding (xfailed)"


def test_declared_finding_that_reproduced_and_is_now_inconclusive_is_a_regression():
    change = only_change([record("N1", finding=DECLARED)], [inconclusive("N1", finding=DECLARED)])
    assert change.kind == REGRESSION and change.new.outcome == "failed"


def test_reproduces_to_a_declared_finding_is_a_regression():
    # Declaring a finding must not hide that the verdict fell.
    change = only_change([record()], [refuted(finding=DECLARED)])
    assert change.kind == REGRESSION and change.new.outcome == "xfailed"


def test_declared_finding_that_turns_inconclusive_is_a_regression():
    # Inconclusive at the seed cap fails the test: the run now fails where it xfailed.
    change = only_change([refuted("N1", finding=DECLARED)], [inconclusive("N1", finding=DECLARED)])
    assert change.kind == REGRESSION and change.reason.startswith("test now failed")


def test_error_without_a_verdict_after_reproducing_is_a_regression():
    change = only_change([record()], [record(outcome="error", evidence=False, message="DivergedError: loss nan")])
    assert change.kind == REGRESSION and "DivergedError" in change.reason


def test_declared_finding_that_now_errors_is_a_regression():
    new = record("F1", outcome="error", evidence=False, message="RuntimeError")
    assert only_change([refuted("F1", finding=DECLARED)], [new]).kind == REGRESSION


def test_refuted_to_error_is_a_change_not_a_regression():
    new = record(outcome="error", evidence=False, message="RuntimeError")
    assert only_change([refuted()], [new]).kind == CHANGED


# --- missing, skipped and new claims -------------------------------------------------------------

def test_claim_missing_from_new_is_a_regression():
    comparison = compare(results(record("T1"), record("T2")), results(record("T1")))
    (change,) = comparison.changes
    assert (change.kind, change.claim, change.new) == (REGRESSION, "T2", None)
    assert comparison.has_regression


def test_claim_that_ran_and_is_now_skipped_is_a_regression():
    change = only_change([record()], [skipped()])
    assert change.kind == REGRESSION and "CUDA is not available" in change.reason


def test_claim_skipped_in_both_is_no_change():
    assert compare(results(skipped(reason="a")), results(skipped(reason="b"))).changes == ()


def test_skipped_claim_that_disappears_is_removed_not_a_regression():
    change = only_change([skipped()], [])
    assert change.kind == REMOVED


def test_new_claim_is_added():
    comparison = compare(results(record("T1")), results(record("T1"), record("X1", "cifar10-smallcnn")))
    (change,) = comparison.changes
    assert (change.kind, change.claim, change.setting, change.old) == (ADDED, "X1", "cifar10-smallcnn", None)
    assert not comparison.has_regression


def test_skipped_claim_that_now_runs_is_added():
    assert only_change([skipped()], [record()]).kind == ADDED


def test_claims_match_by_claim_and_setting_not_by_order_or_nodeid():
    old = [record("T1", "a"), record("T1", "b")]
    new = [{**record("T1", "b"), "nodeid": "claims/renamed.py::t[b]"}, record("T1", "a")]
    assert compare(results(*old), results(*new)).changes == ()


def test_records_without_a_claim_id_match_by_nodeid():
    old = {**record(), "claim": None, "evidence": None}
    new = {**old, "outcome": "failed"}
    change = only_change([old], [new])
    assert (change.kind, change.nodeid) == (REGRESSION, old["nodeid"])


# --- moved statistics and seed counts ------------------------------------------------------------

def test_statistic_with_non_overlapping_intervals_is_listed():
    new = record(criteria=[criterion(estimate=0.65, ci=(0.6, 0.7))])
    comparison = compare(results(record()), results(new))
    assert comparison.changes == ()  # both reproduce: moved, not a verdict change
    (moved,) = comparison.moved
    assert (moved.criterion, moved.old_ci, moved.new_ci) == ("headline", (0.8, 1.0), (0.6, 0.7))
    assert moved.reason == "intervals do not overlap"


def test_statistic_with_overlapping_intervals_is_not_listed():
    new = record(criteria=[criterion(estimate=0.75, ci=(0.55, 0.85))])
    assert compare(results(record()), results(new)).moved == ()


def test_unbounded_intervals_are_compared_too():
    old = record(criteria=[criterion(estimate=0.1, threshold=0.5, direction="<=", ci=(-math.inf, 0.2))])
    new = record(criteria=[criterion(estimate=0.4, threshold=0.5, direction="<=", ci=(0.3, 0.45))])
    (moved,) = compare(results(old), results(new)).moved
    assert moved.reason == "intervals do not overlap"


@pytest.mark.parametrize("factor, listed", [(1 + RELATIVE_TOLERANCE / 2, False), (1 + 2 * RELATIVE_TOLERANCE, True)])
def test_schema_2_statistic_without_an_interval_is_listed_beyond_the_relative_tolerance(factor, listed):
    def without_interval(estimate):
        rec = as_v2(record(criteria=[criterion(estimate=estimate, threshold=0.5, direction="<=", ci=(0.0, 0.2))]))
        rec["evidence"]["criteria"][0].update(ci=None, level=None, value=estimate)
        return rec

    comparison = compare(results(without_interval(0.1), version=2), results(without_interval(0.1 * factor), version=2))
    assert len(comparison.moved) == int(listed)
    assert not comparison.has_regression  # a moved statistic alone never is one


def test_statistic_that_becomes_undefined_is_listed():
    new = record(criteria=[criterion(estimate=math.nan, ci=(math.nan, math.nan))])
    (moved,) = compare(results(record()), results(new)).moved
    assert (moved.old_ci, moved.new_ci) == ((0.8, 1.0), None) and "no interval on both sides" in moved.reason


def test_changed_threshold_is_listed():
    new = record(criteria=[criterion(threshold=0.4)])
    (moved,) = compare(results(record()), results(new)).moved
    assert "threshold changed" in moved.reason


def test_criteria_match_by_name():
    old = record(criteria=[criterion("a"), criterion("b")])
    new = record(criteria=[criterion("b"), criterion("c")])
    moved = compare(results(old), results(new)).moved
    assert sorted((m.criterion, m.reason) for m in moved) == [
        ("a", "criterion only in old"), ("c", "criterion only in new")]


def test_changed_seed_count_is_listed_not_a_regression():
    comparison = compare(results(record(), inconclusive("I2")),
                         results(record(looks=(5, 10)), inconclusive("I2", looks=(5, 10, 20))))
    assert comparison.seeds == (
        SeedChange(claim="T1", setting="digits-mlp", nodeid="claims/test_x.py::test_t1[digits-mlp]", old_seeds=5,
                   new_seeds=10, old_looks="5", new_looks="5→10"),
        SeedChange(claim="I2", setting="digits-mlp", nodeid="claims/test_x.py::test_i2[digits-mlp]", old_seeds=5,
                   new_seeds=20, old_looks="5", new_looks="5→10→20"))
    assert comparison.changes == () and not comparison.has_regression


@pytest.mark.parametrize("x, y, expected", [
    (1.0, 1.0, 0.0), (0.0, 0.0, 0.0), (1.0, 0.5, 0.5), (0.5, 1.0, 0.5), (1.0, -1.0, 2.0),
    (math.nan, math.nan, 0.0), (1.0, math.nan, math.inf), (math.inf, 1.0, math.inf)])
def test_relative_change(x, y, expected):
    assert relative_change(x, y) == expected


# --- schema version 2 against version 3 ----------------------------------------------------------

@pytest.mark.parametrize(("old", "new", "kind"), [
    (record, record, None),  # PASS counts as reproduces
    (refuted, refuted, None),  # FAIL was refuted or inconclusive: no change of verdict either way
    (inconclusive, refuted, None),
    (refuted, inconclusive, None),
    (record, refuted, REGRESSION),
    (record, inconclusive, REGRESSION),
    (refuted, record, IMPROVEMENT),
], ids=["pass-reproduces", "fail-refuted", "fail-refuted-was-inconclusive", "fail-inconclusive",
        "pass-refuted", "pass-inconclusive", "fail-reproduces"])
def test_schema_2_pass_reads_as_reproduces_and_fail_as_not_reproduced(old, new, kind):
    comparison = compare(results_v2(old()), results(new()))
    assert [c.kind for c in comparison.changes] == ([kind] if kind else [])
    assert comparison.seeds == ()  # five seeds on both sides


def test_schema_2_verdicts_keep_their_labels():
    (change,) = compare(results_v2(record()), results(refuted())).changes
    assert (change.old.verdict, change.new.verdict) == (LEGACY_PASS, REFUTED)
    assert change.old.headline == "headline: 0.9 [0.8, 1] >= 0.5"  # the criterion that explains it


def test_schema_3_against_schema_2_works_too():
    (change,) = compare(results(record()), results_v2(refuted())).changes
    assert (change.kind, change.new.verdict) == (REGRESSION, LEGACY_FAIL)


def test_schema_2_xfail_against_a_declared_finding_is_no_change():
    comparison = compare(results_v2(refuted("N1", finding=DECLARED)), results(refuted("N1", finding=DECLARED)))
    assert comparison.changes == ()


@pytest.mark.parametrize("xpass", [
    {"outcome": "xpassed"},
    # pytest reports a strict xfail that passes as failed, with this message.
    {"outcome": "failed", "message": "[XPASS(strict)] N1 does not plateau on digits-mlp"},
], ids=["xpassed", "strict-failed"])
def test_schema_2_strict_xfail_that_now_passes_needs_attention(xpass):
    comparison = compare(results_v2(refuted("N1", outcome="xfailed")), results_v2(record("N1", **xpass)))
    (change,) = comparison.changes
    assert change.kind == ATTENTION and not comparison.has_regression


def test_schema_2_xpass_back_to_its_xfail_is_no_regression():
    comparison = compare(results_v2(record("N1", outcome="xpassed")), results_v2(refuted("N1", outcome="xfailed")))
    assert [c.kind for c in comparison.changes] == [CHANGED]


# --- output --------------------------------------------------------------------------------------

def test_text_report_has_every_section_and_the_changes():
    old = results(record("T1"), refuted("I2"), record("T2"), skipped("S1"), inconclusive("N3"))
    new = results(refuted("T1"), record("I2"), record("T2", criteria=[criterion(estimate=0.6, ci=(0.55, 0.65))]),
                  record("N2"), inconclusive("N3", looks=(5, 10, 20)))
    text = render_text(compare(old, new), "a/results.json", "b/results.json")
    for expected in ("old: a/results.json", "schema 3", "Regressions (1)",
                     "T1 digits-mlp: reproduces (passed) -> refuted (failed)", "Other verdict changes (1)",
                     "[improvement] I2", "Moved statistics (reported only) (3)",
                     "T2 digits-mlp / headline: 0.9 [0.8, 1] -> 0.6 [0.55, 0.65]",
                     "Seed counts changed (reported only) (1)", "N3 digits-mlp: 5 -> 20 seeds (looks 5 -> 5→10→20)",
                     "New and removed claims (2)", "[added] N2", "[removed] S1", "1 regression: exit status 1"):
        assert expected in text
    assert "note:" not in text


def test_text_report_says_how_schema_2_verdicts_were_read():
    text = render_text(compare(results_v2(record()), results(record())))
    assert "schema 2" in text and "note: schema-2 verdicts read as PASS = reproduces, FAIL = refuted or" in text


def test_json_output_round_trips():
    doc = json.loads(json.dumps(to_json(compare(results(record()), results(refuted(looks=(5, 10)))))))
    assert doc["regression"] is True
    assert doc["changes"][0]["kind"] == REGRESSION and doc["changes"][0]["new"]["verdict"] == REFUTED
    assert doc["seeds"][0]["new_looks"] == "5→10" and doc["old"]["schema_version"] == 3


# --- command line --------------------------------------------------------------------------------

def write(folder: Path, doc) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reports.compare", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.integration
def test_cli_identical_files_exit_0(tmp_path):
    old = write(tmp_path / "old", results(record()))
    proc = run_cli(old, old)
    assert proc.returncode == 0, proc.stderr
    assert "Regressions (0)" in proc.stdout and "0 regressions" in proc.stdout


@pytest.mark.integration
def test_cli_regression_between_folders_exits_1(tmp_path):
    write(tmp_path / "old", results(record()))
    write(tmp_path / "new", results(inconclusive()))
    proc = run_cli(tmp_path / "old", tmp_path / "new")
    assert proc.returncode == 1, proc.stderr
    assert ("T1 digits-mlp: reproduces (passed) -> inconclusive (failed): the claim no longer reproduces "
            "(inconclusive): headline: 0.5 [0.4, 0.6] >= 0.5" in proc.stdout)


@pytest.mark.integration
def test_cli_schema_2_against_schema_3_exits_1_on_a_regression(tmp_path):
    old, new = write(tmp_path / "old", results_v2(record())), write(tmp_path / "new", results(refuted()))
    proc = run_cli(old, new)
    assert proc.returncode == 1, proc.stderr
    assert "T1 digits-mlp: PASS (schema 2) (passed) -> refuted (failed)" in proc.stdout and "note:" in proc.stdout


@pytest.mark.integration
def test_cli_json(tmp_path):
    old, new = write(tmp_path / "old", results(refuted())), write(tmp_path / "new", results(record()))
    proc = run_cli(old, new, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["regression"], doc["changes"][0]["kind"]) == (False, IMPROVEMENT)


@pytest.mark.integration
def test_cli_missing_file_exits_2(tmp_path):
    old = write(tmp_path / "old", results(record()))
    proc = run_cli(old, tmp_path / "nowhere" / "results.json")
    assert proc.returncode == 2
    assert "nowhere/results.json: no such file" in proc.stderr and proc.stdout == ""


@pytest.mark.integration
def test_cli_folder_without_results_exits_2(tmp_path):
    old = write(tmp_path / "old", results(record()))
    (tmp_path / "empty").mkdir()
    proc = run_cli(old, tmp_path / "empty")
    assert proc.returncode == 2 and "the folder has no results.json" in proc.stderr


@pytest.mark.integration
@pytest.mark.parametrize("doc, message", [
    ({**results(record()), "schema_version": 4}, "unsupported schema_version 4: this tool reads versions 3, 2, 1"),
    ({k: v for k, v in results(record()).items() if k != "schema_version"}, "unsupported schema_version None"),
    ("{not json", "not valid JSON"),
    ([1, 2], "expected a JSON object"),
    ({**results(), "claims": [{"outcome": "passed"}]}, "'claims' must be a list of objects with 'nodeid'"),
], ids=["v4", "no-version", "not-json", "not-object", "bad-claims"])
def test_cli_bad_input_exits_2(tmp_path, doc, message):
    old = write(tmp_path / "old", results(record()))
    bad = write(tmp_path / "bad", doc)
    proc = run_cli(old, bad)
    assert proc.returncode == 2
    assert message in proc.stderr and str(bad) in proc.stderr


def test_main_in_process_matches_the_exit_rule(tmp_path, capsys):
    old, new = write(tmp_path / "old", results(record("T1"))), write(tmp_path / "new", results())
    assert main([str(old), str(new)]) == 1  # the claim disappeared
    assert "ran in old, missing from new" in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.parametrize(("version", "evidence"), [
    (3, {"outcome": REPRODUCES, "criteria": 5}),
    (2, {"verdict": "PASS", "criteria": 5}),
    (3, {"outcome": REPRODUCES, "n_seeds": 5, "criteria": [{"name": "x", "estimate": "high", "threshold": 0.5,
                                                            "direction": ">=", "ci": [0, 1], "outcome": REPRODUCES}]}),
], ids=["v3-criteria", "v2-criteria", "v3-estimate"])
def test_cli_record_of_the_wrong_shape_is_bad_input_not_a_regression(tmp_path, version, evidence):
    record = {"nodeid": "claims/t.py::t[s]", "claim": "T1", "setting": "s", "outcome": "passed", "evidence": evidence}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"schema_version": version, "claims": [record]}))
    done = run_cli(path, path)
    assert done.returncode == 2 and "does not follow the schema" in done.stderr


@pytest.mark.integration
def test_cli_undecodable_file_is_bad_input(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"schema_version": 3, "claims": [], "x": "\xe9"}')
    done = run_cli(path, path)
    assert done.returncode == 2 and "not valid JSON" in done.stderr


def test_a_version_1_file_compares_as_its_upgrade_and_names_its_version():
    v1 = {**results_v2(record("T1")), "schema_version": 1}
    comparison = compare(v1, results(record("T1")))
    assert comparison.old.schema_version == 1 and comparison.new.schema_version == 3
    assert not comparison.has_regression


@pytest.mark.integration
@pytest.mark.parametrize("module", ["reports.compare", "reports.render", "reports.readme_table"])
def test_the_reports_command_lines_start_without_torch_or_scipy(module):
    # They read JSON: importing torch and scipy.stats cost them ~3 s of start-up each (and CI's
    # subprocess tests as much per call).
    code = f"import sys, {module}; print(sorted({{'torch', 'scipy.stats'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
