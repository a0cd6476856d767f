"""The records of results.json, built from pytest's test reports, and the document around them.

A claim test is a test marked ``claim(id=...)``. Its record is built from its test reports (setup,
call, teardown) alone, so that it comes out the same under pytest-xdist, where the controlling
process sees reports but no test items:

- the marker's claim id and the test's setting are added to ``item.user_properties`` when the
  item is collected (on the process that runs it, :func:`reports.plugin.pytest_itemcollected`),
  and user properties travel with every report;
- the evidence arrives the same way, through ``record_property`` (see :mod:`fixtures.evidence`,
  :data:`harness.evidence.EVIDENCE_PROPERTY`).

Every other test is counted too, by kind (:func:`kind_of_test`: claim tests, negative controls,
other tests) and outcome, so that the report's counts add up to pytest's (:func:`tests_section`).

:func:`build_results` adds provenance (:mod:`harness.provenance`), the options, the settings and
the catalog entries of the claims that ran (reports/SCHEMA.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path

import pytest

from harness import provenance, settings
from harness.catalog import CATALOG
from harness.evidence import EVIDENCE_PROPERTY
from reports.results import OUTCOMES, SCHEMA_VERSION, TEST_KINDS, shorten, write_atomic

MARKER_PROPERTY = "claim_marker"
# The kinds of test the report counts (reports.results.TEST_KINDS), and how a negative control is named
# (DESIGN.md: every claim has one; it is no claim test, as it decides no claim).
CLAIM_TEST, NEGATIVE_CONTROL, OTHER_TEST = TEST_KINDS
NEGATIVE_CONTROL_PREFIX = "test_negative_control_"
MESSAGE_CHARS = 200  # results.json: enough for an exception's first line
# How pytest names its own outcome exceptions in a crash line: the text after them is the message.
OUTCOME_EXCEPTION_PREFIXES = ("Failed: ", "_pytest.outcomes.XFailed: ")


# ----------------------------------------------------------------------------------------------
# Collection: what the controller will need, attached to the item where it is collected.

def setting_of(params: dict, param_id: str | None) -> str | None:
    """The setting a parametrized test ran on: its ``setting`` argument, else its parametrize id.

    Parameters
    ----------
    params : dict
        The test's parametrized arguments (``item.callspec.params``); empty when not parametrized.
    param_id : str or None
        The text in the node id's brackets (``item.callspec.id``).
    """
    value = params.get("setting")
    if isinstance(value, str):
        return value
    if isinstance(value, settings.Setting):
        return value.name
    return param_id


def claim_marker_info(item: pytest.Item) -> dict | None:
    """``{"id", "setting"}`` of a claim test; None for any other test."""
    marker = item.get_closest_marker("claim")
    if marker is None:
        return None
    callspec = getattr(item, "callspec", None)
    return {
        "id": marker.kwargs.get("id", marker.args[0] if marker.args else None),
        "setting": setting_of(callspec.params, callspec.id) if callspec is not None else None,
    }



# ----------------------------------------------------------------------------------------------
# From the test reports of one test to its record.

def phase_outcome(report: pytest.TestReport) -> str | None:
    """What one phase says of the test, in results.json's words; None for a setup or teardown that passed."""
    xfail = hasattr(report, "wasxfail")
    if report.skipped:
        return "xfailed" if xfail else "skipped"
    if report.when == "call":
        if report.failed:
            return "failed"  # a strict XPASS too: pytest fails it, with "[XPASS(strict)] reason"
        return "xpassed" if xfail else "passed"
    return "error" if report.failed else None


def decisive_report(reports: Sequence[pytest.TestReport]) -> pytest.TestReport | None:
    """The report that decides the test's outcome.

    The first phase with an outcome decides, except that a failing teardown turns a passed test
    into an error (as pytest counts it); after a failed call the call's failure is the news.
    """
    decided = None
    for report in reports:
        outcome = phase_outcome(report)
        if outcome is None:
            continue
        if decided is None or (report.when == "teardown" and phase_outcome(decided) in ("passed", "xpassed")):
            decided = report
    return decided


