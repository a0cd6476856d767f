"""Tests of harness.catalog: every claim test names a catalog id, every entry is complete, and the
catalog is the one home of each claim's thresholds and citation.

The claim modules are imported from their files (not collected by pytest), and their test
functions' ``@pytest.mark.claim`` marks are read directly, so no claim runs and nothing trains;
their module-level names and imports are read from their syntax trees.
"""

import ast
import dataclasses
import importlib.util
import re
from numbers import Real
from pathlib import Path

import pytest

from harness import catalog
from harness.catalog import CATALOG, THRESHOLDS, ClaimInfo

CLAIMS_DIR = Path(__file__).resolve().parents[1] / "claims"
REQUIRED = ("id", "title", "statement", "source", "reference", "decision")
# Module-level names a claim module must not define: thresholds and source texts live in harness.catalog.
OWN_THRESHOLD_OR_SOURCE = re.compile(r"(_MIN|_MAX|^SOURCES?|_SOURCE)$")


def claim_marks() -> list[tuple[str, pytest.Mark]]:
    """``("<module>::<test>", mark)`` for every ``claim`` mark on a test function under ``claims/``."""
    found = []
    for path in sorted(CLAIMS_DIR.glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"_catalog_check_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, obj in vars(module).items():
            if name.startswith("test") and callable(obj):
                found += [(f"{path.name}::{name}", m) for m in getattr(obj, "pytestmark", []) if m.name == "claim"]
    return found


@pytest.fixture(scope="module")
def marks() -> list[tuple[str, pytest.Mark]]:
    return claim_marks()


def test_every_claim_module_has_claim_tests(marks):
    modules = {path.name for path in CLAIMS_DIR.glob("test_*.py")}
    assert modules and {test.split("::")[0] for test, _ in marks} == modules


def test_every_claim_test_names_a_catalog_id(marks):
    unknown = [(test, m.kwargs.get("id")) for test, m in marks if m.kwargs.get("id") not in CATALOG]
    assert unknown == [], f"claim tests whose claim(id=...) is not in harness.catalog.CATALOG: {unknown}"


def test_every_catalog_id_is_decided_by_a_claim_test(marks):
    # The catalog holds the claims that have a test; an entry without one is stale.
    assert set(CATALOG) - {m.kwargs.get("id") for _, m in marks} == set()


def test_every_claim_mark_gives_only_the_id(marks):
    # The source is the catalog's (CATALOG[id].source), not restated on the mark.
    for test, m in marks:
        assert m.args == () and set(m.kwargs) == {"id"}, test


@pytest.mark.parametrize("claim_id", sorted(CATALOG))
def test_catalog_entry_is_complete(claim_id):
    info = CATALOG[claim_id]
    assert isinstance(info, ClaimInfo)
    assert info.id == claim_id
    for field in REQUIRED:
        value = getattr(info, field)
        assert isinstance(value, str) and value.strip(), f"{claim_id}.{field} is empty"
    assert isinstance(info.deviations, str)


def test_to_dict_round_trips_the_fields():
    for info in CATALOG.values():
        as_dict = info.to_dict()
        assert list(as_dict) == [f.name for f in dataclasses.fields(ClaimInfo)]
        assert ClaimInfo(**as_dict) == info


def test_deviations_default_to_empty():
    info = ClaimInfo("X1", "t", "s", "src", "ref", "dec")
    assert info.to_dict() == {"id": "X1", "title": "t", "statement": "s", "source": "src", "reference": "ref",
                              "decision": "dec", "deviations": ""}
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.title = "changed"


def test_citation_is_source_and_reference():
    assert ClaimInfo("X1", "t", "s", "[Z] Fig. 1", "cos ~ 0", "dec").citation == "[Z] Fig. 1: cos ~ 0"
    assert ClaimInfo("X1", "t", "s", "[Z]", "-", "dec").citation == "[Z]"
    for info in CATALOG.values():
        assert info.citation.startswith(info.source)


# ----------------------------------------------------------------------------------------------
# One home per fact: the thresholds are harness.catalog's constants, and the texts are built from them.


def _renderings(value: float) -> list[str]:
    """How a decision text may state a threshold: as is (``:g``), as a percentage, or in points."""
    return [format(value, "g"), f"{100 * value:g}%", f"{100 * value:g} points"]


def _states(text: str, rendering: str) -> bool:
    """Does ``text`` contain the number ``rendering`` as a whole number (not inside 0.95 or 10)?"""
    return re.search(rf"(?<![\d.\-]){re.escape(rendering)}(?!\.?\d)", text) is not None


def test_thresholds_name_the_catalog_claims_and_its_numeric_constants():
    assert set(THRESHOLDS) == set(CATALOG)
    names = {name for names in THRESHOLDS.values() for name in names}
    for name in names:
        value = getattr(catalog, name)
        assert isinstance(value, Real) and not isinstance(value, bool), name
        assert name in catalog.__all__, name


@pytest.mark.parametrize("claim_id", sorted(CATALOG))
def test_decision_text_states_each_threshold_of_its_claim(claim_id):
    decision = CATALOG[claim_id].decision
    for name in THRESHOLDS[claim_id]:
        value = getattr(catalog, name)
        assert any(_states(decision, r) for r in _renderings(value)), (
            f"CATALOG[{claim_id!r}].decision does not state {name} = {value:g}: {decision!r}")


def test_states_matches_whole_numbers_only():
    assert _states("late cos >= 0.95 (lower bound)", "0.95")
    assert not _states("late cos >= 0.95", "0.5") and not _states("ratio <= 0.55", "0.5")
    assert not _states("within 10 points", "0") and not _states("rho <= -0.8", "0.8")
    assert _states("rho <= -0.8", "-0.8") and _states("gain > 0; loss < 0", "0")


def _syntax(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _module_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        else:
            continue
        for target in targets:
            names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def _imported_from_catalog(tree: ast.Module) -> set[str]:
    return {alias.asname or alias.name for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "harness.catalog" for alias in node.names}


@pytest.mark.parametrize("path", sorted(CLAIMS_DIR.glob("test_*.py")), ids=lambda p: p.name)
def test_claim_module_defines_no_threshold_or_source_of_its_own(path):
    every_threshold = {name for names in THRESHOLDS.values() for name in names}
    own = {name for name in _module_level_names(_syntax(path))
           if OWN_THRESHOLD_OR_SOURCE.search(name) or name in every_threshold}
    assert own == set(), f"{path.name} defines {sorted(own)}: move them to harness.catalog"


def test_each_claim_module_imports_exactly_the_thresholds_of_its_claims(marks):
    every_threshold = {name for names in THRESHOLDS.values() for name in names}
    claims_of = {}
    for test, m in marks:
        claims_of.setdefault(test.split("::")[0], set()).add(m.kwargs["id"])
    for module, claims in claims_of.items():
        imported = _imported_from_catalog(_syntax(CLAIMS_DIR / module)) & every_threshold
        expected = {name for claim in claims for name in THRESHOLDS[claim]}
        assert imported == expected, f"{module} decides {sorted(claims)}"


@pytest.mark.parametrize("path", sorted(CLAIMS_DIR.glob("test_*.py")), ids=lambda p: p.name)
def test_evidence_cites_the_catalog(path):
    # Every Evidence(source=...) of a claim module is CATALOG[...].citation, never a text of its own.
    sources = [kw.value for node in ast.walk(_syntax(path)) if isinstance(node, ast.Call)
               for kw in node.keywords if kw.arg == "source"]
    assert sources, path.name
    for value in sources:
        assert (isinstance(value, ast.Attribute) and value.attr == "citation"
                and isinstance(value.value, ast.Subscript) and isinstance(value.value.value, ast.Name)
                and value.value.value.id == "CATALOG"), f"{path.name}:{value.lineno}: {ast.unparse(value)}"
