"""reports.render on a fixed results.json (tests/data/results_v2.json): HTML, Markdown, files, command line.

The fixture holds three settings, a catalog of two claims (T1, I2) and one record of every outcome:
passed with a heat map and an xy figure, failed (with a NaN interval), a strict xfail whose evidence
FAILs (with a figure), skipped, and an error whose message contains a <script> tag.
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

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "data" / "results_v2.json"
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


def test_fixture_covers_every_outcome(results):
    assert {r["outcome"] for r in results["claims"]} == {"passed", "failed", "xfailed", "skipped", "error"}
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


def test_each_outcome_reads_as_its_verdict(page):
    rows = {re.search(r'href="#([^"]+)"', row).group(1): row for row in verdict_table_rows(page)}
    assert '<td class="v pass">PASS</td>' in rows["T1-digits-mlp"]
    assert '<td class="v fail">FAIL</td>' in rows["I2-digits-mlp"]
    # A strict xfail is the reported non-reproduction, distinct from a FAIL.
    assert '<td class="v xfail">does not reproduce (xfail)</td>' in rows["N1-digits-mlp"]
    assert '<td class="v skip">skipped: CIFAR-10 not found in /data/cifar-10-batches-py' in rows["T1-cifar10-smallcnn"]
    assert '<td class="v error">error: RuntimeError: weights diverged' in rows["I1-synthetic16-cnn"]


def test_table_shows_headline_estimate_interval_threshold_and_source_number(page):
    rows = {re.search(r'href="#([^"]+)"', row).group(1): row for row in verdict_table_rows(page)}
    i2 = rows["I2-digits-mlp"]
    # The headline of a FAIL is its first failing criterion; the source number comes from the catalog.
    assert "normalised diversity of independent runs" in i2 and "0.69 [0.38, 0.81] (95%)" in i2
    assert "≥ 0.5" in i2 and "normalised diversity 0.85-1.0 [Fort Fig. 5]" in i2
    # Without a catalog entry the evidence's source text is the source number.
    assert "[WB] acc % vs size: SmallCNN 62.7 -&gt; 66.8" in rows["N1-digits-mlp"]


def test_text_is_escaped(page):
    assert "<script" not in page.lower()
    assert "weights diverged &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "cross d - 1.5 x late within d (a &lt; b &amp; c)" in page


def test_nan_interval_is_shown(page):
    assert "[NaN, NaN] (95%)" in page


def test_cards_hold_catalog_setup_seeds_and_details(page):
    card = re.search(r'<article [^>]*id="T1-digits-mlp">(.*?)</article>', page, re.S).group(1)
    for text in ("Snapshots of one run grow more similar in weight space toward convergence",  # catalog statement
                 "digits-mlp: scikit-learn digits (8x8), 2x64 MLP, 16 epochs",  # setting
                 "epochs=16, batch_size=64", "0–4 (5 seeds)", "smoke scale: 16 epochs, lr halved every 4",
                 "late/early step distance, worst seed", "step_ratio"):
        assert text in card, text
    assert card.count(IMG) == 2


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
    assert "6 claim records: 2 passed, 1 failed, 1 xfailed, 1 skipped, 1 error" in page
    # The source number falls back to the evidence's source text.
    assert "[WB] SmallCNN: consecutive cos &gt; 0.95 after ~epoch 10" in page


def test_version_1_is_rendered_best_effort(results, drawn):
    """Session 1's files: no claim/setting/source on records, outcomes "xfail"/"xpass"."""
    v1_outcome = {"xfailed": "xfail", "xpassed": "xpass"}
    old = {"schema_version": 1, "created": results["created"], "command": results["command"],
           "machine": results["machine"],
           "claims": [{"nodeid": r["nodeid"], "outcome": v1_outcome.get(r["outcome"], r["outcome"]),
                       "duration_s": r["duration_s"], "evidence": r["evidence"], "skip_reason": r["skip_reason"]}
                      for r in results["claims"]]}
    page = render.render_html(old, figures=drawn)
    rows = verdict_table_rows(page)
    assert len(rows) == len(results["claims"])
    assert "does not reproduce (xfail)" in page
    assert '<a href="#T1-cifar10-smallcnn">T1</a>' in page  # claim and setting recovered from the node id


@pytest.mark.parametrize(("bad", "match"), [
    ({"schema_version": 3, "claims": []}, "unsupported schema_version 3"),
    ({"claims": []}, "not a results file"),
    ({"schema_version": 2, "claims": [1]}, "'claims' must be a list of objects"),
])
def test_unsupported_input_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        render.render_html(bad)


def test_markdown_has_the_verdict_table_and_one_card_per_record(results):
    text = render.render_markdown(results)
    lines = text.splitlines()
    header = "| claim | source | setting | statistic | source number | our estimate [CI] | threshold | verdict | test |"
    start = lines.index(header)
    assert lines[start + 1] == "|" + "---|" * 9
    rows = [line for line in lines[start + 2:lines.index("## Claims")] if line.startswith("| ")]
    assert sorted(row.split(" | ")[0][2:] for row in rows) == sorted(r["claim"] for r in results["claims"])
    assert text.count("\n### ") == len(results["claims"])
    assert "| does not reproduce (xfail) | xfailed |" in text
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


def test_cli_renders_a_folder_in_place(tmp_path):
    (tmp_path / "results.json").write_text(FIXTURE.read_text())
    done = run_cli(str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "index.html").is_file() and (tmp_path / "summary.md").is_file()
    assert len(list((tmp_path / "figures").glob("*.png"))) == 3
    assert str(tmp_path / "index.html") in done.stdout


def test_cli_refuses_a_missing_file(tmp_path):
    done = run_cli(str(tmp_path / "nowhere" / "results.json"))
    assert done.returncode == 2
    assert "error:" in done.stderr and "nowhere/results.json: no such file" in done.stderr


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
    # Evidence.to_dict() holds intervals as tuples; a results dict not yet written must render the same.
    as_tuples = copy.deepcopy(results)
    for record in as_tuples["claims"]:
        for criterion in (record.get("evidence") or {}).get("criteria", []):
            if isinstance(criterion.get("ci"), list):
                criterion["ci"] = tuple(criterion["ci"])
    assert render.render_html(as_tuples, figures=drawn) == render.render_html(results, figures=drawn)
