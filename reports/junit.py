"""JUnit XML (``pytest --junitxml``): the tests' user properties as JSON ``<testsuite>`` properties.

pytest writes a test's user properties (``record_property``, ``item.user_properties``) as a
``<properties>`` element inside its ``<testcase>``, each value as ``str(value)``. Both are a problem
for the XML's readers: the JUnit schema that Jenkins and Surefire validate against (junit-10.xsd)
admits ``<properties>`` only in a ``<testsuite>`` (a ``<testcase>`` holds only ``skipped``,
``error``, ``failure``, ``system-out`` and ``system-err``), and ``str`` of the evidence is a Python
repr (single quotes, ``None``, bare ``inf``/``nan``) that no JSON parser reads.

So, under ``--junitxml`` and for either ``junit_family`` (``xunit1``/``legacy`` or ``xunit2``),
:class:`SuiteProperties` moves every test's user properties to the ``<testsuite>``'s
``<properties>``, one ``<property>`` each, in the order the tests finished:

- ``name``: the property's name (``"evidence"``, ``"verdict"``, ``"claim_marker"``, or a user's);
- ``value``: JSON text, ``{"test": "<pytest node id>", "value": <the property's value>}``
  (:func:`property_json`), so that a reader can tell whose property it is without parsing names.

Numbers that JSON cannot hold are written as strings: NaN as ``"NaN"``, infinities as
``"Infinity"`` and ``"-Infinity"`` (the words ``float()`` and JavaScript's ``Number()`` read back);
numpy scalars and arrays as numbers and lists; tuples as lists; anything else JSON has no type for
as its ``str``. results.json (:mod:`reports.records`) is unaffected: it keeps JSON's ``NaN``
extension, which Python's ``json`` reads.

The properties are taken off the test reports on the process that writes the XML (the controller
under pytest-xdist), after the plugin's collector has kept what results.json needs
(:class:`reports.records.ClaimCollector`): other plugins that read ``report.user_properties`` in
``pytest_runtest_logreport`` see none there while ``--junitxml`` is given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Generator, Mapping

import pytest
from _pytest.junitxml import xml_key  # where pytest keeps its LogXML; record_testsuite_property reads it too

NAN_TEXT = "NaN"
INFINITY_TEXT = "Infinity"


def finite_json(value: object) -> object:
    """``value`` with only what strict JSON holds: non-finite floats become strings.

    Parameters
    ----------
    value : object
        A property value: nested dicts, lists and tuples of numbers, strings, booleans and None;
        numpy scalars and arrays (anything with ``tolist``); anything else.

    Returns
    -------
    object
        The same structure with NaN as ``"NaN"``, +-inf as ``"Infinity"``/``"-Infinity"``, tuples
        and arrays as lists, dict keys as strings, and values of other types as their ``str``.
    """
    if isinstance(value, float):
        if math.isnan(value):
            return NAN_TEXT
        return value if math.isfinite(value) else (INFINITY_TEXT if value > 0 else f"-{INFINITY_TEXT}")
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, Mapping):
        return {str(key): finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    if hasattr(value, "tolist"):  # numpy: a scalar gives a Python number, an array nested lists
        return finite_json(value.tolist())
    return str(value)


def property_json(nodeid: str, value: object) -> str:
    """The ``value`` attribute of one test's property in the ``<testsuite>``: strict JSON text.

    Parameters
    ----------
    nodeid : str
        The pytest node id of the test that recorded the property.
    value : object
        The property's value (see :func:`finite_json`).

    Returns
    -------
    str
        ``{"test": nodeid, "value": ...}`` as JSON, which ``json.loads`` (and any JSON parser) reads.
    """
    return json.dumps({"test": nodeid, "value": finite_json(value)}, allow_nan=False, ensure_ascii=False)


class SuiteProperties:
    """Plugin: moves the tests' user properties out of their ``<testcase>`` into the ``<testsuite>``.

    A no-op without ``--junitxml``, and on pytest-xdist workers (which write no XML: pytest makes
    its XML writer on the controller only).
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, object, object]:
        # A wrapper runs before every plain implementation, pytest's XML writer among them. The
        # writer reads the properties of the teardown report, and of a failed call's report when
        # its teardown fails too: every phase's are taken off, for good. Each phase's report carries
        # every property recorded so far, so the teardown's are the test's.
        xml = self.config.stash.get(xml_key, None)
        if xml is not None and report.user_properties:
            properties, report.user_properties = list(report.user_properties), []
            if report.when == "teardown":
                for name, value in properties:
                    xml.add_global_property(str(name), property_json(report.nodeid, value))
        return (yield)
