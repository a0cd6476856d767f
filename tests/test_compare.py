"""Tests of ``reports.compare``: matching claims, kinds of change, moved statistics, the CLI."""

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
    compare,
    main,
    relative_change,
    render_text,
    to_json,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def criterion(name="headline", estimate=0.9, threshold=0.5, direction=">=", ci=(0.8, 1.0)):
    """One criterion as ``Evidence.to_dict`` writes it (``value`` and ``passed`` derived as there)."""
    value = estimate if ci is None else (ci[0] if direction.startswith(">") else ci[1])
    passed = {">=": value >= threshold, ">": value > threshold, "<=": value <= threshold, "<": value < threshold}
    return {"name": name, "estimate": estimate, "threshold": threshold, "direction": direction,
            "ci": None if ci is None else list(ci), "level": None if ci is None else 0.95,
            "value": value, "passed": passed[direction]}


def record(claim="T1", setting="digits-mlp", outcome=None, criteria=None, evidence=True, message=None,
           skip_reason=None):
    """A claim record of schema version 2; the verdict follows the criteria, the outcome the verdict."""
    criteria = [criterion()] if criteria is None else criteria
    verdict = "PASS" if all(c["passed"] for c in criteria) else "FAIL"
    ev = {"claim": claim, "setting": setting, "source": "[WB]", "seeds": [0, 1, 2, 3, 4], "n_seeds": 5,
          "verdict": verdict, "criteria": criteria, "details": {}, "marker": {"id": claim, "source": "[WB]"}}
    return {"nodeid": f"claims/test_x.py::test_{(claim or 'x').lower()}[{setting}]", "claim": claim, "source": "[WB]",
            "setting": setting, "outcome": outcome or ("passed" if verdict == "PASS" else "failed"),
            "duration_s": 0.1, "skip_reason": skip_reason, "message": message, "evidence": ev if evidence else None}


def failing(claim="T1", setting="digits-mlp", **kwargs):
    """A record whose only criterion fails."""
    return record(claim, setting, criteria=[criterion(estimate=0.3, ci=(0.2, 0.4))], **kwargs)


def skipped(claim="T1", setting="digits-mlp", reason="gpu tier: CUDA is not available"):
    return record(claim, setting, outcome="skipped", evidence=False, skip_reason=reason)


def results(*records):
    """A results document of schema version 2 holding ``records``."""
    return {"schema_version": 2, "created": "2026-11-22T04:10:00+00:00", "duration_s": 1.0,
            "command": ["pytest"], "git": {"commit": "668157a0", "dirty": False},
            "machine": {"device": "cpu", "cuda": None}, "options": {}, "settings": {}, "summary": {},
            "claims": list(records)}


def only_change(old, new):
    comparison = compare(results(*old), results(*new))
    assert len(comparison.changes) == 1, comparison.changes
    return comparison.changes[0]


# --- verdicts and outcomes -----------------------------------------------------------------------

def test_identical_results_have_no_changes():
    doc = results(record("T1"), failing("F1", outcome="xfailed"), skipped("I1"))
    comparison = compare(doc, doc)
    assert comparison.changes == () and comparison.moved == () and not comparison.has_regression


def test_schema_example_fixture_compared_with_itself_has_no_changes():
    # The renderer's fixture: every outcome, NaN intervals, a record without evidence.
    doc = json.loads((REPO_ROOT / "tests" / "data" / "results_v2.json").read_text(encoding="utf-8"))
    comparison = compare(doc, doc)
    assert (comparison.changes, comparison.moved) == ((), ())


def test_pass_to_fail_is_a_regression():
    change = only_change([record()], [failing()])
    assert (change.kind, change.old.verdict, change.new.verdict) == (REGRESSION, "PASS", "FAIL")
    assert (change.claim, change.setting) == ("T1", "digits-mlp")


def test_fail_to_pass_is_an_improvement():
    change = only_change([failing()], [record()])
    assert change.kind == IMPROVEMENT
    assert not compare(results(failing()), results(record())).has_regression


