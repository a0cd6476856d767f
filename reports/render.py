"""Render a ``results.json`` as a self-contained HTML page, a Markdown summary and PNG figures.

Pure functions of the results dict (``reports/SCHEMA.md``, version 3): :func:`render_html` (one
``index.html``: inline CSS, figures as base64 PNG data URIs, no scripts, no external URLs),
:func:`render_markdown` (``summary.md``) and :func:`write_report` (both, plus ``figures/*.png``).

One module on purpose (over 400 lines): the two documents share every content function (verdicts,
cards, criteria rows, details), and splitting them by format would separate a format from the
content it formats. Reading results.json is :mod:`reports.results`'s.

Both documents hold the same content: a header (time, command, commit, machine, duration, and the
tests counted: claim tests, negative controls and other tests, adding up to pytest's count),
a verdict table with one row per claim record (its three-valued verdict, a declared finding marked
as such, the seed count of each look, and its headline criterion: the first refuted one, else the
first inconclusive one, else the first) and one card per record, ordered by claim id then setting,
with the statement and decision from ``results["catalog"]`` when the file has one, the declared
finding and why, the seeds and looks, every criterion with its interval at its level and its own
verdict, the scalar details and the figures of ``evidence["details"]["figures"]``
(:mod:`harness.figspec`).

Older files are read as :func:`reports.results.upgrade` upgrades them (schema versions 2 and 1:
verdicts labelled "PASS (schema 2)" and "FAIL (schema 2)", one look at all their seeds; version 1
best effort, its header lacking what it did not record). Other versions are refused.

Command line::

    python -m reports.render reports/out/latest            # a folder holding results.json, or the file
    python -m reports.render results.json --out report/    # default --out: the folder of results.json

Exit status 0 on success, 2 for a missing, unreadable or invalid file or an unsupported version,
1 when the report cannot be written.
"""

from __future__ import annotations

import argparse
import base64
import html
import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from harness.evidence import format_interval, format_number, format_threshold
from harness.figspec import FIGURES_KEY
from reports import plots
from reports.results import (
    INCONCLUSIVE,
    LEGACY_FAIL,
    LEGACY_PASS,
    REFUTED,
    REPRODUCES,
    RESULTS_NAME,
    SCHEMA_VERSION,
    UNDECIDABLE,
    ResultsError,
    counts_text,
    headline_criterion,
    load_results,
    looks_text,
    results_file,
    shorten,
    upgrade,
    write_atomic,
)

HTML_NAME = "index.html"
MARKDOWN_NAME = "summary.md"
FIGURES_DIR = "figures"
MAX_DETAIL_LIST = 12  # numeric lists up to this length (per-seed values) are shown among the details
MAX_TABLE_NOTE = 160  # characters of a skip reason or error message in the verdict table; the card has it all
TABLE_HEADER = ("claim", "source", "setting", "statistic", "source number", "our estimate [interval]", "threshold",
                "verdict", "seeds", "test")
CRITERIA_HEADER = ("criterion", "estimate", "interval", "threshold", "range", "verdict")
# CSS class of each verdict. A schema-2 verdict takes the colour of the version-3 one it resembles;
# its label says which schema decided it.
VERDICT_CSS = {REPRODUCES: "reproduces", REFUTED: "refuted", INCONCLUSIVE: "inconclusive",
               LEGACY_PASS: "reproduces", LEGACY_FAIL: "refuted"}
# CSS class of a record without evidence, by its test outcome.
NO_VERDICT_CSS = {"skipped": "skip", "error": "error", "failed": "error", "xfailed": "finding"}

__all__ = ["SCHEMA_VERSION", "Verdict", "draw_figures", "main", "render_html", "render_markdown", "verdict",
           "write_report"]


# ---------------------------------------------------------------------------------------------------------------------
# Content shared by the HTML and Markdown documents (plain text; each document escapes it)


class Verdict(NamedTuple):
    """How a claim record reads in the report."""

    label: str  # the evidence's verdict ("refuted (declared finding)"...), or the test outcome without evidence
    css: str  # one of "reproduces", "refuted", "inconclusive", "finding", "skip", "error"
    note: str  # the skip/xfail reason or the failure message; "" when none


class Card(NamedTuple):
    """One claim record with its anchor (HTML id, figure file prefix) and its figures."""

    record: dict
    anchor: str
    figures: list[tuple[str, dict]]  # (file name, figure spec)


