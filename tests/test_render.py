"""reports.render on a fixed results.json (tests/data/results_v3.json): HTML, Markdown, files, command line.

The fixture holds three settings, a catalog of two claims (T1, I2) and records of every outcome and
verdict: reproduces (passed, with a heat map and an xy figure, one look), refuted on its second
criterion (failed), inconclusive at the seed cap after three looks (failed, with a NaN interval), a
declared finding refuted as declared (xfailed, two looks, with a figure), a declared finding that
reproduces (failed), skipped, and an error whose message contains a <script> tag. Files of schema
version 2 (tests/data/results_v2.json, the previous version of the same report) and 1 still render.
"""

import base64
import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reports import plots, render
from reports.results import VERDICTS, upgrade

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "data" / "results_v3.json"
FIXTURE_V2 = Path(__file__).parent / "data" / "results_v2.json"
IMG = '<img src="data:image/png;base64,'
MAX_FIXTURE_HTML_BYTES = 300_000  # 3 small figures; a whole smoke report (~25 figures) stays below ~2 MB


@pytest.fixture(scope="module")
def results() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def page(results) -> str:
    return render.render_html(results)


@pytest.fixture(scope="module")
def drawn(results) -> dict:
    """The fixture's figures, drawn once for the tests that render variants of it."""
    return render.draw_figures(results)


def n_figures(results: dict) -> int:
    return sum(len(((r["evidence"] or {}).get("details") or {}).get("figures", [])) for r in results["claims"])


def verdict_table_rows(page: str) -> list[str]:
    table = re.search(r'<table id="verdicts">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert table, "no verdict table"
    return re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)


def rows_by_anchor(page: str) -> dict[str, str]:
    return {re.search(r'href="#([^"]+)"', row).group(1): row for row in verdict_table_rows(page)}


def card(page: str, anchor: str) -> str:
    return re.search(rf'<article [^>]*id="{anchor}">(.*?)</article>', page, re.S).group(1)


def test_fixture_covers_every_outcome_and_verdict(results):
    assert {r["outcome"] for r in results["claims"]} == {"passed", "failed", "xfailed", "skipped", "error"}
    assert {r["evidence"]["outcome"] for r in results["claims"] if r["evidence"]} == set(VERDICTS)
    assert len(results["settings"]) == 3 and len(results["catalog"]) == 2 and n_figures(results) == 3
    assert FIXTURE.stat().st_size < 30_000


def test_verdict_table_has_one_row_per_record_in_catalog_then_claim_then_setting_order(results, page):
    rows = verdict_table_rows(page)
    rank = {cid: i for i, cid in enumerate(results["catalog"])}  # catalogued claims first, in its order
    expected = sorted(((r["claim"], r["setting"]) for r in results["claims"]),
                      key=lambda cs: (rank.get(cs[0], len(rank)), cs))
    found = [tuple(re.findall(r"<td[^>]*>(?:<a [^>]*>)?([^<]*)", row)[i] for i in (0, 2)) for row in rows]
    assert found == expected


def test_every_claim_links_to_its_card(results, page):
    anchors = re.findall(r'href="#([^"]+)"', "".join(verdict_table_rows(page)))
    assert len(set(anchors)) == len(results["claims"])
    for anchor in anchors:
        assert f'id="{anchor}"' in page
    for record in results["claims"]:
        assert f">{record['claim']}</a>" in page


