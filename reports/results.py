"""What the report modules share about ``results.json`` (reports/SCHEMA.md): its name, version,
outcomes, and which criterion explains a claim's verdict."""

from __future__ import annotations

RESULTS_NAME = "results.json"
SCHEMA_VERSION = 2
OUTCOMES = ("passed", "failed", "xfailed", "xpassed", "skipped", "error")  # pytest's summary order

__all__ = ["OUTCOMES", "RESULTS_NAME", "SCHEMA_VERSION", "headline_criterion"]


def headline_criterion(evidence: dict) -> dict | None:
    """The criterion that explains a verdict: the first failing one of a FAIL, else the first.

    ``passed`` may be the string "True" in files of schema version 1 (numpy booleans written as text).
    """
    criteria = evidence.get("criteria") or []
    return next((c for c in criteria if c.get("passed") not in (True, "True")), criteria[0] if criteria else None)
