"""What the report modules share about ``results.json`` (reports/SCHEMA.md): its name, version,
outcomes and verdicts, which criterion explains a claim's verdict, and how evidence of the older
schema versions reads in the current one."""

from __future__ import annotations

RESULTS_NAME = "results.json"
SCHEMA_VERSION = 3
OUTCOMES = ("passed", "failed", "xfailed", "xpassed", "skipped", "error")  # pytest's summary order
VERDICTS = REPRODUCES, REFUTED, INCONCLUSIVE = ("reproduces", "refuted", "inconclusive")
# Schema versions 1 and 2 decided PASS/FAIL on one bound against the threshold: a FAIL may have
# been refuted or inconclusive in version 3's terms, so their verdicts keep labels of their own.
# A declared finding's "expected" for a claim whose statistic sits on its threshold in a setting:
# its verdict is recorded but not judged (harness.findings.UNDECIDABLE).
UNDECIDABLE = "undecidable"
LEGACY_PASS, LEGACY_FAIL = "PASS (schema 2)", "FAIL (schema 2)"
LEGACY_VERDICTS = {"PASS": LEGACY_PASS, "FAIL": LEGACY_FAIL}
# Which criterion explains a verdict: the lowest rank, the first of equals.
_HEADLINE_RANK = {REFUTED: 0, LEGACY_FAIL: 0, INCONCLUSIVE: 1}

__all__ = ["INCONCLUSIVE", "LEGACY_FAIL", "LEGACY_PASS", "LEGACY_VERDICTS", "OUTCOMES", "REFUTED", "REPRODUCES", "UNDECIDABLE",
           "RESULTS_NAME", "SCHEMA_VERSION", "VERDICTS", "describe_criterion", "headline_criterion", "holds",
           "looks_text", "upgrade_evidence", "upgrade_record"]


def headline_criterion(evidence: dict) -> dict | None:
    """The criterion that explains a verdict: the first refuted one, else the first inconclusive
    one, else the first; None without criteria.

    Parameters
    ----------
    evidence : dict
        A claim record's evidence: schema version 3, or upgraded by :func:`upgrade_evidence` (a
        schema-2 FAIL criterion ranks as a refuted one).
    """
    return min(evidence.get("criteria") or [], key=lambda c: _HEADLINE_RANK.get(c.get("outcome"), 2), default=None)


def holds(verdict: str | None) -> bool | None:
    """Whether a verdict says the claim holds: True for reproduces (and a schema-2 PASS), None for no verdict."""
    return None if verdict is None else verdict in (REPRODUCES, LEGACY_PASS)


def describe_criterion(criterion: dict) -> str:
    """``name estimate [lo, hi] direction threshold``, numbers to 4 significant digits.

    The interval is left out where a criterion has none (schema version 2 allowed that).
    """
    ci = criterion.get("ci")
    interval = "" if ci is None else f" [{ci[0]:.4g}, {ci[1]:.4g}]"
    return (f"{criterion['name']} {criterion['estimate']:.4g}{interval} "
            f"{criterion['direction']} {criterion['threshold']:.4g}")


def looks_text(evidence: dict) -> str:
    """The seed count of each look of the decision, e.g. "5→10→20"; one look reads "5"."""
    return "→".join(map(str, evidence.get("looks") or [_n_seeds(evidence)]))


def _n_seeds(evidence: dict) -> int:
    # Evidence of schema version 1 may lack n_seeds; its seeds say as much.
    return evidence.get("n_seeds", len(evidence.get("seeds") or []))


def upgrade_evidence(evidence: dict) -> dict:
    """Evidence of schema version 1 or 2 in version 3's shape.

    ``verdict`` and each criterion's ``passed`` become ``outcome``, spelled :data:`LEGACY_PASS` or
    :data:`LEGACY_FAIL` (never one of :data:`VERDICTS`: see above); ``value`` goes (it is the end of
    ``ci`` that was compared, or the estimate); a version-2 decision took one look at all its seeds,
    declared no finding and had no cap. ``ci`` and ``level`` stay, null where version 2 had none.
    """
    criteria = [{**{k: v for k, v in c.items() if k not in ("value", "passed")},
                 # Version-1 files hold some booleans as the strings "True"/"False" (numpy bools written with str).
                 "outcome": LEGACY_PASS if c.get("passed") in (True, "True") else LEGACY_FAIL}
                for c in evidence.get("criteria") or []]
    n_seeds = _n_seeds(evidence)
    kept = {k: v for k, v in evidence.items() if k != "verdict"}
    return {**kept, "n_seeds": n_seeds, "looks": [n_seeds], "max_seeds": None,
            "outcome": LEGACY_VERDICTS.get(evidence.get("verdict")), "criteria": criteria, "finding": None}


def upgrade_record(record: dict) -> dict:
    """A claim record of schema version 2 with its evidence (and earlier evidence) in version 3's shape."""
    evidence = record.get("evidence")
    return {**record, "evidence": upgrade_evidence(evidence) if evidence else evidence,
            "evidence_more": [upgrade_evidence(e) for e in record.get("evidence_more") or []]}