def failure_message(report: pytest.TestReport) -> str | None:
    """The first line of a failure's exception message, as pytest's short test summary shows it.

    None for a report that neither failed nor xfailed. The first line is the informative one: a
    claim judged by ``fixtures.evidence.judge`` gives "T1 refuted on <setting> over 5 seeds ...";
    the type of pytest's own outcome exceptions (``pytest.fail``, ``pytest.xfail``) is left out.
    """
    if not (report.failed or (report.skipped and hasattr(report, "wasxfail"))):
        return None
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        text = crash.message
    else:  # a plain string ("[XPASS(strict)] ..."), or a repr without a crash line (a missing fixture)
        lines = [line for line in str(report.longrepr).splitlines() if line.strip()]
        # pytest marks the error's own lines with "E "; the last line would be the file location.
        marked = [line[1:] for line in lines if line.startswith("E ")]
        text = (marked or lines[-1:] or [""])[0]
    for outcome_type in OUTCOME_EXCEPTION_PREFIXES:
        text = text.removeprefix(outcome_type)
    lines = text.strip().splitlines()
    return shorten(lines[0], MESSAGE_CHARS) if lines else None


def skip_reason(report: pytest.TestReport) -> str | None:
    """The reason of a skip, an xfail or an xpass; None otherwise."""
    if hasattr(report, "wasxfail"):
        return report.wasxfail
    if report.skipped and isinstance(report.longrepr, (tuple, list)):  # (path, line, "Skipped: reason")
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return None


def _values(properties: Iterable[tuple[str, object]], name: str) -> list:
    return [value for key, value in properties if key == name]


def claim_record(reports: Sequence[pytest.TestReport], properties: Sequence[tuple[str, object]] | None = None
                 ) -> dict | None:
    """The results.json record of one claim test from its reports (setup, call, teardown, in order).

    Parameters
    ----------
    reports : sequence of pytest.TestReport
        The test's reports, in order.
    properties : sequence of (str, object), optional
        The test's user properties, with the ``claim_marker`` property (:func:`pytest_itemcollected`);
        by default the last report's (each phase's report carries every property recorded so far).

    Returns
    -------
    dict or None
        None when no phase decided an outcome (a session interrupted during the test).
    """
    decided = decisive_report(reports)
    if decided is None:
        return None
    last = reports[-1]
    properties = last.user_properties if properties is None else properties
    marker = _values(properties, MARKER_PROPERTY)[-1]
    evidence = _values(properties, EVIDENCE_PROPERTY)
    main = evidence[-1] if evidence else None
    return {
        "nodeid": last.nodeid,
        "claim": marker.get("id") or (main or {}).get("claim"),
        "source": _catalog_source(marker.get("id") or (main or {}).get("claim")),
        "setting": marker.get("setting") or (main or {}).get("setting"),
        "outcome": phase_outcome(decided),
        "duration_s": sum(r.duration for r in reports),
        "skip_reason": skip_reason(decided),
        "message": failure_message(decided),
        "evidence": main,
        "evidence_more": evidence[:-1],
    }


def kind_of_test(nodeid: str, is_claim_test: bool) -> str:
    """Which count of the report a test goes to: ``"claim"``, ``"negative_control"`` or ``"other"``.

    Parameters
    ----------
    nodeid : str
        The test's pytest node id (``path::[Class::]function[params]``).
    is_claim_test : bool
        Whether the test carries the ``claim`` marker; a marked test is a claim test whatever its name.
    """
    if is_claim_test:
        return CLAIM_TEST
    function = nodeid.rsplit("::", 1)[-1].split("[", 1)[0]
    return NEGATIVE_CONTROL if function.startswith(NEGATIVE_CONTROL_PREFIX) else OTHER_TEST


