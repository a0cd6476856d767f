"""pytest --junitxml with the report plugin (reports/junit.py): XML of the JUnit schema, JSON property values.

The schema is tests/data/junit-10-structure.xsd: the structure Jenkins' and Surefire's junit-10.xsd
give a JUnit report (properties belong to a testsuite, never to a testcase), checked with xmlschema.
"""

import json
import math
import shlex
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import xmlschema

from reports.junit import finite_json, property_json

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]
SCHEMA = Path(__file__).parent / "data" / "junit-10-structure.xsd"
INI = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
XUNIT1_ONLY_ATTRIBUTES = ("file", "line", "url")  # pytest's legacy testcase attributes, not in junit-10.xsd

CONFTEST = '''
pytest_plugins = ["fixtures.options", "reports.plugin"]
'''

# Evidence as fixtures.evidence records it, with the numbers a repr writes bare: an unbounded
# statistic's limits and an undefined estimate. Besides the claim tests: a negative control, a
# test of neither kind with a property of its own, a failed call whose teardown fails too (pytest
# reads that test's properties from the call's report), a skip and an xfail.
TESTS = '''
import pytest


def evidence(claim, estimate):
    return {"claim": claim, "setting": "digits-mlp", "outcome": "inconclusive", "n_seeds": 5, "looks": [5],
            "criteria": [{"name": "gap", "estimate": estimate, "threshold": 0.0, "direction": ">=",
                          "ci": [estimate, float("inf")], "level": 0.95,
                          "limits": [float("-inf"), float("inf")], "outcome": "inconclusive"}],
            "details": {"per_seed": (1.0, float("nan"))}, "finding": None}


def record(request, claim, estimate):
    request.node.user_properties.append(("evidence", evidence(claim, estimate)))
    request.node.user_properties.append(("verdict", "inconclusive"))


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown broke")


@pytest.mark.claim(id="Z1")
@pytest.mark.parametrize("setting", ["digits-mlp"])
def test_z1(setting, request):
    record(request, "Z1", float("nan"))


@pytest.mark.claim(id="Z2")
def test_z2_fails_twice(request, broken_teardown):
    record(request, "Z2", 0.5)
    raise AssertionError("Z2 inconclusive")


@pytest.mark.claim(id="Z3")
@pytest.mark.skip(reason="no data here")
def test_z3_skipped():
    pass


@pytest.mark.claim(id="Z4")
@pytest.mark.xfail(strict=True, reason="declared finding")
def test_z4_xfails(request):
    record(request, "Z4", -1.0)
    raise AssertionError("Z4 refuted")


def test_negative_control_z1_is_refuted():
    pass


def test_other(request):
    request.node.user_properties.append(("note", {"ratio": float("inf"), "text": "a <b> & 'c'"}))
'''
# node id -> the properties it records, by name, in order
RECORDED = {
    "test_claims.py::test_z1[digits-mlp]": ["claim_marker", "evidence", "verdict"],
    "test_claims.py::test_z2_fails_twice": ["claim_marker", "evidence", "verdict"],
    "test_claims.py::test_z3_skipped": ["claim_marker"],
    "test_claims.py::test_z4_xfails": ["claim_marker", "evidence", "verdict"],
    "test_claims.py::test_other": ["note"],
}


def strict_json(text: str) -> object:
    """``json.loads`` that refuses Python's NaN/Infinity extension, as other JSON parsers do."""
    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(SCHEMA)


def without_xunit1_attributes(tree: ET.ElementTree) -> ET.ElementTree:
    for testcase in tree.iter("testcase"):
        for name in XUNIT1_ONLY_ATTRIBUTES:
            testcase.attrib.pop(name, None)
    return tree