def test_each_record_reads_as_its_three_valued_verdict(page):
    rows = rows_by_anchor(page)
    assert '<td class="v reproduces">reproduces</td>' in rows["T1-digits-mlp"]
    assert '<td class="v refuted">refuted</td>' in rows["I2-digits-mlp"]
    assert '<td class="v inconclusive">inconclusive</td>' in rows["I2-synthetic16-cnn"]
    # A declared finding refuted as declared is the reported non-reproduction, distinct from a refutation.
    assert '<td class="v finding">refuted (declared finding)</td>' in rows["N1-digits-mlp"]
    assert ('<td class="v reproduces">reproduces (declared finding expected refuted)</td>'
            in rows["N1-synthetic16-cnn"])
    assert '<td class="v skip">skipped: CIFAR-10 not found in /data/cifar-10-batches-py' in rows["T1-cifar10-smallcnn"]
    assert '<td class="v error">error: RuntimeError: weights diverged' in rows["I1-synthetic16-cnn"]
    for anchor, css in [("T1-digits-mlp", "reproduces"), ("I2-digits-mlp", "refuted"),
                        ("I2-synthetic16-cnn", "inconclusive"), ("N1-digits-mlp", "finding")]:
        assert f'<article class="card c-{css}" id="{anchor}">' in page


def test_table_shows_headline_estimate_interval_threshold_and_source_number(page):
    rows = rows_by_anchor(page)
    i2 = rows["I2-digits-mlp"]
    # The headline is the first refuted criterion, even after an inconclusive one; the source
    # number comes from the catalog.
    assert "cross d - 1.5 x late within d (a &lt; b &amp; c)" in i2 and "normalised diversity of" not in i2
    assert "-0.021 [-0.04, -0.01] (98.75% one-sided)" in i2
    assert "≥ 0" in i2 and "normalised diversity 0.85-1.0 [Fort Fig. 5]" in i2
    # Without a refuted criterion, the first inconclusive one.
    assert "normalised diversity of independent runs" in rows["I2-synthetic16-cnn"]
    assert "0.55 [0.45, 0.62] (98.75% one-sided)" in rows["I2-synthetic16-cnn"]
    # A one-look decision's bounds are at the nominal level.
    assert "0.99993 [0.99991, 0.99995] (95% one-sided)" in rows["T1-synthetic16-cnn"]
    # Without a catalog entry the evidence's source text is the source number.
    assert "[WB] acc % vs size: SmallCNN 62.7 -&gt; 66.8" in rows["N1-digits-mlp"]


def test_table_shows_the_seed_count_of_each_look(page):
    rows = rows_by_anchor(page)
    for anchor, looks in [("T1-digits-mlp", "5"), ("T1-synthetic16-cnn", "10"), ("N1-digits-mlp", "5→10"),
                          ("I2-synthetic16-cnn", "5→10→20→40")]:
        assert f'<td class="num">{looks}</td><td>' in rows[anchor], anchor  # the seeds cell, before the test's
    assert '<td class="num"></td><td>skipped</td>' in rows["T1-cifar10-smallcnn"]


def test_cards_show_the_declared_finding_looks_and_every_criterion_with_its_interval_and_verdict(page):
    n1 = card(page, "N1-digits-mlp")
    for text in ("<dt>declared finding</dt><dd>expected refuted: digits saturates: two runs already reach the "
                 "plateau &lt;of 0.97&gt;</dd>",
                 "<dt>seeds</dt><dd>0–9 (10 seeds)</dd>", "<dt>looks</dt><dd>5→10 seeds (at most 40)</dd>",
                 "<th>interval</th>", "[0.006, 0.0148] (98.75% one-sided)", "[0.0004, 0.0021] (98.75% one-sided)",
                 '<td class="v reproduces">reproduces</td>', '<td class="v refuted">refuted</td>',
                 '<td class="num">[-1, 1]</td>'):
        assert text in n1, text
    assert '<td class="num">[0, ∞]</td>' in card(page, "T1-digits-mlp")  # a range open above
    assert "declared finding" not in card(page, "I2-digits-mlp")


def test_text_is_escaped(page):
    assert "<script" not in page.lower()
    assert "weights diverged &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "cross d - 1.5 x late within d (a &lt; b &amp; c)" in page


def test_nan_interval_is_shown_with_its_verdict(page):
    i2 = card(page, "I2-synthetic16-cnn")
    assert ('<td class="num">[NaN, NaN] (98.75% one-sided)</td><td class="num">≥ 0</td>'
            '<td class="num">[−∞, ∞]</td><td class="v inconclusive">inconclusive</td>') in i2


