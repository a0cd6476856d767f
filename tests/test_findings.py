import re
from pathlib import Path

import pytest

from harness import findings, settings
from harness.catalog import CATALOG

FINDINGS_DOC = Path(__file__).resolve().parents[1] / "docs" / "findings.md"
START, END = "<!-- findings:start (python -m harness.findings) -->", "<!-- findings:end -->"


def test_every_finding_names_a_catalogued_claim_and_a_registered_setting_once():
    pairs = [(f.claim, f.setting) for f in findings.FINDINGS]
    assert len(pairs) == len(set(pairs))
    for claim, setting in pairs:
        assert claim in CATALOG
        settings.get(setting)


def test_declared_finds_a_finding():
    first = findings.FINDINGS[0]
    assert findings.declared(first.claim, first.setting) is first
    assert findings.declared("T1", "no-such-setting") is None


@pytest.mark.parametrize("kwargs, message", [
    ({"expected": "reproduces"}, r"Finding.expected='reproduces' is invalid: expected one of \('refuted', 'undecidable'\)"),
    ({"why": " "}, r"why is empty"),
    ({"departure": ""}, r"Finding\(T1, digits-mlp\).departure is empty: say which departure"),
])
def test_finding_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        findings.Finding(**({"claim": "T1", "setting": "digits-mlp", "why": "because", "departure": "none"} | kwargs))


def test_the_documented_findings_are_the_registry():
    text = FINDINGS_DOC.read_text(encoding="utf-8")
    block = re.search(re.escape(START) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    assert block is not None, f"docs/findings.md lacks the findings block between {START} and {END}"
    assert block.group(1).strip() == findings.markdown_table(), (
        "docs/findings.md's findings differ from harness/findings.py: paste the output of "
        "`python -m harness.findings` between its markers")