@pytest.fixture
def session(pytester, tmp_path, monkeypatch):
    """``session(family, *args)``: a subprocess pytest run of TESTS with --junitxml and --report-dir;
    returns the run, the parsed XML and results.json."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest(CONFTEST)
    markers = "\n    ".join(INI["markers"])
    pytester.makepyfile(test_claims=TESTS)
    quiet = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")

    def run(family: str, *args: str) -> tuple[pytest.RunResult, ET.ElementTree, dict]:
        pytester.makeini(f"[pytest]\naddopts = {shlex.join(INI['addopts'])}\njunit_family = {family}\n"
                         f"markers =\n    {markers}\n")
        xml = tmp_path / f"junit-{family}.xml"
        result = pytester.runpytest_subprocess(*quiet, f"--runs-dir={tmp_path / 'runs'}",
                                               f"--report-dir={tmp_path / 'report'}", f"--junitxml={xml}", *args)
        return result, ET.parse(xml), json.loads((tmp_path / "report" / "results.json").read_text())

    return run


@pytest.mark.integration
@pytest.mark.parametrize(("family", "args"), [
    ("xunit2", ("-p", "no:xdist")), ("xunit1", ("-p", "no:xdist")), ("legacy", ("-p", "no:xdist")),
    ("xunit2", ("-n", "2")),
], ids=["xunit2", "xunit1", "legacy", "xunit2-xdist"])
def test_junit_xml_is_valid_and_every_property_value_is_json(session, schema, family, args):
    result, tree, results = session(family, *args)
    result.assert_outcomes(passed=3, failed=1, errors=1, skipped=1, xfailed=1)
    if family != "xunit2":
        without_xunit1_attributes(tree)
    schema.validate(tree)  # raises XMLSchemaValidationError naming the offending element

    suite = tree.getroot().find("testsuite")
    assert all(testcase.find("properties") is None for testcase in suite.iter("testcase"))
    recorded = {}
    for prop in suite.find("properties"):
        value = strict_json(prop.get("value"))
        recorded.setdefault(value["test"], []).append((prop.get("name"), value["value"]))
    assert {nodeid: [name for name, _ in props] for nodeid, props in recorded.items()} == RECORDED

    z1 = dict(recorded["test_claims.py::test_z1[digits-mlp]"])
    assert z1["verdict"] == "inconclusive" and z1["claim_marker"] == {"id": "Z1", "setting": "digits-mlp"}
    (criterion,) = z1["evidence"]["criteria"]
    assert criterion["estimate"] == "NaN" and criterion["limits"] == ["-Infinity", "Infinity"]
    assert z1["evidence"]["details"]["per_seed"] == [1.0, "NaN"]
    assert dict(recorded["test_claims.py::test_other"])["note"] == {"ratio": "Infinity", "text": "a <b> & 'c'"}

    # results.json keeps what it recorded before the properties left the reports.
    claims = {r["nodeid"]: r for r in results["claims"]}
    assert set(claims) == {nodeid for nodeid in RECORDED if "::test_z" in nodeid}
    assert math.isnan(claims["test_claims.py::test_z1[digits-mlp]"]["evidence"]["criteria"][0]["estimate"])
    assert claims["test_claims.py::test_z2_fails_twice"]["evidence"]["criteria"][0]["ci"] == [0.5, math.inf]


def test_the_schema_refuses_properties_in_a_testcase(schema):
    suite = ('<testsuites><testsuite name="pytest" tests="1"><testcase classname="m" name="t">{}</testcase>'
             "</testsuite></testsuites>")
    schema.validate(suite.format('<system-out>ok</system-out>'))
    with pytest.raises(xmlschema.XMLSchemaValidationError, match="properties"):
        schema.validate(suite.format('<properties><property name="a" value="1"/></properties>'))


def test_non_finite_numbers_become_strings_and_the_rest_plain_json():
    value = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "pair": (0.5, np.float32(np.inf)),
             "array": np.array([1.0, np.nan]), "n": np.int64(3), 7: None, "flag": True, "path": Path("a/b")}
    assert finite_json(value) == {"nan": "NaN", "inf": "Infinity", "ninf": "-Infinity", "pair": [0.5, "Infinity"],
                                  "array": [1.0, "NaN"], "n": 3, "7": None, "flag": True, "path": "a/b"}


def test_property_json_names_the_test_and_parses_as_strict_json():
    text = property_json("t.py::test_a[x]", {"ci": [-math.inf, 0.25], "estimate": math.nan})
    assert strict_json(text) == {"test": "t.py::test_a[x]", "value": {"ci": ["-Infinity", 0.25], "estimate": "NaN"}}