@pytest.mark.parametrize("xpass", [
    {"outcome": "xpassed"},
    # pytest reports a strict xfail that passes as failed, with this message.
    {"outcome": "failed", "message": "[XPASS(strict)] N1 does not plateau on digits-mlp"},
], ids=["xpassed", "strict-failed"])
def test_strict_xfail_that_now_passes_needs_attention_but_is_no_regression(xpass):
    change = only_change([failing("N1", outcome="xfailed")], [record("N1", **xpass)])
    assert change.kind == ATTENTION
    assert "no longer reproduces the non-reproduction" in change.reason


def test_xpass_back_to_the_recorded_non_reproduction_is_no_regression():
    change = only_change([record("N1", outcome="xpassed")], [failing("N1", outcome="xfailed")])
    assert change.kind == CHANGED


def test_pass_to_xfail_is_a_regression():
    # Marking a passing claim xfail must not hide that its verdict fell.
    assert only_change([record()], [failing(outcome="xfailed")]).kind == REGRESSION


def test_error_without_a_verdict_after_a_pass_is_a_regression():
    change = only_change([record()], [record(outcome="error", evidence=False, message="DivergedError: loss nan")])
    assert change.kind == REGRESSION and "DivergedError" in change.reason


def test_expected_failure_that_now_errors_is_a_regression():
    new = record("F1", outcome="error", evidence=False, message="RuntimeError")
    assert only_change([failing("F1", outcome="xfailed")], [new]).kind == REGRESSION


def test_fail_to_error_is_a_change_not_a_regression():
    new = record(outcome="error", evidence=False, message="RuntimeError")
    assert only_change([failing()], [new]).kind == CHANGED


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


# --- moved statistics ----------------------------------------------------------------------------

def test_statistic_with_non_overlapping_intervals_is_listed():
    new = record(criteria=[criterion(estimate=0.65, ci=(0.6, 0.7))])
    comparison = compare(results(record()), results(new))
    assert comparison.changes == ()  # both PASS: moved, not a verdict change
    (moved,) = comparison.moved
    assert (moved.criterion, moved.old_ci, moved.new_ci) == ("headline", (0.8, 1.0), (0.6, 0.7))
    assert "do not overlap" in moved.reason


def test_statistic_with_overlapping_intervals_is_not_listed():
    new = record(criteria=[criterion(estimate=0.75, ci=(0.55, 0.85))])
    assert compare(results(record()), results(new)).moved == ()


@pytest.mark.parametrize("factor, listed", [(1 + RELATIVE_TOLERANCE / 2, False), (1 + 2 * RELATIVE_TOLERANCE, True)])
def test_statistic_without_intervals_is_listed_beyond_the_relative_tolerance(factor, listed):
    old = record(criteria=[criterion(estimate=0.1, threshold=0.5, direction="<=", ci=None)])
    new = record(criteria=[criterion(estimate=0.1 * factor, threshold=0.5, direction="<=", ci=None)])
    comparison = compare(results(old), results(new))
    assert len(comparison.moved) == int(listed)
    assert not comparison.has_regression  # a moved statistic alone never is one


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


@pytest.mark.parametrize("old, new, expected", [
    (1.0, 1.0, 0.0), (0.0, 0.0, 0.0), (1.0, 0.5, 0.5), (0.5, 1.0, 0.5), (1.0, -1.0, 2.0),
    (math.nan, math.nan, 0.0), (1.0, math.nan, math.inf), (math.inf, 1.0, math.inf)])
def test_relative_change(old, new, expected):
    assert relative_change(old, new) == expected


# --- output --------------------------------------------------------------------------------------