def test_cards_hold_catalog_setup_seeds_and_details(page):
    t1 = card(page, "T1-digits-mlp")
    for text in ("Snapshots of one run grow more similar in weight space toward convergence",  # catalog statement
                 "digits-mlp: scikit-learn digits (8x8), 2x64 MLP, 16 epochs",  # setting
                 "epochs=16, batch_size=64", "0–4 (5 seeds)", "5 seeds (at most 40)",
                 "smoke scale: 16 epochs, lr halved every 4", "late/early step distance, worst seed", "step_ratio"):
        assert text in t1, text
    assert t1.count(IMG) == 2


def test_one_embedded_png_per_figure(results, page, drawn):
    images = re.findall(re.escape(IMG) + r'([A-Za-z0-9+/=]+)"', page)
    assert len(images) == page.count(IMG) == n_figures(results)
    assert [base64.b64decode(data) for data in images] == list(drawn.values())


def test_page_is_self_contained(page):
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//)""", page, re.I)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert len(page.encode()) < MAX_FIXTURE_HTML_BYTES


def test_a_bad_figure_costs_only_that_figure(results):
    broken = copy.deepcopy(results)
    t1 = next(r for r in broken["claims"] if r["claim"] == "T1" and r["setting"] == "digits-mlp")
    t1["evidence"]["details"]["figures"][0] = {"kind": "pie", "title": "broken"}
    page = render.render_html(broken)
    assert page.count(IMG) == n_figures(results) - 1
    assert '<p class="figerr">figure T1-digits-mlp-1.png not drawn: not a figure spec' in page


def test_renders_without_catalog_settings_or_summary(results, drawn):
    bare = {k: v for k, v in results.items() if k not in ("catalog", "settings", "summary", "git", "options")}
    page = render.render_html(bare, figures=drawn)
    assert len(verdict_table_rows(page)) == len(results["claims"])
    assert ("8 claim tests (2 passed, 3 failed, 1 xfailed, 1 skipped, 1 error); "
            "negative controls and other tests not counted in this file") in page
    # The source number falls back to the evidence's source text.
    assert "[WB] SmallCNN: consecutive cos &gt; 0.95 after ~epoch 10" in page


def test_header_counts_claim_tests_negative_controls_and_other_tests_as_pytest_does(results, drawn):
    # The fixture's 8 claim tests (its summary) and a session's other tests, as the plugin counts them.
    tests = {"claim": results["summary"], "negative_control": {"passed": 45, "failed": 1},
             "other": {"passed": 3}}
    counted = ("8 claim tests (2 passed, 3 failed, 1 xfailed, 1 skipped, 1 error), "
               "46 negative controls (45 passed, 1 failed), 3 other tests (3 passed); "
               "57 tests in all: 50 passed, 4 failed, 1 xfailed, 1 skipped, 1 error")
    page = render.render_html({**results, "tests": tests}, figures=drawn)
    assert f"<dt>tests</dt><dd>{counted}</dd>" in page
    assert f"- **tests:** {counted}" in render.render_markdown({**results, "tests": tests})
    # A file from before "tests" says what it leaves out rather than passing its claim count off as pytest's.
    assert "- **tests:** 8 claim tests (2 passed, 3 failed, 1 xfailed, 1 skipped, 1 error); negative controls and " \
           "other tests not counted in this file" in render.render_markdown(results)


@pytest.fixture(scope="module")
def results_v2() -> dict:
    return json.loads(FIXTURE_V2.read_text())