def verdict(record: dict) -> Verdict:
    """The verdict of one claim record: the evidence's, with its declared finding.

    A declared finding that came out as expected reads "<verdict> (declared finding)" in the
    finding's colour (the expected, reported non-reproduction); one that did not reads "<verdict>
    (declared finding expected <expected>)". A schema-2 xfail (an xfail marker, no declared
    finding) reads "<verdict>, xfail" in the finding's colour. Without evidence: the test outcome.

    Parameters
    ----------
    record : dict
        One entry of ``results["claims"]`` (schema version 3, see :func:`reports.results.upgrade`).
    """
    evidence, outcome = record.get("evidence") or {}, record.get("outcome")
    note = record.get("skip_reason") or record.get("message") or ""
    decided = evidence.get("outcome")
    if decided is None:
        return Verdict(str(outcome or "no outcome"), NO_VERDICT_CSS.get(outcome, "skip"), note)
    expected = (evidence.get("finding") or {}).get("expected")
    if expected == UNDECIDABLE:
        return Verdict(f"{decided} (declared undecidable)", "finding", note)
    if expected == decided:
        return Verdict(f"{decided} (declared finding)", "finding", note)
    if expected is not None:
        return Verdict(f"{decided} (declared finding expected {expected})", VERDICT_CSS.get(decided, "skip"), note)
    if outcome == "xfailed":
        return Verdict(f"{decided}, xfail", "finding", note)
    return Verdict(decided, VERDICT_CSS.get(decided, "skip"), note)


