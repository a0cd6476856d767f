"""Tests of reports.readme_table: the README's claims table from a results.json the tests write."""

import json

import pytest

from reports.readme_table import END, START, MarkerError, main, markdown_table, replace_block, table_rows


def criterion(name, estimate, ci, threshold, direction, outcome):
    return {"name": name, "estimate": estimate, "threshold": threshold, "direction": direction, "ci": list(ci),
            "level": 0.95, "limits": [0.0, 1.0], "outcome": outcome}


def evidence(claim, setting, outcome, criteria, finding=None):
    return {"claim": claim, "setting": setting, "source": "[X]", "criteria": criteria, "seeds": [0, 1, 2, 3, 4],
            "n_seeds": 5, "looks": [5], "max_seeds": 5, "outcome": outcome, "details": {}, "finding": finding}


def record(claim, setting, outcome, ev=None, skip_reason=None):
    return {"nodeid": f"claims/test_x.py::test_{claim.lower()}[{setting}]", "claim": claim, "source": "[X]",
            "setting": setting, "outcome": outcome, "duration_s": 1.0, "skip_reason": skip_reason,
            "message": None, "evidence": ev, "evidence_more": []}


@pytest.fixture
def results():
    # Records out of the catalog's order (I1 before T1), a declared finding, a pipe in a name, a skip.
    return {
        "schema_version": 3, "created": "2026-01-02T03:04:05+00:00", "duration_s": 1.0,
        "command": ["pytest", "claims/", "-m", "smoke"], "git": {"commit": "0123456789abcdef", "dirty": False},
        "catalog": {"T1": {"id": "T1", "title": "snapshots converge"}, "I1": {"id": "I1", "title": "runs orthogonal"}},
        "claims": [
            record("I1", "set-b", "xfailed", evidence("I1", "set-b", "refuted", [
                criterion("cos |a|", 0.3, (0.25, 0.35), 0.1, "<=", "refuted")],
                finding={"expected": "refuted", "why": "because"})),
            record("T1", "set-a", "passed", evidence("T1", "set-a", "reproduces", [
                criterion("late cosine", 0.99, (0.98, 1.0), 0.95, ">=", "reproduces")])),
            record("T1", "set-c", "skipped", skip_reason="gpu tier: CUDA is not available"),
        ],
    }


def write(tmp_path, results):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    return path


def test_rows_follow_the_catalog_with_verdict_and_headline_statistic(results):
    assert table_rows(results) == [
        ("T1", "snapshots converge", "set-a", "reproduces", "late cosine: 0.99 [0.98, 1] >= 0.95"),
        ("T1", "snapshots converge", "set-c", "skipped", "gpu tier: CUDA is not available"),
        ("I1", "runs orthogonal", "set-b", "refuted (finding)", "cos |a|: 0.3 [0.25, 0.35] <= 0.1"),
    ]


def test_markdown_table_escapes_pipes_and_names_its_source(results):
    lines = markdown_table(results).splitlines()
    assert lines[0] == "| claim | title | setting | verdict | statistic [interval] threshold |"
    assert lines[4] == "| I1 | runs orthogonal | set-b | refuted (finding) | cos \\|a\\|: 0.3 [0.25, 0.35] <= 0.1 |"
    assert lines[-1] == "From results.json of 2026-01-02T03:04:05+00:00 (0123456): `pytest claims/ -m smoke`."


def test_replace_block_keeps_the_text_around_the_markers():
    text = f"intro\n{START}\nold table\n{END}\noutro\n"
    assert replace_block(text, "| new |\n") == f"intro\n{START}\n| new |\n{END}\noutro\n"


@pytest.mark.parametrize("text", ["no markers at all", f"{END}\n{START}", f"{START} only"])
def test_replace_block_without_both_markers_in_order_refuses(text):
    with pytest.raises(MarkerError, match="expected the markers <!-- claims-table:start -->"):
        replace_block(text, "| new |")


def test_cli_prints_the_table(tmp_path, results, capsys):
    assert main([str(write(tmp_path, results))]) == 0
    assert capsys.readouterr().out == markdown_table(results) + "\n"


def test_cli_writes_the_table_between_the_markers(tmp_path, results):
    readme = tmp_path / "README.md"
    readme.write_text(f"# demo\n\n{START}\nrun make claims\n{END}\n\nmore\n")
    assert main([str(write(tmp_path, results)), "--readme", str(readme)]) == 0
    assert readme.read_text() == f"# demo\n\n{START}\n{markdown_table(results)}\n{END}\n\nmore\n"


def test_cli_bad_results_exits_2_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "results.json"
    bad.write_text('{"schema_version": 99, "claims": []}')
    assert main([str(bad)]) == 2
    assert "unsupported schema_version 99" in capsys.readouterr().err


def test_cli_readme_without_markers_exits_2_and_is_unchanged(tmp_path, results, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    assert main([str(write(tmp_path, results)), "--readme", str(readme)]) == 2
    assert "expected the markers" in capsys.readouterr().err
    assert readme.read_text() == "# no markers\n"
