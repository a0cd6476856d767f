"""Tests of harness.catalog_doc: docs/claims.md is current, and the catalog it renders is complete."""

import re

import pytest

from harness import catalog, catalog_doc
from harness.catalog import CATALOG, THRESHOLDS
from harness.catalog_doc import (
    CATALOG_PATH,
    DOC_PATH,
    FAMILIES,
    PROPERTY_CLAIMS,
    REGENERATE,
    SOURCE_ALIASES,
    SOURCES,
    SUGGESTED,
    claim_tests,
    main,
    render,
    threshold_provenance,
)

CITED_KEY = re.compile(r"\[([A-Z][A-Za-z]*\d*)\]")  # [Fort], [HD19]; not [0, 1] or [n, n + 8]


@pytest.fixture(scope="module")
def doc() -> str:
    return render()


def test_committed_doc_is_current(doc):
    assert DOC_PATH.read_bytes() == doc.encode("utf-8"), (
        f"{DOC_PATH.relative_to(DOC_PATH.parents[1])} is stale: regenerate it with `{REGENERATE}` and commit it")


def test_render_is_deterministic_and_ends_in_one_newline(doc):
    assert render() == doc
    assert doc.endswith("\n") and not doc.endswith("\n\n")


def test_families_hold_every_claim_once():
    ids = [claim_id for family in FAMILIES for claim_id in family.ids]
    assert sorted(ids) == sorted(set(CATALOG) | set(PROPERTY_CLAIMS))
    assert set(CATALOG).isdisjoint(PROPERTY_CLAIMS)


def test_every_claim_but_the_protocol_check_has_its_suggested_decision():
    # W1 is the harness's own check that the subspace window is flat; the sources suggest nothing for it.
    assert set(SUGGESTED) == (set(CATALOG) | set(PROPERTY_CLAIMS)) - {"W1"}
    assert all(text.strip() for text in SUGGESTED.values())


@pytest.mark.parametrize("claim_id", sorted(CATALOG))
def test_claim_section_states_its_texts_thresholds_and_tests(doc, claim_id):
    info = CATALOG[claim_id]
    section = doc.split(f"\n### {claim_id} — {info.title}\n", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    for text in (info.statement, info.source, info.reference, info.decision, info.deviations):
        assert text in section
    for name in THRESHOLDS[claim_id]:
        assert f"`{name} = {getattr(catalog, name)!r}`" in section
    tests = claim_tests()[claim_id]
    assert tests and all(f"`{test}`" in section for test in tests)


def test_every_threshold_has_its_provenance():
    provenance = threshold_provenance(CATALOG_PATH.read_text())
    names = {name for names in THRESHOLDS.values() for name in names}
    missing = sorted(name for name in names if not provenance.get(name, "").strip())
    assert missing == [], f"add a '#:' comment above these constants in harness/catalog.py: {missing}"


def test_provenance_is_the_doc_comment_block_right_above_an_assignment():
    source = ("# T1 (claims/test_trajectory.py)\n#: [WB]: cos > 0.95\n#: after epoch 10.\nA_MIN = 0.95\n"
              "#: orphan, then a blank line\n\nB_MAX = 1\n# plain comment\nC_MAX: float = 2\n#: typed\nD: int = 3\n"
              "#: not an assignment\ndef f(): pass\nE = 4\n")
    assert threshold_provenance(source) == {"A_MIN": "[WB]: cos > 0.95 after epoch 10.", "D": "typed"}


def test_every_cited_source_is_listed(doc):
    keys = {key for key, _ in SOURCES}
    texts = [v for info in CATALOG.values() for v in info.to_dict().values()]
    texts += list(threshold_provenance(CATALOG_PATH.read_text()).values()) + [doc]
    cited = {SOURCE_ALIASES.get(key, key) for text in texts for key in CITED_KEY.findall(text)}
    assert cited - keys == set()
    assert keys <= cited, "a listed source that nothing cites"


def test_claim_tests_reads_the_marks_of_the_claim_modules(tmp_path):
    folder = tmp_path / "claims"
    folder.mkdir()
    (folder / "test_z.py").write_text(
        "import pytest\nfrom pytest import mark\n\n"
        "@pytest.mark.claim(id='Z1')\n@pytest.mark.smoke\ndef test_a(): pass\n\n"
        "@mark.claim(id='Z1')\ndef test_b(): pass\n\n@pytest.mark.other(id='Z2')\ndef test_c(): pass\n")
    (folder / "helper.py").write_text("import pytest\n@pytest.mark.claim(id='Z3')\ndef test_d(): pass\n")
    assert claim_tests(folder) == {"Z1": ["claims/test_z.py::test_a", "claims/test_z.py::test_b"]}


def test_main_writes_the_doc_and_check_names_the_command(tmp_path, capsys):
    path = tmp_path / "docs" / "claims.md"
    assert main(["--check", "--output", str(path)]) == 1  # absent
    assert f"regenerate it with `{REGENERATE}`" in capsys.readouterr().out
    assert main(["--output", str(path)]) == 0
    assert path.read_bytes() == render().encode("utf-8")
    assert main(["--check", "--output", str(path)]) == 0
    path.write_text(render().replace("## Sources", "## Sauces"))
    assert main(["--check", "--output", str(path)]) == 1
    assert capsys.readouterr().out.endswith(f"{path} is stale: regenerate it with `{REGENERATE}`\n")


def test_module_is_runnable_as_documented():
    assert REGENERATE == f"python -m {catalog_doc.__name__}"
