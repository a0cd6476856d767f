"""Collect claim evidence from test reports; print a verdict table; write ``results.json``.

Evidence arrives through ``record_property`` (see ``fixtures.evidence``), which travels with the
test report, so collection works the same under pytest-xdist. ``--report-dir DIR`` writes
``DIR/results.json``; the plugin reads nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import sys
from pathlib import Path

import pytest

from fixtures.evidence import EVIDENCE_PROPERTY

RESULTS_SCHEMA_VERSION = 1


class ClaimCollector:
    """Accumulates one record per claim test: its evidence (if any) and its outcome."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if "claim" not in report.keywords:  # marker names are report keywords
            return
        # A claim's evidence comes with its call phase; a skip or an error may end it in setup.
        if report.when == "call" or (report.when == "setup" and not report.passed):
            evidence = [value for name, value in report.user_properties if name == EVIDENCE_PROPERTY]
            for ev in evidence or [None]:
                self.records.append({"nodeid": report.nodeid, "outcome": _outcome(report),
                                     "duration_s": report.duration, "evidence": ev,
                                     "skip_reason": _skip_reason(report)})


def _outcome(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xfail" if report.skipped else "xpass"
    if report.when == "setup" and report.failed:
        return "error"
    return report.outcome


def _skip_reason(report: pytest.TestReport) -> str | None:
    if report.skipped and isinstance(report.longrepr, tuple):
        return report.longrepr[2].removeprefix("Skipped: ")
    return None


_KEY = pytest.StashKey[ClaimCollector]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("ensemble-claims").addoption(
        "--report-dir", default=None, help="write results.json (claims, evidence, outcomes) into this folder")


def pytest_configure(config: pytest.Config) -> None:
    collector = ClaimCollector()
    config.stash[_KEY] = collector
    config.pluginmanager.register(collector, "ensemble-claims-collector")


def verdict_rows(records: list[dict]) -> list[tuple[str, ...]]:
    """Rows (claim, setting, criterion, verdict, test outcome) for the terminal table."""
    rows = []
    for rec in records:
        ev = rec["evidence"]
        if ev is None:
            rows.append(("?", rec["nodeid"].split("[")[-1].rstrip("]"), rec["skip_reason"] or "", "-", rec["outcome"]))
            continue
        # The first failing criterion explains a FAIL; otherwise the headline (first) one.
        main = next((c for c in ev["criteria"] if not c["passed"]), ev["criteria"][0])
        rows.append((ev["claim"], ev["setting"],
                     f"{main['name']} {main['value']:.5g} {main['direction']} {main['threshold']:.5g}",
                     ev["verdict"], rec["outcome"]))
    return rows


def format_table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return [line(header), line(tuple("-" * w for w in widths)), *map(line, rows)]


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    records = config.stash[_KEY].records
    if not records:
        return
    terminalreporter.section("claim verdicts")
    for text in format_table(verdict_rows(records), ("claim", "setting", "criterion", "verdict", "test")):
        terminalreporter.write_line(text)
    report_dir = config.getoption("--report-dir")
    if report_dir:
        terminalreporter.write_line(f"results: {Path(report_dir) / 'results.json'}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    report_dir = config.getoption("--report-dir")
    if not report_dir or hasattr(config, "workerinput"):  # xdist workers report to the controller
        return
    import numpy
    import torch

    results = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "claims": config.stash[_KEY].records,
    }
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2, default=str))
    tmp.replace(out / "results.json")