def test_version_2_keeps_its_pass_and_fail_labelled_as_schema_2(results_v2, drawn):
    """PASS/FAIL decided on one bound: not version 3's verdicts (a FAIL may have been inconclusive)."""
    before = copy.deepcopy(results_v2)
    page = render.render_html(results_v2, figures=drawn)
    assert results_v2 == before  # upgrading copies
    rows = rows_by_anchor(page)
    assert len(rows) == len(results_v2["claims"])
    assert '<td class="v reproduces">PASS (schema 2)</td>' in rows["T1-digits-mlp"]
    assert '<td class="v refuted">FAIL (schema 2)</td>' in rows["I2-digits-mlp"]
    assert '<td class="v finding">FAIL (schema 2), xfail</td>' in rows["N1-digits-mlp"]  # an xfail marker's
    # The headline is the first failing criterion; an interval at version 2's (one-sided) level, or none.
    assert "0.69 [0.38, 0.81] (95% one-sided)" in rows["I2-digits-mlp"]
    assert '<td class="num">0.00125</td>' in rows["N1-digits-mlp"]
    assert '<td class="num">5</td>' in rows["T1-digits-mlp"]  # one look at all its seeds
    i2 = card(page, "I2-digits-mlp")
    assert i2.count('<td class="v refuted">FAIL (schema 2)</td>') == 2 and "<dt>looks</dt>" not in i2
    for verdict in VERDICTS:  # no version-3 verdict is made up
        assert f">{verdict}<" not in page and f">{verdict} (" not in page


def test_version_2_markdown_renders(results_v2):
    text = render.render_markdown(results_v2)
    assert "| FAIL (schema 2), xfail | 5 | xfailed |" in text and "| PASS (schema 2) | 5 | passed |" in text


def test_version_1_is_rendered_best_effort(results_v2, drawn):
    """Session 1's files: no claim/setting/source on records, outcomes "xfail"/"xpass"."""
    v1_outcome = {"xfailed": "xfail", "xpassed": "xpass"}
    old = {"schema_version": 1, "created": results_v2["created"], "command": results_v2["command"],
           "machine": results_v2["machine"],
           "claims": [{"nodeid": r["nodeid"], "outcome": v1_outcome.get(r["outcome"], r["outcome"]),
                       "duration_s": r["duration_s"], "evidence": r["evidence"], "skip_reason": r["skip_reason"]}
                      for r in results_v2["claims"]]}
    page = render.render_html(old, figures=drawn)
    rows = verdict_table_rows(page)
    assert len(rows) == len(results_v2["claims"])
    assert "FAIL (schema 2), xfail" in page
    assert '<a href="#T1-cifar10-smallcnn">T1</a>' in page  # claim and setting recovered from the node id


@pytest.mark.parametrize(("bad", "match"), [
    ({"schema_version": 4, "claims": []}, "unsupported schema_version 4"),
    ({"claims": []}, "unsupported schema_version None"),
    ([], "not a results file"),
    ({"schema_version": 3, "claims": [1]}, "'claims' must be a list of objects"),
])
def test_unsupported_input_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        render.render_html(bad)


def test_markdown_has_the_verdict_table_and_one_card_per_record(results):
    text = render.render_markdown(results)
    lines = text.splitlines()
    header = ("| claim | source | setting | statistic | source number | our estimate [interval] | threshold | verdict "
              "| seeds | test |")
    start = lines.index(header)
    assert lines[start + 1] == "|" + "---|" * 10
    rows = [line for line in lines[start + 2:lines.index("## Claims")] if line.startswith("| ")]
    assert sorted(row.split(" | ")[0][2:] for row in rows) == sorted(r["claim"] for r in results["claims"])
    assert text.count("\n### ") == len(results["claims"])
    assert "| refuted (declared finding) | 5→10 | xfailed |" in text
    assert "| inconclusive | 5→10→20→40 | failed |" in text
    assert "- **declared finding:** expected refuted: digits saturates" in text
    assert "| criterion | estimate | interval | threshold | range | verdict |" in text
    assert "<script" not in text and "&lt;script>" in text
    assert "*Figure: joint t-SNE of checkpoints (in index.html)*" in text


def test_markdown_links_figure_files_when_given(results):
    text = render.render_markdown(results, {"T1-digits-mlp-2.png": "figures/T1-digits-mlp-2.png"})
    assert "![joint t-SNE of checkpoints](figures/T1-digits-mlp-2.png)" in text


