"""The README's claims table, from a results.json.

``python -m reports.readme_table RESULTS_JSON`` prints a Markdown table, one row per claim test in
the catalog's order: claim id, title, setting, verdict, and the statistic that explains the verdict
with its interval and threshold (:func:`reports.results.headline`). With ``--readme README.md`` it
replaces the text between :data:`START` and :data:`END` in that file instead, in place, and
prints nothing. Exit status: 0, or 2 on a results file that cannot be read
(:class:`reports.results.ResultsError`) or a README without the markers.

It reads only the results file (reports/SCHEMA.md), through :func:`reports.results.load_results`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path

from harness.catalog import CATALOG
from reports.results import ResultsError, headline, load_results, shorten
from reports.table import verdict_label

START = "<!-- claims-table:start -->"
END = "<!-- claims-table:end -->"
HEADER = ("claim", "title", "setting", "verdict", "statistic [interval] threshold")
NOTE_CHARS = 160  # a skip reason or failure message in the statistic column is cut to this


class MarkerError(ValueError):
    """A README without the claims table's markers, or with them out of order."""


def _cell(text: object) -> str:
    # A Markdown table cell: one line, pipes escaped.
    return " ".join(str(text).split()).replace("|", "\\|")


def _rank(record: Mapping) -> int:
    claim = record.get("claim")
    return list(CATALOG).index(claim) if claim in CATALOG else len(CATALOG)


def table_rows(results: Mapping) -> list[tuple[str, ...]]:
    """Rows (claim, title, setting, verdict, statistic) of the table, in the catalog's order (run
    order within a claim). The title is the results file's catalog entry's; a record without
    evidence (skipped, an error) shows its pytest outcome as the verdict and its reason or message
    as the statistic."""
    catalog = results.get("catalog") or {}
    rows = []
    for rec in sorted(results.get("claims") or [], key=_rank):
        claim = rec.get("claim") or "?"
        ev = rec.get("evidence")
        if ev:
            verdict, statistic = verdict_label(ev), headline(ev) or ""
        else:
            verdict = rec.get("outcome") or "-"
            statistic = shorten(rec.get("skip_reason") or rec.get("message") or "", NOTE_CHARS)
        title = (catalog.get(claim) or {}).get("title") or ""
        rows.append((claim, title, rec.get("setting") or "-", verdict, statistic))
    return rows


def caption(results: Mapping) -> str:
    """One line under the table: when the results were made, at which commit, by which command."""
    git = results.get("git") or {}
    commit = (git.get("commit") or "")[:7] or "unknown commit"
    if git.get("dirty"):
        commit += ", uncommitted changes"
    command = " ".join(results.get("command") or [])
    created = results.get("created") or "unknown time"
    return f"From results.json of {created} ({commit}): `{_cell(command)}`." if command else \
        f"From results.json of {created} ({commit})."


def markdown_table(results: Mapping) -> str:
    """The table as Markdown, then a blank line and the :func:`caption`."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table_rows(results)]
    return "\n".join(lines) + "\n\n" + caption(results)


def replace_block(text: str, block: str) -> str:
    """``text`` with everything between :data:`START` and :data:`END` replaced by ``block``
    (the markers stay, each on its own line)."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < 0 or end < start:
        raise MarkerError(f"expected the markers {START} and {END}, in that order")
    return text[:start + len(START)] + "\n" + block.strip("\n") + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: print the table, or write it into ``--readme``; 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m reports.readme_table", description=__doc__.split("\n")[0],
                                     epilog="Exit status: 0, or 2 on bad input.")
    parser.add_argument("results", type=Path, help="a results.json, or a folder holding one")
    parser.add_argument("--readme", type=Path, help="replace the table between the claims-table markers of this file")
    args = parser.parse_args(argv)
    try:
        table = markdown_table(load_results(args.results))
    except ResultsError as exc:
        print(f"reports.readme_table: error: {exc}", file=sys.stderr)
        return 2
    if args.readme is None:
        print(table)
        return 0
    try:
        text = args.readme.read_text(encoding="utf-8")
        args.readme.write_text(replace_block(text, table), encoding="utf-8")
    except (OSError, MarkerError) as exc:
        print(f"reports.readme_table: error: {args.readme}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