def _natural(text: str) -> tuple:
    """Sort key that orders "N2" before "N10"."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def _cards(results: dict) -> list[Card]:
    """The records in catalog order (then by claim id), then setting, then run order; anchors unique."""
    rank = {cid: i for i, cid in enumerate(results.get("catalog") or {})}
    order = sorted(enumerate(results["claims"]), key=lambda ir: (
        ir[1].get("claim") is None, rank.get(ir[1].get("claim"), len(rank)), _natural(str(ir[1].get("claim") or "")),
        _natural(str(ir[1].get("setting") or "")), ir[0]))
    cards, seen = [], set()
    for _, record in order:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{record.get('claim') or ''}-{record.get('setting') or ''}")
        base = base.strip("-.") or "record"
        anchor = next(a for a in (base, *(f"{base}-{k}" for k in range(2, len(order) + 2))) if a not in seen)
        seen.add(anchor)
        details = (record.get("evidence") or {}).get("details")
        specs = details.get(FIGURES_KEY) if isinstance(details, dict) else None
        figures = [(f"{anchor}-{j}.png", spec) for j, spec in enumerate(specs or [], 1)]
        cards.append(Card(record, anchor, figures))
    return cards


def _pair(pair) -> str:
    """'[lo, hi]' of a two-element list or tuple (a range); '' for anything else."""
    return format_interval(pair)


def _threshold(criterion: dict) -> str:
    return format_threshold(criterion.get("direction", ""), criterion.get("threshold"), symbol=True)


def _table_row(card: Card, catalog: dict | None) -> list[str]:
    """The verdict-table cells of one record, in TABLE_HEADER order."""
    record = card.record
    evidence = record.get("evidence") or {}
    entry = _catalog_entry(catalog, record)
    main = headline_criterion(evidence)
    v = verdict(record)
    shown = f"{v.label}: {shorten(v.note, MAX_TABLE_NOTE)}" if v.note and not evidence else v.label
    return [str(record.get("claim") or "?"), record.get("source") or entry.get("source") or "",
            str(record.get("setting") or ""), main["name"] if main else "—",
            entry.get("reference") or evidence.get("source") or "",
            f"{format_number(main.get('estimate'))} {format_interval(main.get('ci'), main.get('level'))}".strip() if main else "—",
            _threshold(main) if main else "—", shown, looks_text(evidence) if evidence else "",
            str(record.get("outcome") or "")]


def _criteria_rows(evidence: dict) -> list[tuple[list[str], str]]:
    """(cells in CRITERIA_HEADER order, CSS class of its verdict) for every criterion of the evidence."""
    return [([c.get("name", ""), format_number(c.get("estimate")), format_interval(c.get("ci"), c.get("level")) or "—",
              _threshold(c), _pair(c.get("limits")) or "—", str(c.get("outcome"))],
             VERDICT_CSS.get(c.get("outcome"), "skip"))
            for c in evidence.get("criteria") or []]


def _compact(value) -> str:
    """A setting field or a detail value on one line."""
    if isinstance(value, list):
        return "[" + ", ".join(map(_compact, value)) + "]"
    return format_number(value)


def _seeds(seeds: list) -> str:
    """'0–4 (5 seeds)' for a run of consecutive seeds, else the list."""
    if len(seeds) > 2 and all(isinstance(s, int) for s in seeds) and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]} ({len(seeds)} seeds)"
    return ", ".join(map(str, seeds))


def _looks(evidence: dict) -> str:
    """'5→10 seeds (at most 40)': the seed count of each look of a sequential decision and its cap;
    '' for a decision without a cap (schema version 2: one look at all its seeds)."""
    cap = evidence.get("max_seeds")
    return f"{looks_text(evidence)} seeds (at most {cap})" if cap is not None else ""


def _setting_summary(name: str, setting: dict | None) -> str:
    """'name: description; dataset: k=v, ...; model: ...; recipe: ...' from results["settings"][name]."""
    if not isinstance(setting, dict):
        return name
    parts = [name + (f": {setting['description']}" if setting.get("description") else "")]
    for part in ("dataset", "model", "recipe"):
        fields = setting.get(part)
        if isinstance(fields, dict):
            parts.append(f"{part}: " + ", ".join(f"{k}={_compact(v)}" for k, v in fields.items() if v is not None))
    extra = [f"{k} {setting[k]}" for k in ("tier", "n_seeds", "cache_key") if setting.get(k) is not None]
    return "; ".join(parts + ([", ".join(extra)] if extra else []))


def _catalog_entry(catalog: dict | None, record: dict) -> dict:
    """The catalog's entry for the record's claim; {} when the file has no catalog or no such entry."""
    entry = catalog.get(record.get("claim")) if isinstance(catalog, dict) else None
    return entry if isinstance(entry, dict) else {}


def _card_title(card: Card, results: dict) -> str:
    """'T1 · digits-mlp — <catalog title>'."""
    record = card.record
    title = " · ".join(str(t) for t in (record.get("claim") or "?", record.get("setting")) if t)
    entry = _catalog_entry(results.get("catalog"), record)
    return title + (f" — {entry['title']}" if entry.get("title") else "")


def _card_fields(card: Card, results: dict) -> list[tuple[str, str]]:
    """(label, text) pairs describing a record, empty ones left out."""
    record = card.record
    evidence = record.get("evidence") or {}
    entry = _catalog_entry(results.get("catalog"), record)
    setting = record.get("setting")
    deviations = entry.get("deviations") or ""
    duration = record.get("duration_s")
    test = [str(record.get("outcome") or ""), f"{duration:.2f} s" if isinstance(duration, (int, float)) else "",
            record.get("nodeid") or ""]
    finding = evidence.get("finding") or {}
    fields = [("statement", entry.get("statement") or ""),
              ("declared finding", f"expected {finding['expected']}: {finding.get('why') or 'no reason given'}"
               if finding.get("expected") else ""),
              ("source", record.get("source") or entry.get("source") or ""),
              ("source number", entry.get("reference") or evidence.get("source") or ""),
              ("decision", entry.get("decision") or ""),
              ("setup", _setting_summary(setting, (results.get("settings") or {}).get(setting)) if setting else ""),
              ("seeds", _seeds(evidence["seeds"]) if evidence.get("seeds") else ""),
              ("looks", _looks(evidence)),
              ("deviations", "; ".join(deviations) if isinstance(deviations, list) else str(deviations)),
              ("test", ", ".join(t for t in test if t)),
              ("reason", record.get("skip_reason") or ""),
              ("message", record.get("message") or "")]
    return [(label, text) for label, text in fields if text]


def _detail_items(evidence: dict) -> list[tuple[str, str]]:
    """The evidence's scalar details and short numeric lists (per-seed values), as (key, text)."""
    details = evidence.get("details")
    items = []
    for key, value in (details.items() if isinstance(details, dict) else ()):
        short_list = (isinstance(value, list) and len(value) <= MAX_DETAIL_LIST
                      and all(isinstance(v, (int, float)) or v is None for v in value))
        if key != FIGURES_KEY and (short_list or isinstance(value, (str, int, float, bool))):
            items.append((str(key), _compact(value)))
    return items