def test_write_report_writes_page_summary_and_figures(results, tmp_path):
    out = tmp_path / "report"
    written = render.write_report(results, out)
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == ["N1-digits-mlp-1.png", "T1-digits-mlp-1.png", "T1-digits-mlp-2.png"]
    assert set(written) == {"index.html", "summary.md", *(f"figures/{name}" for name in figures)}
    assert all(path.is_file() and path.parent.is_relative_to(out) for path in written.values())
    assert (out / "index.html").read_text().count(IMG) == 3
    summary = (out / "summary.md").read_text()
    for name in figures:
        assert f"](figures/{name})" in summary
        assert (out / "figures" / name).read_bytes()[:8] == plots.PNG_SIGNATURE
    assert not list(out.rglob("*.tmp"))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reports.render", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.integration
def test_cli_renders_a_folder_in_place(tmp_path):
    (tmp_path / "results.json").write_text(FIXTURE.read_text())
    done = run_cli(str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "index.html").is_file() and (tmp_path / "summary.md").is_file()
    assert len(list((tmp_path / "figures").glob("*.png"))) == 3
    assert str(tmp_path / "index.html") in done.stdout


@pytest.mark.integration
def test_cli_refuses_a_missing_file(tmp_path):
    done = run_cli(str(tmp_path / "nowhere" / "results.json"))
    assert done.returncode == 2
    assert "error:" in done.stderr and "nowhere/results.json: no such file" in done.stderr


@pytest.mark.integration
def test_cli_refuses_another_schema_version(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"schema_version": 99, "claims": []}))
    done = run_cli(str(tmp_path / "results.json"))
    assert done.returncode == 2
    assert "unsupported schema_version 99" in done.stderr
    assert not (tmp_path / "index.html").exists()


def test_main_refuses_invalid_json_and_honours_out(tmp_path, capsys):
    (tmp_path / "results.json").write_text("{not json")
    assert render.main([str(tmp_path)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    (tmp_path / "results.json").write_text(FIXTURE.read_text())
    assert render.main([str(tmp_path / "results.json"), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "index.html").is_file() and not (tmp_path / "index.html").exists()


def test_in_memory_tuples_render_like_their_json(results, drawn):
    # Evidence.to_dict() holds intervals, ranges and looks as tuples; a results dict not yet written must
    # render the same.
    as_tuples = copy.deepcopy(results)
    for record in as_tuples["claims"]:
        evidence = record.get("evidence") or {}
        if "looks" in evidence:
            evidence["looks"] = tuple(evidence["looks"])
        for criterion in evidence.get("criteria", []):
            criterion["ci"], criterion["limits"] = tuple(criterion["ci"]), tuple(criterion["limits"])
    assert render.render_html(as_tuples, figures=drawn) == render.render_html(results, figures=drawn)


def test_upgraded_version_2_evidence_has_version_3_keys_and_schema_2_labels(results_v2):
    i2 = next(r for r in results_v2["claims"] if r["claim"] == "I2")
    v1_strings = {**i2["evidence"], "criteria": [{**c, "passed": str(c["passed"])} for c in i2["evidence"]["criteria"]]}
    for evidence in (i2["evidence"], v1_strings):  # version 1 wrote numpy booleans as "True"/"False"
        upgraded = upgrade({**results_v2, "claims": [{**i2, "evidence": evidence}]})["claims"][0]["evidence"]
        assert (upgraded["outcome"], upgraded["looks"], upgraded["max_seeds"], upgraded["finding"]) == (
            "FAIL (schema 2)", [5], None, None)
        assert [c["outcome"] for c in upgraded["criteria"]] == ["FAIL (schema 2)", "FAIL (schema 2)"]
        assert not {"verdict", "value", "passed"} & {*upgraded, *upgraded["criteria"][0]}
        assert upgraded["criteria"][0]["ci"] == [0.38, 0.81] and upgraded["details"] == i2["evidence"]["details"]
