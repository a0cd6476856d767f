"""Compare two ``results.json`` files: verdict changes, regressions, moved statistics.

Usage::

    python -m reports.compare OLD NEW [--json]

``OLD`` and ``NEW`` are ``results.json`` files (schema version 2, ``reports/SCHEMA.md``) or folders
holding one. Exit status: 1 when there is any regression, 0 otherwise, 2 on bad input.

Claim records are matched by (claim id, setting); a record without a claim id is matched by its
pytest node id. Each matched or unmatched record falls in one kind of change:

``regression``
    The verdict went PASS -> FAIL; or a claim that had a verdict now has none (it errored before
    deciding); or the test outcome moved into ``failed``/``error`` from anything else; or a claim
    that ran before is now skipped or missing. A skip counts as a regression because a nightly run
    that silently stops deciding a claim (no GPU, no data, a new skip condition) has lost coverage;
    a claim skipped in both files is no change.
    Exception: PASS -> FAIL of a claim whose old record was already an expected failure (an xfail
    that passed, returning to the recorded non-reproduction) is ``changed``, not a regression.
``attention``
    A strict xfail whose claim now passes: the recorded non-reproduction no longer reproduces.
    pytest already fails that run ([XPASS(strict)]), so the nightly job fails on its own; this tool
    does not add a regression, and asks for the xfail marker and the README numbers to be revised.
``improvement``
    FAIL -> PASS (not an xfail), or no verdict -> PASS.
``changed``
    Any other change of verdict or outcome (e.g. FAIL -> error, failed -> xfailed).
``added`` / ``removed``
    A claim only in NEW (or skipped in OLD and run in NEW) / only in OLD and skipped there.

Statistics: for every claim with evidence in both files, criteria are matched by name; one is
reported when its confidence intervals do not overlap (both have one), or when its estimate moved
by more than :data:`RELATIVE_TOLERANCE` (otherwise), or when its threshold or direction changed.
Moved statistics are reported only; they never count as regressions on their own.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from reports.results import RESULTS_NAME, SCHEMA_VERSION

# Estimates without an interval (worst-over-seeds or point statistics) carry no noise estimate of
# their own. Between the README's two smoke seed sets the largest move was 19% (I2 on digits-mlp:
# 0.85 on seeds 0-4, 0.69 on seeds 5-9), so a relative change above 25% is more than seed-to-seed
# noise and worth a look. Reported only: regressions come from verdicts (threshold + interval).
RELATIVE_TOLERANCE = 0.25

# pytest outcomes that make the run fail (a strict xfail that passes is recorded as "failed").
FAILING_OUTCOMES = frozenset({"failed", "error"})
XPASS_STRICT_PREFIX = "[XPASS(strict)]"

REGRESSION, ATTENTION, IMPROVEMENT, CHANGED, ADDED, REMOVED = (
    "regression", "attention", "improvement", "changed", "added", "removed")


class ResultsError(ValueError):
    """A results file that cannot be compared: missing, unreadable, or of another schema version."""


@dataclass(frozen=True)
class Status:
    """How one claim record came out.

    Attributes
    ----------
    outcome : str
        pytest outcome: passed, failed, xfailed, xpassed, skipped or error.
    verdict : {"PASS", "FAIL"} or None
        The evidence's verdict; None when the test recorded no evidence.
    detail : str or None
        The failure message or the skip/xfail reason.
    failing : str or None
        The first failing criterion, e.g. "late consecutive cosine 0.93 >= 0.95" (its compared value).
    """

    outcome: str
    verdict: str | None
    detail: str | None
    failing: str | None = None

    @property
    def ran(self) -> bool:
        return self.outcome != "skipped"

    @property
    def xpassed(self) -> bool:
        """The claim passed although marked xfail (strict xpasses are recorded as failed)."""
        return self.outcome == "xpassed" or (self.detail or "").startswith(XPASS_STRICT_PREFIX)

    @property
    def expected_failure(self) -> bool:
        """The test carries an xfail marker (the claim is a recorded non-reproduction)."""
        return self.outcome == "xfailed" or self.xpassed

    def describe(self) -> str:
        return f"{self.verdict or 'no verdict'} ({self.outcome})"


@dataclass(frozen=True)
class Change:
    """A claim whose status differs between the two files.

    Attributes
    ----------
    kind : str
        One of regression, attention, improvement, changed, added, removed (module docstring).
    claim, setting : str or None
    nodeid : str
        The test's node id (NEW's when it has one).
    old, new : Status or None
        None when the claim is missing from that file.
    reason : str
        Why the change has its kind, in words.
    """

    kind: str
    claim: str | None
    setting: str | None
    nodeid: str
    old: Status | None
    new: Status | None
    reason: str

    @property
    def label(self) -> str:
        return f"{self.claim} {self.setting}" if self.claim else self.nodeid


@dataclass(frozen=True)
class MovedStatistic:
    """A criterion of a claim whose estimate or definition moved between the files.

    Attributes
    ----------
    claim, setting : str or None
    nodeid : str
    criterion : str
        The criterion's name.
    old_estimate, new_estimate : float or None
        None when the criterion is missing from that file.
    old_ci, new_ci : (float, float) or None
    reason : str
    """

    claim: str | None
    setting: str | None
    nodeid: str
    criterion: str
    old_estimate: float | None
    new_estimate: float | None
    old_ci: tuple[float, float] | None
    new_ci: tuple[float, float] | None
    reason: str

    @property
    def label(self) -> str:
        return f"{self.claim} {self.setting}" if self.claim else self.nodeid


@dataclass(frozen=True)
class RunInfo:
    """Provenance of one results file, for the report's header."""

    created: str | None
    commit: str | None
    device: str | None
    n_claims: int


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare`.

    Attributes
    ----------
    old, new : RunInfo
    changes : tuple of Change
        Every claim whose status differs, in NEW's order, then claims only in OLD.
    moved : tuple of MovedStatistic
    """

    old: RunInfo
    new: RunInfo
    changes: tuple[Change, ...]
    moved: tuple[MovedStatistic, ...]

    def of_kind(self, *kinds: str) -> tuple[Change, ...]:
        """The changes of the given kinds, in order."""
        return tuple(c for c in self.changes if c.kind in kinds)

    @property
    def regressions(self) -> tuple[Change, ...]:
        return self.of_kind(REGRESSION)

    @property
    def has_regression(self) -> bool:
        return bool(self.regressions)


# ---------------------------------------------------------------------------------------------
# Comparing


def compare(old: dict, new: dict) -> Comparison:
    """Compare two parsed ``results.json`` documents (schema version 2).

    Parameters
    ----------
    old, new : dict
        As written by ``reports/plugin.py``; see :func:`validate`.

    Returns
    -------
    Comparison
        Status changes of claims (see the module docstring for the rules) and moved statistics.
    """
    old_records, new_records = _index(old["claims"]), _index(new["claims"])
    changes, moved = [], []
    for key, rec in new_records.items():
        before = old_records.get(key)
        change = _classify(before, rec)
        if change is not None:
            changes.append(change)
        if before is not None:
            moved.extend(_moved_statistics(before, rec))
    for key, rec in old_records.items():
        if key not in new_records:
            changes.append(_classify(rec, None))
    return Comparison(old=_run_info(old), new=_run_info(new), changes=tuple(changes), moved=tuple(moved))


def _run_info(results: dict) -> RunInfo:
    return RunInfo(created=results.get("created"), commit=(results.get("git") or {}).get("commit"),
                   device=(results.get("machine") or {}).get("device"), n_claims=len(results["claims"]))


def _claim_and_setting(record: dict) -> tuple[str | None, str | None]:
    # The evidence names the setting itself; the record's fields come from the marker and parametrize id.
    evidence = record.get("evidence") or {}
    return (evidence.get("claim") or record.get("claim"), evidence.get("setting") or record.get("setting"))


def _index(records: list[dict]) -> dict[tuple, dict]:
    """Records by match key: (claim, setting), or the node id when there is no claim id.

    A key seen again in the same file (a test that recorded two evidences) gets its ordinal, so
    duplicates match in file order.
    """
    out: dict[tuple, dict] = {}
    for record in records:
        claim, setting = _claim_and_setting(record)
        base = (claim, setting) if claim else ("nodeid", record["nodeid"])
        key, n = base, 1
        while key in out:
            n += 1
            key = (*base, n)
        out[key] = record
    return out


def _status(record: dict) -> Status:
    evidence = record.get("evidence") or {}
    failing = next((c for c in evidence.get("criteria", []) if not c["passed"]), None)
    return Status(outcome=record["outcome"], verdict=evidence.get("verdict"),
                  detail=record.get("message") or record.get("skip_reason"),
                  failing=None if failing is None else _describe_criterion(failing))


def _describe_criterion(criterion: dict) -> str:
    """"name value direction threshold", with the value the threshold was compared with."""
    return f"{criterion['name']} {criterion['value']:.5g} {criterion['direction']} {criterion['threshold']:.5g}"


def _classify(old_record: dict | None, new_record: dict | None) -> Change | None:
    """The change between two records of one claim (None = missing); None when nothing changed."""
    ref = new_record or old_record
    claim, setting = _claim_and_setting(ref)
    old = _status(old_record) if old_record else None
    new = _status(new_record) if new_record else None
    found = _kind(old, new)
    if found is None:
        return None
    kind, reason = found
    return Change(kind=kind, claim=claim, setting=setting, nodeid=ref["nodeid"], old=old, new=new, reason=reason)


def _kind(old: Status | None, new: Status | None) -> tuple[str, str] | None:
    """(kind, reason) of a status change, following the rules of the module docstring."""
    if old is None or not old.ran:
        if new is None:
            return REMOVED, "only in old, where it was skipped"
        if not new.ran:
            return None if old is not None else (ADDED, "only in new, skipped there")
        return ADDED, "only in new" if old is None else "skipped in old, runs in new"
    if new is None:
        return REGRESSION, "ran in old, missing from new"
    if not new.ran:
        return REGRESSION, f"ran in old, skipped in new: {new.detail or 'no reason given'}"
    if old.verdict == "PASS" and new.verdict == "FAIL":
        if old.expected_failure:
            return CHANGED, "back to the recorded non-reproduction (xfail)"
        return REGRESSION, f"the claim no longer holds: {new.failing}"
    if old.verdict is not None and new.verdict is None:
        if old.verdict == "PASS" or (new.outcome in FAILING_OUTCOMES and old.outcome not in FAILING_OUTCOMES):
            return REGRESSION, f"no verdict any more: {new.detail or new.outcome}"
        return CHANGED, f"no verdict any more: {new.detail or new.outcome}"
    if new.xpassed and not old.xpassed:
        return ATTENTION, ("strict xfail now passes: no longer reproduces the non-reproduction; "
                           "revise the xfail marker and the README")
    if new.verdict == "PASS" and old.verdict != "PASS":
        return IMPROVEMENT, "the claim now holds" + (f" (failed before: {old.failing})" if old.failing else "")
    if new.outcome in FAILING_OUTCOMES and old.outcome not in FAILING_OUTCOMES:
        return REGRESSION, f"test now {new.outcome}: {new.detail or 'no message'}"
    if (old.verdict, old.outcome) != (new.verdict, new.outcome):
        return CHANGED, f"{old.describe()} -> {new.describe()}"
    return None


def _moved_statistics(old_record: dict, new_record: dict) -> list[MovedStatistic]:
    old_ev, new_ev = old_record.get("evidence"), new_record.get("evidence")
    if not old_ev or not new_ev:
        return []
    claim, setting = _claim_and_setting(new_record)
    old_criteria = {c["name"]: c for c in old_ev["criteria"]}
    new_criteria = {c["name"]: c for c in new_ev["criteria"]}
    out = []
    for name in [*new_criteria, *(n for n in old_criteria if n not in new_criteria)]:
        before, after = old_criteria.get(name), new_criteria.get(name)
        reason = _criterion_move(before, after)
        if reason is not None:
            out.append(MovedStatistic(
                claim=claim, setting=setting, nodeid=new_record["nodeid"], criterion=name,
                old_estimate=None if before is None else before["estimate"],
                new_estimate=None if after is None else after["estimate"],
                old_ci=_interval(before), new_ci=_interval(after), reason=reason))
    return out


def _interval(criterion: dict | None) -> tuple[float, float] | None:
    ci = (criterion or {}).get("ci")
    if ci is None or any(math.isnan(b) for b in ci):
        return None
    return (ci[0], ci[1])


def _criterion_move(old: dict | None, new: dict | None) -> str | None:
    """Why one criterion counts as moved, or None."""
    if old is None:
        return "criterion only in new"
    if new is None:
        return "criterion only in old"
    if (old["direction"], old["threshold"]) != (new["direction"], new["threshold"]):
        return (f"threshold changed: {old['direction']} {old['threshold']:.5g} -> "
                f"{new['direction']} {new['threshold']:.5g}")
    old_ci, new_ci = _interval(old), _interval(new)
    if old_ci is not None and new_ci is not None:
        if old_ci[1] < new_ci[0] or new_ci[1] < old_ci[0]:
            return "confidence intervals do not overlap"
        return None
    change = relative_change(old["estimate"], new["estimate"])
    if change > RELATIVE_TOLERANCE:
        return f"estimate moved by {change:.0%} (> {RELATIVE_TOLERANCE:.0%}; no interval on both sides)"
    return None


def relative_change(old: float, new: float) -> float:
    """``|new - old| / max(|old|, |new|)``: in [0, 2], symmetric, finite near zero.

    Returns 0 for two zeros or two NaNs, and infinity when exactly one side is NaN or they are
    unequal infinities.
    """
    if math.isnan(old) or math.isnan(new):
        return 0.0 if math.isnan(old) and math.isnan(new) else math.inf
    if old == new:
        return 0.0
    if math.isinf(old) or math.isinf(new):
        return math.inf
    return abs(new - old) / max(abs(old), abs(new))


# ---------------------------------------------------------------------------------------------
# Input


def validate(results: object, name: str) -> dict:
    """Check that a parsed document is a schema-version-2 results file; return it.

    Parameters
    ----------
    results : object
        What ``json.load`` returned.
    name : str
        How to name the file in error messages.

    Raises
    ------
    ResultsError
        Not an object, another ``schema_version``, or claim records without ``nodeid``/``outcome``.
    """
    if not isinstance(results, dict):
        raise ResultsError(f"{name}: expected a JSON object (a results.json), got {type(results).__name__}")
    version = results.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultsError(f"{name}: unsupported schema_version {version!r}: this tool reads version "
                           f"{SCHEMA_VERSION} (reports/SCHEMA.md); re-run pytest with --report-dir "
                           "to write a current one")
    claims = results.get("claims")
    if not isinstance(claims, list) or not all(isinstance(r, dict) and "nodeid" in r and "outcome" in r
                                                for r in claims):
        raise ResultsError(f"{name}: 'claims' must be a list of records with 'nodeid' and 'outcome'")
    return results


def load_results(path: Path) -> dict:
    """Read and validate ``path`` (a results.json, or a folder holding one).

    Raises
    ------
    ResultsError
        The file is missing or is not valid JSON, or :func:`validate` rejects it.
    """
    file = path / RESULTS_NAME if path.is_dir() else path
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultsError(f"{file}: no such file" + (" (the folder has no results.json)" if path.is_dir() else ""))
    except OSError as exc:
        raise ResultsError(f"{file}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{file}: not valid JSON (not UTF-8 text): {exc}") from None
    try:
        results = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{file}: not valid JSON: {exc}") from None
    return validate(results, str(file))


# ---------------------------------------------------------------------------------------------
# Output


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.5g}"


def _fmt_ci(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f" [{ci[0]:.5g}, {ci[1]:.5g}]"


def _describe_run(info: RunInfo) -> str:
    commit = (info.commit or "unknown commit")[:10]
    return f"{info.created or 'unknown time'}, {commit}, device {info.device or '?'}, {info.n_claims} claim records"


def render_text(comparison: Comparison, old_name: str = "old", new_name: str = "new") -> str:
    """A readable report: regressions, other verdict changes, moved statistics, new/removed claims."""
    def change_line(c: Change, tag: str = "") -> str:
        old = c.old.describe() if c.old else "missing"
        new = c.new.describe() if c.new else "missing"
        return f"  {tag}{c.label}: {old} -> {new}: {c.reason}"

    def section(title: str, lines: list[str]) -> list[str]:
        return ["", f"{title} ({len(lines)})", *(lines or ["  none"])]

    others = [change_line(c, f"[{c.kind}] ") for c in comparison.of_kind(ATTENTION, IMPROVEMENT, CHANGED)]
    moved = [f"  {m.label} / {m.criterion}: {_fmt(m.old_estimate)}{_fmt_ci(m.old_ci)} -> "
             f"{_fmt(m.new_estimate)}{_fmt_ci(m.new_ci)}: {m.reason}" for m in comparison.moved]
    added_removed = [change_line(c, f"[{c.kind}] ") for c in comparison.of_kind(ADDED, REMOVED)]
    n = len(comparison.regressions)
    lines = [
        f"old: {old_name} ({_describe_run(comparison.old)})",
        f"new: {new_name} ({_describe_run(comparison.new)})",
        *section("Regressions", [change_line(c) for c in comparison.regressions]),
        *section("Other verdict changes", others),
        *section("Moved statistics (reported only)", moved),
        *section("New and removed claims", added_removed),
        "",
        f"{n} regression{'s' if n != 1 else ''}" + (": exit status 1" if n else ""),
    ]
    return "\n".join(lines) + "\n"


def to_json(comparison: Comparison) -> dict:
    """A JSON-able dict of the comparison, with ``regression`` (bool) at the top level."""
    return {"regression": comparison.has_regression, **asdict(comparison)}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: print the comparison; return 1 on regression, 0 otherwise, 2 on bad input."""
    parser = argparse.ArgumentParser(prog="python -m reports.compare", description=__doc__.split("\n")[0],
                                     epilog="Exit status: 1 on any regression, 0 otherwise, 2 on bad input.")
    parser.add_argument("old", type=Path, help="the earlier results.json, or a folder holding one")
    parser.add_argument("new", type=Path, help="the later results.json, or a folder holding one")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON instead of text")
    args = parser.parse_args(argv)
    try:
        old, new = load_results(args.old), load_results(args.new)
    except ResultsError as exc:
        print(f"reports.compare: error: {exc}", file=sys.stderr)
        return 2
    try:
        comparison = compare(old, new)
    except (KeyError, TypeError, AttributeError) as exc:
        # A record of the wrong shape: bad input (2), never to be read as a regression (1).
        print(f"reports.compare: error: a claim record does not follow the schema: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(to_json(comparison), indent=2))
    else:
        print(render_text(comparison, str(args.old), str(args.new)), end="")
    return 1 if comparison.has_regression else 0


if __name__ == "__main__":
    sys.exit(main())