def _header_items(results: dict) -> list[tuple[str, str]]:
    """(label, text) pairs of the report header; fields the file lacks are left out."""
    command = results.get("command")
    git = results.get("git") or {}
    machine = results.get("machine") or {}
    options = results.get("options") or {}
    duration = results.get("duration_s")
    commit = git.get("commit")
    versions = ", ".join(f"{k} {machine[k]}" for k in ("python", "torch", "numpy", "scipy") if machine.get(k))
    hardware = [machine.get("platform"), f"{machine['cpu_count']} CPUs" if machine.get("cpu_count") else None,
                f"device {machine['device']}" if machine.get("device") else None, machine.get("cuda"), versions]
    items = [("created", str(results.get("created") or "")),
             ("command", shlex.join(map(str, command)) if isinstance(command, list) else str(command or "")),
             ("git commit", f"{commit}{' (dirty)' if git.get('dirty') else ''}" if commit else ""),
             ("machine", "; ".join(h for h in hardware if h)),
             ("options", ", ".join(f"{k}={v}" for k, v in options.items() if v is not None)),
             ("duration", f"{duration:.1f} s" if isinstance(duration, (int, float)) else ""),
             ("tests", counts_text(results))]
    return [(label, text) for label, text in items if text]


def draw_figures(results: dict) -> dict[str, bytes | str]:
    """Every figure of the report: file name -> PNG bytes, or why it could not be drawn (str).

    A bad figure spec costs its figure, never the report.
    """
    drawn = {}
    for card in _cards(upgrade(results)):
        for name, spec in card.figures:
            try:
                drawn[name] = plots.png_bytes(spec)
            except Exception as exc:  # noqa: BLE001 -- whatever a malformed spec makes matplotlib raise
                drawn[name] = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
    return drawn


# ---------------------------------------------------------------------------------------------------------------------
# HTML

_CSS = """
:root{--reproduces:#176f2c;--reproduces-bg:#e2f3e6;--refuted:#b3261e;--refuted-bg:#fbe3e1;
--inconclusive:#7d5200;--inconclusive-bg:#ffefc7;--finding:#6639ba;--finding-bg:#efe8fb;
--skip:#5f6368;--skip-bg:#eceef1;--line:#d0d7de}
*{print-color-adjust:exact;-webkit-print-color-adjust:exact}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1f2328;
max-width:1280px;margin:1.5rem auto;padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .6rem}h2{font-size:1.2rem;border-bottom:1px solid var(--line);margin:2rem 0 .6rem}
h3{font-size:1.05rem;margin:0 0 .5rem}
a{color:#0b57d0}
table{border-collapse:collapse;width:100%;font-size:13px;margin:.5rem 0}
th,td{border:1px solid var(--line);padding:.25rem .45rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{font-variant-numeric:tabular-nums;white-space:nowrap}td.nw{white-space:nowrap}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem .9rem;margin:.4rem 0}
dt{color:#57606a}dd{margin:0;white-space:pre-wrap;overflow-wrap:anywhere}
.v{font-weight:600}.reproduces{color:var(--reproduces);background:var(--reproduces-bg)}
.refuted{color:var(--refuted);background:var(--refuted-bg)}
.inconclusive{color:var(--inconclusive);background:var(--inconclusive-bg)}
.finding{color:var(--finding);background:var(--finding-bg)}.skip{color:var(--skip);background:var(--skip-bg)}
.error{color:var(--refuted);background:var(--refuted-bg);font-style:italic}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:.7rem;font-size:12px;margin-right:.4rem}
.card{border:1px solid var(--line);border-left:6px solid var(--skip);border-radius:6px;padding:.8rem 1rem;
margin:1rem 0;break-inside:avoid}
.card.c-reproduces{border-left-color:var(--reproduces)}.card.c-refuted,.card.c-error{border-left-color:var(--refuted)}
.card.c-inconclusive{border-left-color:var(--inconclusive)}.card.c-finding{border-left-color:var(--finding)}
.card table{width:auto}figure{margin:0}
.figures{display:flex;flex-wrap:wrap;gap:.6rem;margin-top:.5rem}.figures img{max-width:100%;height:auto}
.figerr{color:var(--refuted)}.top{font-size:12px;float:right}
@media print{body{max-width:none;margin:0;font-size:11px}a{color:inherit;text-decoration:none}.top{display:none}}
"""