def test_text_report_has_every_section_and_the_changes():
    old = results(record("T1"), failing("I2"), record("T2"), skipped("S1"))
    new = results(failing("T1"), record("I2"), record("T2", criteria=[criterion(estimate=0.6, ci=(0.55, 0.65))]),
                  record("N2"))
    text = render_text(compare(old, new), "a/results.json", "b/results.json")
    for expected in ("old: a/results.json", "Regressions (1)", "T1 digits-mlp: PASS (passed) -> FAIL (failed)",
                     "Other verdict changes (1)", "[improvement] I2", "Moved statistics (reported only) (3)",
                     "T2 digits-mlp / headline: 0.9 [0.8, 1] -> 0.6 [0.55, 0.65]", "New and removed claims (2)",
                     "[added] N2", "[removed] S1", "1 regression: exit status 1"):
        assert expected in text


def test_json_output_round_trips():
    doc = json.loads(json.dumps(to_json(compare(results(record()), results(failing())))))
    assert doc["regression"] is True
    assert doc["changes"][0]["kind"] == REGRESSION and doc["changes"][0]["new"]["verdict"] == "FAIL"


# --- command line --------------------------------------------------------------------------------

def write(folder: Path, doc) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reports.compare", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


def test_cli_identical_files_exit_0(tmp_path):
    old = write(tmp_path / "old", results(record()))
    proc = run_cli(old, old)
    assert proc.returncode == 0, proc.stderr
    assert "Regressions (0)" in proc.stdout and "0 regressions" in proc.stdout


def test_cli_regression_between_folders_exits_1(tmp_path):
    write(tmp_path / "old", results(record()))
    write(tmp_path / "new", results(failing()))
    proc = run_cli(tmp_path / "old", tmp_path / "new")
    assert proc.returncode == 1, proc.stderr
    assert ("T1 digits-mlp: PASS (passed) -> FAIL (failed): the claim no longer holds: headline 0.2 >= 0.5"
            in proc.stdout)


def test_cli_json(tmp_path):
    old, new = write(tmp_path / "old", results(failing())), write(tmp_path / "new", results(record()))
    proc = run_cli(old, new, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["regression"], doc["changes"][0]["kind"]) == (False, IMPROVEMENT)


def test_cli_missing_file_exits_2(tmp_path):
    old = write(tmp_path / "old", results(record()))
    proc = run_cli(old, tmp_path / "nowhere" / "results.json")
    assert proc.returncode == 2
    assert "nowhere/results.json: no such file" in proc.stderr and proc.stdout == ""


def test_cli_folder_without_results_exits_2(tmp_path):
    old = write(tmp_path / "old", results(record()))
    (tmp_path / "empty").mkdir()
    proc = run_cli(old, tmp_path / "empty")
    assert proc.returncode == 2 and "the folder has no results.json" in proc.stderr


@pytest.mark.parametrize("doc, message", [
    ({**results(record()), "schema_version": 1}, "unsupported schema_version 1: this tool reads version 2"),
    ({k: v for k, v in results(record()).items() if k != "schema_version"}, "unsupported schema_version None"),
    ("{not json", "not valid JSON"),
    ([1, 2], "expected a JSON object"),
    ({**results(), "claims": [{"outcome": "passed"}]}, "'claims' must be a list of records"),
], ids=["v1", "no-version", "not-json", "not-object", "bad-claims"])
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


def test_cli_record_of_the_wrong_shape_is_bad_input_not_a_regression(tmp_path):
    record = {"nodeid": "claims/t.py::t[s]", "claim": "T1", "setting": "s", "outcome": "passed",
              "evidence": {"verdict": "PASS", "criteria": 5}}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"schema_version": 2, "claims": [record]}))
    done = subprocess.run([sys.executable, "-m", "reports.compare", str(path), str(path)], capture_output=True,
                          text=True, cwd=REPO_ROOT)
    assert done.returncode == 2 and "does not follow the schema" in done.stderr


def test_cli_undecodable_file_is_bad_input(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"schema_version": 2, "claims": [], "x": "\xe9"}')
    done = subprocess.run([sys.executable, "-m", "reports.compare", str(path), str(path)], capture_output=True,
                          text=True, cwd=REPO_ROOT)
    assert done.returncode == 2 and "not valid JSON" in done.stderr
