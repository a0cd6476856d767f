"""The pytest plugin: collect every claim test into ``results.json``, render the report, print a verdict table.

Hooks only; what they use lives beside them: :mod:`reports.records` (records from test reports,
the results.json document), :mod:`reports.table` (the terminal table), :mod:`reports.results`
(the results.json contract) and :mod:`reports.render` (the report pages).

``--report-dir DIR`` writes ``DIR/results.json`` (schema in ``reports/SCHEMA.md``) and then the
rendered report (``reports.render.write_report``). A renderer that is missing or raises costs the
rendered pages only: ``results.json`` is written first, and the terminal names the failure.

The terminal's verdict table ends with what the report counts (:func:`reports.results.counts_text`):
claim tests, negative controls and other tests, adding up to pytest's own count.

Under ``--junitxml`` the tests' properties (the claim marker, the evidence, the verdict) go to the
``<testsuite>`` as JSON, where the JUnit schema admits them (:mod:`reports.junit`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from reports.junit import SuiteProperties
from reports.records import MARKER_PROPERTY, ClaimCollector, build_results, claim_marker_info, write_results
from reports.results import RESULTS_NAME, counts_text
from reports.table import TABLE_HEADER, format_table, verdict_rows


def render(results: dict, out_dir: Path) -> tuple[dict[str, Path], str | None]:
    """``reports.render.write_report(results, out_dir)``, and the error text if it could not run."""
    try:
        from reports.render import write_report
        return {name: Path(path) for name, path in write_report(results, out_dir).items()}, None
    except Exception as exc:  # a broken renderer must not cost results.json or change the exit status
        return {}, f"{type(exc).__name__}: {exc}"


_KEY = pytest.StashKey[ClaimCollector]()


class Hookspecs:
    """What this plugin asks of the others (registered by :func:`pytest_addhooks`)."""

    @pytest.hookspec(firstresult=True)
    def pytest_claims_options(self, config: pytest.Config) -> tuple[dict, str] | None:
        """The harness's effective options for results.json, and the device they resolved to.

        Returns ``({"runs_dir", "data_root", "seeds", "seed_offset"}, device)`` with JSON-able
        values, or None. Answered by ``fixtures.options``.
        """


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(Hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("ensemble-claims").addoption(
        "--report-dir", default=None,
        help="write results.json (claims, evidence, outcomes, provenance) and the rendered report into this folder")


def pytest_configure(config: pytest.Config) -> None:
    collector = ClaimCollector()
    config.stash[_KEY] = collector
    config.pluginmanager.register(collector, "ensemble-claims-collector")
    config.pluginmanager.register(SuiteProperties(config), "ensemble-claims-junit")


def pytest_itemcollected(item: pytest.Item) -> None:
    info = claim_marker_info(item)
    if info is not None:
        item.user_properties.append((MARKER_PROPERTY, info))


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    report_dir = config.getoption("--report-dir")
    if not report_dir or hasattr(config, "workerinput"):  # xdist workers report to the controller
        return
    collector = config.stash[_KEY]
    out_dir = Path(report_dir)
    duration_s = time.monotonic() - collector.started
    write_results(out_dir / RESULTS_NAME, build_results(config, collector.records(), duration_s, collector.tests()))
    collector.written = out_dir / RESULTS_NAME
    # Render what was written (tuples become lists, numpy values numbers), so that rendering the
    # file later with `python -m reports.render` gives the same report.
    written = json.loads((out_dir / RESULTS_NAME).read_text())
    collector.rendered, collector.render_error = render(written, out_dir)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    collector = config.stash[_KEY]
    records = collector.records()
    if records:
        terminalreporter.section("claim verdicts")
        for text in format_table(verdict_rows(records), TABLE_HEADER):
            terminalreporter.write_line(text)
        # pytest's line below counts every test; this says which of them the table (and report) are.
        terminalreporter.write_line(f"counted: {counts_text({'tests': collector.tests()})}")
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