def _e(text) -> str:
    return html.escape(str(text))


def _dl(items: list[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items) + "</dl>"


def _thead(header) -> str:
    return "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead>"


def _html_verdict_table(cards: list[Card], catalog: dict | None) -> str:
    rows = []
    for card in cards:
        cells = _table_row(card, catalog)
        css = ["nw", "", "nw", "", "", "num", "num", f"v {verdict(card.record).css}", "num", ""]
        tds = [f'<td class="{c}">{_e(t)}</td>' if c else f"<td>{_e(t)}</td>" for t, c in zip(cells, css)]
        tds[0] = f'<td class="nw"><a href="#{_e(card.anchor)}">{_e(cells[0])}</a></td>'
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return f'<table id="verdicts">{_thead(TABLE_HEADER)}<tbody>' + "".join(rows) + "</tbody></table>"


def _html_figure(name: str, spec: dict, drawn: bytes | str) -> str:
    if isinstance(drawn, str):
        return f'<p class="figerr">figure {_e(name)} not drawn: {_e(drawn)}</p>'
    title = spec.get("title", name) if isinstance(spec, dict) else name
    data = base64.b64encode(drawn).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{_e(title)}"></figure>'


def _html_card(card: Card, results: dict, figures: Mapping[str, bytes | str]) -> str:
    record = card.record
    evidence = record.get("evidence") or {}
    v = verdict(record)
    parts = [f'<article class="card c-{v.css}" id="{_e(card.anchor)}"><a class="top" href="#verdicts">↑ table</a>',
             f'<h3><span class="badge v {v.css}">{_e(v.label)}</span>{_e(_card_title(card, results))}</h3>',
             _dl(_card_fields(card, results))]
    criteria = _criteria_rows(evidence)
    if criteria:
        rows = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells[:1])
                       + "".join(f'<td class="num">{_e(c)}</td>' for c in cells[1:-1])
                       + f'<td class="v {css}">{_e(cells[-1])}</td></tr>'
                       for cells, css in criteria)
        parts.append(f"<table>{_thead(CRITERIA_HEADER)}<tbody>{rows}</tbody></table>")
    details = _detail_items(evidence)
    if details:
        parts.append("<details open><summary>details</summary>" + _dl(details) + "</details>")
    if card.figures:
        parts.append('<div class="figures">' + "".join(_html_figure(n, s, figures[n]) for n, s in card.figures)
                     + "</div>")
    return "".join(parts) + "</article>"


def render_html(results: dict, *, figures: Mapping[str, bytes | str] | None = None) -> str:
    """The report as one self-contained HTML page (inline CSS, embedded PNGs, no scripts, no URLs).

    Parameters
    ----------
    results : dict
        A results.json object (schema version 3, or 2 or 1, see :func:`reports.results.upgrade`).
    figures : mapping of str to bytes or str, optional
        :func:`draw_figures` of these results, when already drawn (as :func:`write_report` does).

    Returns
    -------
    str
        The HTML document.
    """
    results = upgrade(results)
    cards = _cards(results)
    figures = draw_figures(results) if figures is None else figures
    created = results.get("created") or ""
    body = ["<header><h1>ensemble-claims: claim verdicts</h1>", _dl(_header_items(results)), "</header>",
            "<section><h2>Verdicts</h2>", _html_verdict_table(cards, results.get("catalog")), "</section>",
            "<section><h2>Claims</h2>", *(_html_card(c, results, figures) for c in cards), "</section>"]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>ensemble-claims report {_e(created)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


# ---------------------------------------------------------------------------------------------------------------------
# Markdown


def _md(text) -> str:
    """Text safe in a GitHub Markdown table cell or paragraph: one line, no raw HTML, pipes escaped."""
    # Escaping & and < is enough to keep tags out; ">" stays readable in the raw file.
    return " ".join(str(text).split()).replace("&", "&amp;").replace("<", "&lt;").replace("|", r"\|")


def _md_table(header, rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(map(_md, header)) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(map(_md, row)) + " |" for row in rows)]


