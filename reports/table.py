"""The terminal's verdict table: one row per claim test, in the catalog's order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from harness.catalog import CATALOG
from reports.results import UNDECIDABLE, headline, looks_text, shorten

NOTE_CHARS = 90  # keeps a row on one line of a wide terminal
TABLE_HEADER = ("claim", "setting", "statistic", "verdict", "seeds", "test")


def verdict_label(evidence: dict) -> str:
    """The evidence's verdict; ``"refuted (finding)"`` when a declared finding expected it,
    ``"... (undecidable)"`` where a finding declares the claim undecidable in that setting, and
    ``"... (dry run)"`` for a dry run's."""
    outcome, expected = evidence["outcome"], (evidence.get("finding") or {}).get("expected")
    if evidence.get("dry_run"):
        return f"{outcome} (dry run)"
    if expected == UNDECIDABLE:
        return f"{outcome} (undecidable)"
    return f"{outcome} (finding)" if expected == outcome else outcome


def _catalog_rank(record: dict) -> int:
    return list(CATALOG).index(record["claim"]) if record["claim"] in CATALOG else len(CATALOG)


def verdict_rows(records: Iterable[dict]) -> list[tuple[str, ...]]:
    """Rows (claim, setting, statistic or note, verdict, seeds, test outcome) of the terminal table.

    The seeds are the seed count of each look the decision took ("5→10"). A test without evidence
    shows why: its skip reason or its failure message.
    """
    rows = []
    for rec in sorted(records, key=_catalog_rank):  # the catalog's order, as the report; stable within a claim
        ev = rec["evidence"]
        note = headline(ev) if ev else rec["skip_reason"] or rec["message"] or ""
        rows.append((rec["claim"] or "?", rec["setting"] or "-", shorten(note, NOTE_CHARS),
                     verdict_label(ev) if ev else "-", looks_text(ev) if ev else "-", rec["outcome"]))
    return rows


def format_table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    """Left-aligned columns two spaces apart, with a dashed rule under the header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *map(line, rows)]