def tests_section(kinds_and_outcomes: Iterable[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """results.json's ``tests``: the number of tests of each kind per outcome, every kind and outcome present.

    Parameters
    ----------
    kinds_and_outcomes : iterable of (str, str)
        One (:func:`kind_of_test`, outcome as :func:`phase_outcome` names it) per test that has one.
    """
    counts = Counter(kinds_and_outcomes)
    return {kind: {outcome: counts[kind, outcome] for outcome in OUTCOMES} for kind in TEST_KINDS}


class ClaimCollector:
    """Keeps the reports of every test, in the order the tests first reported, and their properties."""

    def __init__(self) -> None:
        self.reports: dict[str, list[pytest.TestReport]] = {}
        self.properties: dict[str, list[tuple[str, object]]] = {}  # each test's, as its last report had them
        self.started = time.monotonic()
        self.written: Path | None = None  # results.json, once written
        self.rendered: dict[str, Path] = {}
        self.render_error: str | None = None

    # The outermost wrapper: it sees each report before reports.junit takes the properties off it
    # (under --junitxml), and keeps them for the records.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, object, object]:
        self.reports.setdefault(report.nodeid, []).append(report)
        self.properties[report.nodeid] = list(report.user_properties)
        return (yield)

    def _is_claim_test(self, nodeid: str) -> bool:
        return bool(_values(self.properties[nodeid], MARKER_PROPERTY))

    def records(self) -> list[dict]:
        """One record per claim test that has an outcome, in run order."""
        records = (claim_record(reports, self.properties[nodeid]) for nodeid, reports in self.reports.items()
                   if self._is_claim_test(nodeid))
        return [r for r in records if r is not None]

    def tests(self) -> dict[str, dict[str, int]]:
        """:func:`tests_section` of every test that has an outcome: one outcome each, as in its record."""
        decided = ((nodeid, decisive_report(reports)) for nodeid, reports in self.reports.items())
        return tests_section((kind_of_test(nodeid, self._is_claim_test(nodeid)), phase_outcome(report))
                             for nodeid, report in decided if report is not None)



def _catalog_source(claim: str | None) -> str | None:
    info = CATALOG.get(claim)
    return None if info is None else info.source


# ----------------------------------------------------------------------------------------------
# The rest of results.json: provenance and the sections keyed by setting and claim.

def summary_counts(records: Iterable[dict]) -> dict[str, int]:
    """Number of claim tests per outcome, every outcome present."""
    counts = Counter(r["outcome"] for r in records)
    return {outcome: counts[outcome] for outcome in OUTCOMES}


def harness_options(config: pytest.Config) -> tuple[dict, str | None]:
    """The harness's effective options, and the device they resolved to.

    Asked through the ``pytest_claims_options`` hook (:class:`reports.plugin.Hookspecs`), which the
    options plugin (``fixtures.options``) answers, so that the reports never import the fixtures.
    Each option is None where no plugin answered.
    """
    options = {"runs_dir": None, "data_root": None, "device": config.getoption("--device", None),
               "seeds": None, "seed_offset": None, "markexpr": config.getoption("markexpr", None) or None}
    answer = config.hook.pytest_claims_options(config=config)
    if answer is None:
        return options, None
    effective, device = answer
    return {**options, **effective}, device


def settings_section(names: Iterable[str]) -> dict[str, dict]:
    """``dataclasses.asdict`` of each registered setting among ``names``, with its cache key."""
    section = {}
    for name in dict.fromkeys(names):
        try:
            setting = settings.get(name)
        except KeyError:  # a parametrize id that is not a registered setting
            continue
        section[name] = {"cache_key": setting.cache_key(), **dataclasses.asdict(setting)}
    return section


def catalog_section(claim_ids: Iterable[str]) -> dict[str, dict]:
    """``ClaimInfo.to_dict()`` of each catalogued claim among ``claim_ids``, in catalog order (the
    report's order)."""
    ran = set(claim_ids)
    return {cid: info.to_dict() for cid, info in CATALOG.items() if cid in ran}


def build_results(config: pytest.Config, records: list[dict], duration_s: float,
                  tests: dict[str, dict[str, int]] | None = None) -> dict:
    """The results.json document of a finished session.

    ``tests`` (:func:`tests_section`, :meth:`ClaimCollector.tests`) is written as the ``tests``
    key when given: the session's tests of every kind, as ``summary`` counts the claim tests.
    """
    options, device = harness_options(config)
    return {
        "schema_version": SCHEMA_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": duration_s,
        "command": ["pytest", *config.invocation_params.args],
        "git": provenance.git_info(config.rootpath),
        "machine": provenance.machine(device),
        "options": options,
        "settings": settings_section(r["setting"] for r in records if r["setting"]),
        "catalog": catalog_section(r["claim"] for r in records if r["claim"]),
        "summary": summary_counts(records),
        **({} if tests is None else {"tests": tests}),
        "claims": records,
    }


def _json_default(value: object) -> object:
    # numpy scalars and arrays that a claim put into its details; anything else as its text.
    return value.tolist() if hasattr(value, "tolist") else str(value)


def write_results(path: Path, document: dict) -> None:
    """Write ``document`` as JSON to ``path`` atomically (:func:`reports.results.write_atomic`).

    NaN and infinities are written as ``NaN``/``Infinity``, which ``json.loads`` reads back.
    """
    write_atomic(path, json.dumps(document, indent=2, default=_json_default).encode("utf-8"))
