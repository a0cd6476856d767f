"""Tests of harness.catalog: every claim test names a catalog id, and every entry is complete.

The claim modules are imported from their files (not collected by pytest), and their test
functions' ``@pytest.mark.claim`` marks are read directly, so no claim runs and nothing trains.
"""

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from harness.catalog import CATALOG, ClaimInfo

CLAIMS_DIR = Path(__file__).resolve().parents[1] / "claims"
REQUIRED = ("id", "title", "statement", "source", "reference", "decision")


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


def test_every_claim_mark_gives_id_and_source(marks):
    for test, m in marks:
        assert m.args == () and set(m.kwargs) == {"id", "source"}, test
        assert isinstance(m.kwargs["source"], str) and m.kwargs["source"].strip(), test


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