def _md_card(card: Card, results: dict, figure_paths: Mapping[str, str]) -> list[str]:
    record = card.record
    evidence = record.get("evidence") or {}
    lines = [f"### {_md(_card_title(card, results))}", "", f"**{_md(verdict(record).label)}**", ""]
    lines += [f"- **{_md(k)}:** {_md(v)}" for k, v in _card_fields(card, results)] + [""]
    criteria = _criteria_rows(evidence)
    if criteria:
        lines += _md_table(CRITERIA_HEADER, [cells for cells, _ in criteria]) + [""]
    details = _detail_items(evidence)
    if details:
        lines += ["Details: " + "; ".join(f"{_md(k)} = {_md(v)}" for k, v in details), ""]
    for name, spec in card.figures:
        title = spec.get("title", name) if isinstance(spec, dict) else name
        lines += [f"![{_md(title)}]({figure_paths[name]})" if name in figure_paths
                  else f"*Figure: {_md(title)} (in {HTML_NAME})*", ""]
    return lines


def render_markdown(results: dict, figure_paths: Mapping[str, str] | None = None) -> str:
    """The report as GitHub Markdown (``summary.md``).

    Parameters
    ----------
    results : dict
        A results.json object (schema version 3, or 2 or 1, see :func:`reports.results.upgrade`).
    figure_paths : mapping of str to str, optional
        Figure file name (as :func:`draw_figures` names them) -> relative path of its PNG, e.g.
        ``{"T1-digits-mlp-1.png": "figures/T1-digits-mlp-1.png"}``; figures without one are named only.

    Returns
    -------
    str
    """
    results = upgrade(results)
    cards = _cards(results)
    catalog = results.get("catalog")
    lines = ["# ensemble-claims: claim verdicts", ""]
    lines += [f"- **{_md(k)}:** {_md(v)}" for k, v in _header_items(results)] + ["", "## Verdicts", ""]
    lines += _md_table(TABLE_HEADER, [_table_row(c, catalog) for c in cards]) + ["", "## Claims", ""]
    for card in cards:
        lines += _md_card(card, results, figure_paths or {})
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------------------------------
# Files and command line


def write_report(results: dict, out_dir: Path) -> dict[str, Path]:
    """Write ``index.html``, ``summary.md`` and ``figures/*.png`` into out_dir.

    Parameters
    ----------
    results : dict
        A results.json object (schema version 3, or 2 or 1, see :func:`reports.results.upgrade`).
    out_dir : pathlib.Path
        Created when missing; files of the same names are replaced.

    Returns
    -------
    dict of str to pathlib.Path
        Path relative to out_dir (``"index.html"``, ``"summary.md"``, ``"figures/<name>.png"``) -> written file.
    """
    results = upgrade(results)
    out_dir = Path(out_dir)
    figures = draw_figures(results)
    pngs = {name: png for name, png in figures.items() if isinstance(png, bytes)}
    (out_dir / FIGURES_DIR if pngs else out_dir).mkdir(parents=True, exist_ok=True)
    written = {f"{FIGURES_DIR}/{name}": write_atomic(out_dir / FIGURES_DIR / name, png) for name, png in pngs.items()}
    markdown = render_markdown(results, {name: f"{FIGURES_DIR}/{name}" for name in pngs})
    written[MARKDOWN_NAME] = write_atomic(out_dir / MARKDOWN_NAME, markdown.encode("utf-8"))
    written[HTML_NAME] = write_atomic(out_dir / HTML_NAME, render_html(results, figures=figures).encode("utf-8"))
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m reports.render PATH [--out DIR]``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m reports.render",
                                     description="Render a results.json as index.html, summary.md and figures/.")
    parser.add_argument("path", type=Path, help=f"a {RESULTS_NAME}, or a folder containing one")
    parser.add_argument("--out", type=Path, default=None, help=f"output folder (default: the folder of {RESULTS_NAME})")
    args = parser.parse_args(argv)
    try:
        results, file = load_results(args.path), results_file(args.path)
    except ResultsError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    out_dir = args.out or file.parent
    try:
        written = write_report(results, out_dir)
    except OSError as exc:
        print(f"{parser.prog}: error: cannot write the report into {out_dir}: {exc}", file=sys.stderr)
        return 1
    html_file, n_figures = written[HTML_NAME], len(written) - 2
    print(f"{html_file} ({html_file.stat().st_size / 1024:.0f} KiB), {written[MARKDOWN_NAME]}, {n_figures} figures"
          + (f" in {out_dir / FIGURES_DIR}" if n_figures else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
