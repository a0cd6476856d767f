"""Collect every claim test into ``results.json``; render the report; print a verdict table.

A claim test is a test marked ``claim(id=..., source=...)``. Its record is built from its test
reports (setup, call, teardown) alone, so that it comes out the same under pytest-xdist, where the
controlling process sees reports but no test items:

- the marker's arguments and the test's setting are added to ``item.user_properties`` when the
  item is collected (on the process that runs it), and user properties travel with every report;
- the evidence arrives the same way, through ``record_property`` (see :mod:`fixtures.evidence`).

``--report-dir DIR`` writes ``DIR/results.json`` (schema in ``reports/SCHEMA.md``) and then the
rendered report (``reports.render.write_report``). A renderer that is missing or raises costs the
rendered pages only: ``results.json`` is written first, and the terminal names the failure.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from fixtures.evidence import EVIDENCE_PROPERTY
from harness import settings
from reports.results import (
    UNDECIDABLE,
    OUTCOMES,
    RESULTS_NAME,
    SCHEMA_VERSION,
    describe_criterion,
    headline_criterion,
    looks_text,
)

MARKER_PROPERTY = "claim_marker"
MESSAGE_CHARS = 200  # results.json: enough for an exception's first line
NOTE_CHARS = 90  # terminal table: keeps a row on one line of a wide terminal
TABLE_HEADER = ("claim", "setting", "statistic", "verdict", "seeds", "test")
GIT_TIMEOUT_S = 10
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
    """``{"id", "source", "setting"}`` of a claim test; None for any other test."""
    marker = item.get_closest_marker("claim")
    if marker is None:
        return None
    callspec = getattr(item, "callspec", None)
    return {
        "id": marker.kwargs.get("id", marker.args[0] if marker.args else None),
        "source": marker.kwargs.get("source"),
        "setting": setting_of(callspec.params, callspec.id) if callspec is not None else None,
    }


def pytest_itemcollected(item: pytest.Item) -> None:
    info = claim_marker_info(item)
    if info is not None:
        item.user_properties.append((MARKER_PROPERTY, info))


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


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


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
    return _clip(lines[0], MESSAGE_CHARS) if lines else None


def skip_reason(report: pytest.TestReport) -> str | None:
    """The reason of a skip, an xfail or an xpass; None otherwise."""
    if hasattr(report, "wasxfail"):
        return report.wasxfail
    if report.skipped and isinstance(report.longrepr, (tuple, list)):  # (path, line, "Skipped: reason")
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return None


def _properties(report: pytest.TestReport, name: str) -> list:
    return [value for key, value in report.user_properties if key == name]


def claim_record(reports: Sequence[pytest.TestReport]) -> dict | None:
    """The results.json record of one claim test from its reports (setup, call, teardown, in order).

    Each report carries the ``claim_marker`` property (:func:`pytest_itemcollected`).

    None when no phase decided an outcome (a session interrupted during the test).
    """
    decided = decisive_report(reports)
    if decided is None:
        return None
    last = reports[-1]  # each phase's report carries every property recorded so far
    marker = _properties(last, MARKER_PROPERTY)[-1]
    evidence = _properties(last, EVIDENCE_PROPERTY)
    main = evidence[-1] if evidence else None
    return {
        "nodeid": last.nodeid,
        "claim": marker.get("id") or (main or {}).get("claim"),
        "source": marker.get("source"),
        "setting": marker.get("setting") or (main or {}).get("setting"),
        "outcome": phase_outcome(decided),
        "duration_s": sum(r.duration for r in reports),
        "skip_reason": skip_reason(decided),
        "message": failure_message(decided),
        "evidence": main,
        "evidence_more": evidence[:-1],
    }


class ClaimCollector:
    """Keeps the reports of every claim test, in the order the tests first reported."""

    def __init__(self) -> None:
        self.reports: dict[str, list[pytest.TestReport]] = {}
        self.started = time.monotonic()
        self.written: Path | None = None  # results.json, once written
        self.rendered: dict[str, Path] = {}
        self.render_error: str | None = None

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if _properties(report, MARKER_PROPERTY):
            self.reports.setdefault(report.nodeid, []).append(report)

    def records(self) -> list[dict]:
        """One record per claim test that has an outcome, in run order."""
        return [r for r in map(claim_record, self.reports.values()) if r is not None]


# ----------------------------------------------------------------------------------------------
# The rest of results.json: provenance and the sections keyed by setting and claim.

def summary_counts(records: Iterable[dict]) -> dict[str, int]:
    """Number of claim tests per outcome, every outcome present."""
    counts = Counter(r["outcome"] for r in records)
    return {outcome: counts[outcome] for outcome in OUTCOMES}


def git_info(cwd: Path) -> dict:
    """``{"commit", "dirty"}`` of the checkout at ``cwd``; both None without git or outside a repository.

    ``dirty`` counts changes to tracked files only, as ``git describe --dirty`` does.
    """
    def git(*args: str) -> str:
        # --no-optional-locks: status must not take the index lock of a checkout someone is committing in.
        return subprocess.run(["git", "--no-optional-locks", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info(device: str | None) -> dict:
    """Platform, package versions, and ``device``: where the claims' runs were trained."""
    import torch  # the harness's own dependency; imported here to keep this module light to import

    return {
        "platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": _version("torch"), "numpy": _version("numpy"), "scipy": _version("scipy"),
        "device": device,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def harness_options(config: pytest.Config) -> tuple[dict, str | None]:
    """The harness's effective options (``fixtures.options``), and the device they resolved to.

    Each option is None where that plugin did not configure the session.
    """
    options = {"runs_dir": None, "data_root": None, "device": config.getoption("--device", None),
               "seeds": None, "seed_offset": None, "markexpr": config.getoption("markexpr", None) or None}
    try:
        from fixtures.options import get_options
        opts = get_options(config)
    except (ImportError, KeyError):  # KeyError: the options plugin did not configure this session
        return options, None
    return {**options, "runs_dir": str(opts.runs_dir), "data_root": str(opts.data_root), "seeds": opts.n_seeds,
            "seed_offset": opts.seed_offset}, str(opts.device)


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
    report's order); empty without a catalog."""
    try:
        from harness.catalog import CATALOG
    except ImportError:
        return {}
    ran = set(claim_ids)
    return {cid: info.to_dict() for cid, info in CATALOG.items() if cid in ran}


def build_results(config: pytest.Config, records: list[dict], duration_s: float) -> dict:
    """The results.json document of a finished session."""
    options, device = harness_options(config)
    return {
        "schema_version": SCHEMA_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": duration_s,
        "command": ["pytest", *config.invocation_params.args],
        "git": git_info(config.rootpath),
        "machine": machine_info(device),
        "options": options,
        "settings": settings_section(r["setting"] for r in records if r["setting"]),
        "catalog": catalog_section(r["claim"] for r in records if r["claim"]),
        "summary": summary_counts(records),
        "claims": records,
    }


def _json_default(value: object) -> object:
    # numpy scalars and arrays that a claim put into its details; anything else as its text.
    return value.tolist() if hasattr(value, "tolist") else str(value)


def write_json_atomic(path: Path, document: dict) -> None:
    """Write ``document`` to ``path`` through a temporary file: a reader never sees half a file.

    NaN and infinities are written as ``NaN``/``Infinity``, which ``json.loads`` reads back.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(document, indent=2, default=_json_default))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def render(results: dict, out_dir: Path) -> tuple[dict[str, Path], str | None]:
    """``reports.render.write_report(results, out_dir)``, and the error text if it could not run."""
    try:
        from reports.render import write_report
        return {name: Path(path) for name, path in write_report(results, out_dir).items()}, None
    except Exception as exc:  # a broken renderer must not cost results.json or change the exit status
        return {}, f"{type(exc).__name__}: {exc}"


# ----------------------------------------------------------------------------------------------
# pytest hooks of the session.

_KEY = pytest.StashKey[ClaimCollector]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("ensemble-claims").addoption(
        "--report-dir", default=None,
        help="write results.json (claims, evidence, outcomes, provenance) and the rendered report into this folder")


def pytest_configure(config: pytest.Config) -> None:
    collector = ClaimCollector()
    config.stash[_KEY] = collector
    config.pluginmanager.register(collector, "ensemble-claims-collector")


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    report_dir = config.getoption("--report-dir")
    if not report_dir or hasattr(config, "workerinput"):  # xdist workers report to the controller
        return
    collector = config.stash[_KEY]
    out_dir = Path(report_dir)
    results = build_results(config, collector.records(), time.monotonic() - collector.started)
    write_json_atomic(out_dir / RESULTS_NAME, results)
    collector.written = out_dir / RESULTS_NAME
    # Render what was written (tuples become lists, numpy values numbers), so that rendering the
    # file later with `python -m reports.render` gives the same report.
    written = json.loads((out_dir / RESULTS_NAME).read_text())
    collector.rendered, collector.render_error = render(written, out_dir)


def headline(evidence: dict) -> str:
    """The criterion that explains the verdict (:func:`~reports.results.headline_criterion`), as
    ``name estimate [lo, hi] direction threshold``."""
    return describe_criterion(headline_criterion(evidence))


def verdict_label(evidence: dict) -> str:
    """The evidence's verdict; ``"refuted (finding)"`` when a declared finding expected it, and
    ``"... (undecidable)"`` where a finding declares the claim undecidable in that setting."""
    outcome, expected = evidence["outcome"], (evidence.get("finding") or {}).get("expected")
    if expected == UNDECIDABLE:
        return f"{outcome} (undecidable)"
    return f"{outcome} (finding)" if expected == outcome else outcome


def _catalog_rank(record: dict) -> int:
    try:
        from harness.catalog import CATALOG
    except ImportError:
        return 0
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
        rows.append((rec["claim"] or "?", rec["setting"] or "-", _clip(note, NOTE_CHARS),
                     verdict_label(ev) if ev else "-", looks_text(ev) if ev else "-", rec["outcome"]))
    return rows


def format_table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    """Left-aligned columns two spaces apart, with a dashed rule under the header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *map(line, rows)]


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    collector = config.stash[_KEY]
    records = collector.records()
    if records:
        terminalreporter.section("claim verdicts")
        for text in format_table(verdict_rows(records), TABLE_HEADER):
            terminalreporter.write_line(text)
    if collector.written is None:
        return
    terminalreporter.write_line(f"results: {collector.written}")
    if collector.render_error is None:
        pages = [path for path in collector.rendered.values() if path.suffix in (".html", ".md")]
        pages.sort(key=lambda path: path.suffix != ".html")  # the page first; figures are inside it
        terminalreporter.write_line(f"report: {', '.join(map(str, pages))}")
    else:
        terminalreporter.write_line(f"report: WARNING, not rendered ({collector.render_error}); "
                                    "results.json is complete", yellow=True, bold=True)
