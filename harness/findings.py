"""Declared findings: the claims that do not reproduce in a setting, each declared once.

A finding is information, not a failure to hide: the claim test still decides it on every run, is
a strict xfail while the decision is ``refuted`` as declared, and fails when the decision changes
(it reproduces, or becomes inconclusive). The numbers are never stored here: they come from the
run, in the test's xfail reason and in the report. The README's Findings section is this registry
(``python -m harness.findings`` prints it; ``tests/test_findings.py`` checks the README against it).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from harness.evidence import REFUTED


@dataclass(frozen=True)
class Finding:
    """A claim that does not reproduce in one setting.

    Attributes
    ----------
    claim : str
        Catalog id, e.g. "F1".
    setting : str
        Registered setting name.
    why : str
        One sentence: what differs from the source, and the likely reason.
    expected : str
        The decision expected there; only ``refuted`` is declared (an inconclusive decision is a
        lack of seeds, not a finding).
    """

    claim: str
    setting: str
    why: str
    expected: str = REFUTED

    def __post_init__(self) -> None:
        if self.expected != REFUTED:
            raise ValueError(f"Finding.expected={self.expected!r} is invalid: only {REFUTED!r} can be declared")
        if not self.why.strip():
            raise ValueError(f"Finding({self.claim}, {self.setting}).why is empty: say why the claim does not hold")


FINDINGS: tuple[Finding, ...] = (
    Finding("F1", "digits-mlp",
            "Independent digits MLPs converge to nearly one function (~97% accuracy), so their trajectories end "
            "closer in function space than they were after the first epoch, not in different regions."),
)


def declared(claim: str, setting: str) -> Finding | None:
    """The finding declared for ``claim`` in ``setting``, or None."""
    return next((f for f in FINDINGS if (f.claim, f.setting) == (claim, setting)), None)


def markdown_table() -> str:
    """The README's Findings table: claim, setting, expected decision, why."""
    rows = ["| claim | setting | expected | why |", "|---|---|---|---|"]
    rows += [f"| {f.claim} | {f.setting} | {f.expected} | {f.why} |" for f in FINDINGS]
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
