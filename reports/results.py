"""The ``results.json`` contract (reports/SCHEMA.md), in one place for the plugin that writes it and
the renderer, the comparison and the stability check that read it: its name and version, the
outcomes and verdicts it records, reading it (:func:`load_results`: validated, older schema
versions upgraded, one error type), which criterion explains a claim's verdict and how it reads
(:func:`headline`), what the report counts (:func:`counts_text`), and writing a file atomically.

The verdicts, the property names under which evidence travels through pytest, and the formatting
of a criterion live in :mod:`harness.evidence`, the layer both the claim tests and the reports
build on; they are imported here, not restated.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from harness.evidence import DIRECTIONS, INCONCLUSIVE, REFUTED, REPRODUCES, format_criterion
from harness.evidence import OUTCOMES as VERDICTS
from harness.findings import UNDECIDABLE

RESULTS_NAME = "results.json"
SCHEMA_VERSION = 3
READABLE_VERSIONS = (SCHEMA_VERSION, 2, 1)
OUTCOMES = ("passed", "failed", "xfailed", "xpassed", "skipped", "error")  # pytest's summary order
# The kinds of test results.json's "tests" counts (reports.records.kind_of_test): tests marked
# `claim`, negative controls (test_negative_control_*, no claim marker: they decide no claim), the rest.
TEST_KINDS = ("claim", "negative_control", "other")
_KIND_NOUNS = {"claim": ("claim test", "claim tests"), "negative_control": ("negative control", "negative controls"),
               "other": ("other test", "other tests")}
NOT_COUNTED = "negative controls and other tests not counted in this file"
# Schema versions 1 and 2 decided PASS/FAIL on one bound against the threshold: a FAIL may have
# been refuted or inconclusive in version 3's terms, so their verdicts keep labels of their own.
LEGACY_PASS, LEGACY_FAIL = "PASS (schema 2)", "FAIL (schema 2)"
LEGACY_VERDICTS = {"PASS": LEGACY_PASS, "FAIL": LEGACY_FAIL}
_V1_OUTCOMES = {"xfail": "xfailed", "xpass": "xpassed"}
# Which criterion explains a verdict: the lowest rank, the first of equals.
_HEADLINE_RANK = {REFUTED: 0, LEGACY_FAIL: 0, INCONCLUSIVE: 1}

__all__ = ["INCONCLUSIVE", "LEGACY_FAIL", "LEGACY_PASS", "LEGACY_VERDICTS", "OUTCOMES", "READABLE_VERSIONS",
           "REFUTED", "REPRODUCES", "RESULTS_NAME", "SCHEMA_VERSION", "TEST_KINDS", "UNDECIDABLE", "VERDICTS",
           "ResultsError", "counts_text", "headline", "headline_criterion", "holds", "load_results", "looks_text",
           "results_file", "shorten", "upgrade", "upgrade_evidence", "upgrade_record", "write_atomic"]


class ResultsError(ValueError):
    """A results file that cannot be read: missing, unreadable, not JSON, or not of a readable schema."""


# ----------------------------------------------------------------------------------------------
# Reading


def results_file(path: Path | str) -> Path:
    """The results.json that ``path`` names: the file itself, or the one in a folder."""
    path = Path(path)
    return path / RESULTS_NAME if path.is_dir() else path


def load_results(path: Path | str) -> dict:
    """Read a results.json (or the one in a folder), validated and upgraded to :data:`SCHEMA_VERSION`.

    Raises
    ------
    ResultsError
        A missing or unreadable file, invalid JSON, or what :func:`upgrade` refuses; the message
        names the file.
    """
    file = results_file(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{file}: no such file" + (" (the folder has no results.json)" if Path(path).is_dir()
                                                      else f" (expected a {RESULTS_NAME} or a folder holding one)"))
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{file}: not valid JSON (not UTF-8 text): {exc}") from None
    except OSError as exc:
        raise ResultsError(f"{file}: cannot read it: {exc.strerror}") from None
    try:
        results = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{file}: not valid JSON: {exc}") from None
    try:
        return upgrade(results)
    except ResultsError as exc:
        raise ResultsError(f"{file}: {exc}") from None


def upgrade(results: object) -> dict:
    """The results in the current schema; versions 2 and 1 upgraded, anything else refused.

    Version 1 (session 1's plugin) is first upgraded to version 2 best effort: its records get
    their claim and setting from the evidence or the node id, outcomes ``xfail``/``xpass`` become
    ``xfailed``/``xpassed``. Version 2's evidence then takes version 3's shape with its PASS/FAIL
    labelled as schema 2's (:func:`upgrade_evidence`). An upgraded document records the version it
    was written in as ``upgraded_from``.

    Raises
    ------
    ResultsError
        Not an object, a ``schema_version`` other than :data:`READABLE_VERSIONS`, or claim records
        that are not objects with ``nodeid`` and ``outcome``.
    """
    if not isinstance(results, dict):
        raise ResultsError(f"not a results file: expected a JSON object with 'schema_version' and 'claims', "
                           f"got {type(results).__name__}")
    version = results.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise ResultsError(f"unsupported schema_version {version!r}: this tool reads versions "
                           f"{', '.join(map(str, READABLE_VERSIONS))} (reports/SCHEMA.md); write a current one "
                           "with pytest --report-dir")
    claims = results.get("claims")
    if not isinstance(claims, list) or not all(isinstance(r, dict) and "nodeid" in r and "outcome" in r
                                                for r in claims):
        raise ResultsError(f"'claims' must be a list of objects with 'nodeid' and 'outcome', got {str(claims)[:80]}")
    try:
        if version != SCHEMA_VERSION:
            if version == 1:
                claims = [_upgrade_v1_record(r) for r in claims]
            results = {**results, "schema_version": SCHEMA_VERSION, "upgraded_from": version,
                       "claims": [upgrade_record(r) for r in claims]}
        for record in results["claims"]:
            _check_evidence(record.get("evidence"))
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        raise ResultsError(f"a claim record does not follow the schema: {type(exc).__name__}: {exc}") from None
    return results


def _check_evidence(evidence: object) -> None:
    """Raise (TypeError, ValueError) unless ``evidence`` is None or has a list of criteria whose
    estimates and thresholds are numbers (or null) and whose directions are known."""
    if evidence is None:
        return
    for criterion in evidence["criteria"]:
        for key in ("estimate", "threshold"):
            value = criterion.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise TypeError(f"criterion {criterion.get('name')!r}: {key} {value!r} is not a number")
        if criterion.get("direction") not in DIRECTIONS:
            raise ValueError(f"criterion {criterion.get('name')!r}: unknown direction {criterion.get('direction')!r}")


def _upgrade_v1_record(record: dict) -> dict:
    """A version-1 claim record with the fields version 2 added, recovered where the record allows."""
    evidence = record.get("evidence") or {}
    nodeid = record.get("nodeid", "")
    test = re.search(r"::test_([a-z]+\d+)_", nodeid)  # claim tests are named test_<id>_...
    param = re.search(r"\[(.*)\]$", nodeid)
    return {"claim": evidence.get("claim") or (test and test.group(1).upper()),
            "source": (evidence.get("marker") or {}).get("source"),
            "setting": evidence.get("setting") or (param and param.group(1)), "message": None, **record,
            "outcome": _V1_OUTCOMES.get(record.get("outcome"), record.get("outcome"))}


# ----------------------------------------------------------------------------------------------
# Reading a record


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


def headline(evidence: dict) -> str | None:
    """The criterion that explains the verdict (:func:`headline_criterion`), as
    ``name: estimate [lo, hi] direction threshold`` (:func:`harness.evidence.format_criterion`);
    None without criteria."""
    main = headline_criterion(evidence)
    return None if main is None else format_criterion(main, level=False)


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


def _number_of(n: int, kind: str) -> str:
    singular, plural = _KIND_NOUNS.get(kind, (f"{kind} test", f"{kind} tests"))
    return f"{n} {singular if n == 1 else plural}"


def _outcomes_text(counts: Mapping[str, int]) -> str:
    # As pytest's terminal line words them: "1 error", "3 errors".
    return ", ".join(f"{counts[o]} {o}{'s' if o == 'error' and counts[o] != 1 else ''}"
                     for o in OUTCOMES if counts.get(o))


def _kind_text(kind: str, counts: Mapping[str, int]) -> str:
    n = sum(counts.values())
    return _number_of(n, kind) + (f" ({_outcomes_text(counts)})" if n else "")


def counts_text(results: Mapping) -> str:
    """What the report counts, in words that add up to pytest's own count.

    With ``results["tests"]`` (every test of the session by kind and outcome, :data:`TEST_KINDS`):
    the claim tests, the negative controls and the other tests (those two when there are any), then
    the total by outcome, which is pytest's terminal line, but for one thing: here each test has one
    outcome, while pytest counts a failing teardown as an error besides the test's own outcome (a
    test that passed, then failed in teardown, is here an error; one that failed is here failed).
    Without it (a file written before the key existed): the claim tests alone, from
    ``results["summary"]`` or else counted from the records, saying that the rest was not counted.

    Examples
    --------
    >>> counts_text({"tests": {"claim": {"passed": 29, "xfailed": 3}, "negative_control": {"passed": 45}}})
    '32 claim tests (29 passed, 3 xfailed), 45 negative controls (45 passed); 77 tests in all: 74 passed, 3 xfailed'
    >>> counts_text({"summary": {"passed": 2}, "claims": [{}, {}]})
    '2 claim tests (2 passed); negative controls and other tests not counted in this file'
    """
    tests = results.get("tests")
    if not isinstance(tests, Mapping):
        summary = results.get("summary")
        if not isinstance(summary, Mapping):
            claims = results.get("claims") or []
            summary = {o: sum(r.get("outcome") == o for r in claims) for o in OUTCOMES}
        return f"{_kind_text('claim', summary)}; {NOT_COUNTED}"
    parts = [_kind_text(kind, tests.get(kind) or {}) for kind in TEST_KINDS
             if kind == "claim" or sum((tests.get(kind) or {}).values())]
    total = {o: sum((tests.get(kind) or {}).get(o, 0) for kind in TEST_KINDS) for o in OUTCOMES}
    n = sum(total.values())
    in_all = f"{n} {'test' if n == 1 else 'tests'} in all" + (f": {_outcomes_text(total)}" if n else "")
    return f"{', '.join(parts)}; {in_all}"


# ----------------------------------------------------------------------------------------------
# Writing


def write_atomic(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary sibling renamed into place; returns ``path``.

    A reader never sees half a file, and a failure leaves neither a partial file nor the temporary one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one an ellipsis when it was cut."""
    return text if len(text) <= width else text[:width - 1] + "…"
