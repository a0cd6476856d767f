"""Compare two ``results.json`` files: verdict changes, regressions, moved statistics, seed counts.

Usage::

    python -m reports.compare OLD NEW [--json]

``OLD`` and ``NEW`` are ``results.json`` files (``reports/SCHEMA.md``) or folders holding one, read
by :func:`reports.results.load_results`. Exit status: 1 when there is any regression, 0 otherwise,
2 on bad input (unknown schema versions included).

Verdicts are version 3's: reproduces, refuted, inconclusive. Files of schema versions 2 and 1 are
compared too (the nightly job's previous night may be one): their evidence is read in version 3's
shape (:func:`reports.results.upgrade`) with its verdicts labelled "PASS (schema 2)" and "FAIL
(schema 2)". PASS decided on the same bound as reproduces does, so it counts as reproduces; a FAIL
was refuted or inconclusive, which version 2 did not tell apart, so it counts as "does not
reproduce" and agrees with both (FAIL -> refuted is no change of verdict).

One module on purpose (over 400 lines): the rules that classify a change and the text and JSON
that state them are read and changed together; reading the files is :mod:`reports.results`'s.

Claim records are matched by (claim id, setting); a record without a claim id is matched by its
pytest node id. Each matched or unmatched record falls in one kind of change:

``regression``
    The verdict went from reproduces to refuted or inconclusive; or a claim that had a verdict
    now has none (it errored before deciding) after it reproduced or with a test that now fails;
    or the test outcome moved into ``failed``/``error`` from anything else; or a claim that ran
    before is now skipped or missing. A skip counts as a regression because a nightly run that
    silently stops deciding a claim (no GPU, no data, a new skip condition) has lost coverage; a
    claim skipped in both files is no change.
    Exception: a declared finding that reproduced in OLD and is refuted as declared in NEW (back to
    the declared non-reproduction, ``xfailed``) is ``changed``, not a regression.
``attention``
    A declared finding whose claim now reproduces (schema 2: a strict xfail that now passes). The
    claim test already fails that run ("declared finding now reproduces"; schema 2:
    [XPASS(strict)]), so the nightly job fails on its own; this tool adds no regression, and asks
    for the finding and the README numbers to be revised.
``improvement``
    Refuted, inconclusive or no verdict -> reproduces, not a declared finding.
``changed``
    Any other change of verdict or outcome (e.g. refuted -> inconclusive, refuted -> error).
``added`` / ``removed``
    A claim only in NEW (or skipped in OLD and run in NEW) / only in OLD and skipped there.

Statistics: for every claim with evidence in both files, criteria are matched by name; one is
reported when its intervals do not overlap, or when its threshold or direction changed. Every
criterion of version 3 has an interval, but a schema-2 criterion may have none and an undefined
statistic has NaN bounds: without an interval on both sides, a criterion is reported when its
estimate moved by more than :data:`RELATIVE_TOLERANCE`. Seed counts: a claim
decided on a different number of seeds is reported (a sequential decision that took another look).
Moved statistics and seed counts are reported only; they never count as regressions on their own.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.evidence import format_interval, format_number, format_threshold
from reports.results import (
    LEGACY_VERDICTS,
    REPRODUCES,
    SCHEMA_VERSION,
    UNDECIDABLE,
    ResultsError,
    headline,
    holds,
    load_results,
    looks_text,
    upgrade,
)

# Schema-2 estimates without an interval (worst-over-seeds or point statistics) carry no noise
# estimate of their own. Between the README's two smoke seed sets the largest move was 19% (I2 on
# digits-mlp: 0.85 on seeds 0-4, 0.69 on seeds 5-9), so a relative change above 25% is more than
# seed-to-seed noise and worth a look. Reported only: regressions come from verdicts.
RELATIVE_TOLERANCE = 0.25

# pytest outcomes that make the run fail (a strict xfail that passes is recorded as "failed").
FAILING_OUTCOMES = frozenset({"failed", "error"})
XPASS_STRICT_PREFIX = "[XPASS(strict)]"

REGRESSION, ATTENTION, IMPROVEMENT, CHANGED, ADDED, REMOVED = (
    "regression", "attention", "improvement", "changed", "added", "removed")


@dataclass(frozen=True)
class Status:
    """How one claim record came out.

    Attributes
    ----------
    outcome : str
        pytest outcome: passed, failed, xfailed, xpassed, skipped or error.
    verdict : str or None
        The evidence's verdict: reproduces, refuted, inconclusive, or (schema 2) "PASS (schema 2)"
        or "FAIL (schema 2)"; None when the test recorded no evidence.
    detail : str or None
        The failure message or the skip/xfail reason.
    headline : str or None
        The criterion that explains the verdict, e.g. "late consecutive cosine 0.93 [0.9, 0.96] >= 0.95".
    finding : str or None
        The verdict a declared finding of the claim expected ("refuted"); None without one.
    """

    outcome: str
    verdict: str | None
    detail: str | None
    headline: str | None = None
    finding: str | None = None

    @property
    def ran(self) -> bool:
        return self.outcome != "skipped"

    @property
    def holds(self) -> bool | None:
        """Whether the verdict says the claim holds (:func:`reports.results.holds`); None without one."""
        return holds(self.verdict)

    @property
    def finding_reproduces(self) -> bool:
        """A declared finding whose claim reproduces; in schema 2, an xfail that passed (strict
        xpasses are recorded as failed)."""
        return ((self.finding not in (None, UNDECIDABLE) and self.verdict == REPRODUCES) or self.outcome == "xpassed"
                or (self.detail or "").startswith(XPASS_STRICT_PREFIX))

    def describe(self) -> str:
        finding = "" if self.finding is None else f", declared finding {self.finding}"
        return f"{self.verdict or 'no verdict'} ({self.outcome}{finding})"


@dataclass(frozen=True)
class _Located:
    """Which claim record a reported item is about.

    Attributes
    ----------
    claim, setting : str or None
    nodeid : str
        The test's node id (NEW's when it has one).
    """

    claim: str | None
    setting: str | None
    nodeid: str

    @property
    def label(self) -> str:
        return f"{self.claim} {self.setting}" if self.claim else self.nodeid


@dataclass(frozen=True)
class Change(_Located):
    """A claim whose status differs between the two files.

    Attributes
    ----------
    kind : str
        One of regression, attention, improvement, changed, added, removed (module docstring).
    old, new : Status or None
        None when the claim is missing from that file.
    reason : str
        Why the change has its kind, in words.
    """

    kind: str
    old: Status | None
    new: Status | None
    reason: str


@dataclass(frozen=True)
class MovedStatistic(_Located):
    """A criterion of a claim whose estimate or definition moved between the files.

    Attributes
    ----------
    criterion : str
        The criterion's name.
    old_estimate, new_estimate : float or None
        None when the criterion is missing from that file.
    old_ci, new_ci : (float, float) or None
    reason : str
    """

    criterion: str
    old_estimate: float | None
    new_estimate: float | None
    old_ci: tuple[float, float] | None
    new_ci: tuple[float, float] | None
    reason: str


@dataclass(frozen=True)
class SeedChange(_Located):
    """A claim decided on a different number of seeds in the two files.

    Attributes
    ----------
    old_seeds, new_seeds : int
        The seed count of the decision (its last look).
    old_looks, new_looks : str
        The seed count of each look, e.g. "5→10" (:func:`reports.results.looks_text`).
    """

    old_seeds: int
    new_seeds: int
    old_looks: str
    new_looks: str


@dataclass(frozen=True)
class RunInfo:
    """Provenance of one results file, for the report's header."""

    created: str | None
    commit: str | None
    device: str | None
    n_claims: int
    schema_version: int


@dataclass(frozen=True)
class Comparison:
    """The result of :func:`compare`.

    Attributes
    ----------
    old, new : RunInfo
    changes : tuple of Change
        Every claim whose status differs, in NEW's order, then claims only in OLD.
    moved : tuple of MovedStatistic
    seeds : tuple of SeedChange
    """

    old: RunInfo
    new: RunInfo
    changes: tuple[Change, ...]
    moved: tuple[MovedStatistic, ...]
    seeds: tuple[SeedChange, ...]

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
    """Compare two parsed ``results.json`` documents (schema version 3 or 2, in any pairing).

    Parameters
    ----------
    old, new : dict
        As written by ``reports/plugin.py``, of any readable schema version (:func:`reports.results.upgrade`).

    Returns
    -------
    Comparison
        Status changes of claims (see the module docstring for the rules), moved statistics and
        changed seed counts.
    """
    old, new = upgrade(old), upgrade(new)
    old_records, new_records = _index(old["claims"]), _index(new["claims"])
    changes, moved, seeds = [], [], []
    for key, rec in new_records.items():
        before = old_records.get(key)
        change = _classify(before, rec)
        if change is not None:
            changes.append(change)
        if before is not None:
            moved.extend(_moved_statistics(before, rec))
            seeds.extend(_seed_change(before, rec))
    for key, rec in old_records.items():
        if key not in new_records:
            changes.append(_classify(rec, None))
    return Comparison(old=_run_info(old), new=_run_info(new), changes=tuple(changes), moved=tuple(moved),
                      seeds=tuple(seeds))


def _run_info(results: dict) -> RunInfo:
    return RunInfo(created=results.get("created"), commit=(results.get("git") or {}).get("commit"),
                   device=(results.get("machine") or {}).get("device"), n_claims=len(results["claims"]),
                   schema_version=results.get("upgraded_from", results.get("schema_version")))


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
    return Status(outcome=record["outcome"], verdict=evidence.get("outcome"),
                  detail=record.get("message") or record.get("skip_reason"),
                  headline=headline(evidence),
                  finding=(evidence.get("finding") or {}).get("expected"))


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


def _same_verdict(old: str | None, new: str | None) -> bool:
    """Whether two verdicts say the same. A schema-2 verdict says only whether the claim held, so
    it agrees with each version-3 verdict that says as much (FAIL with refuted and inconclusive)."""
    if old in LEGACY_VERDICTS.values() or new in LEGACY_VERDICTS.values():
        return holds(old) == holds(new)
    return old == new


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
    if UNDECIDABLE in (old.finding, new.finding) and new.outcome not in FAILING_OUTCOMES:
        if _same_verdict(old.verdict, new.verdict) and old.outcome == new.outcome:
            return None
        return CHANGED, f"declared undecidable here, so not judged: {old.describe()} -> {new.describe()}"
    if old.holds and new.holds is False:
        if old.finding_reproduces and new.outcome == "xfailed":
            return CHANGED, "back to the declared finding (xfailed)"
        return REGRESSION, f"the claim no longer reproduces ({new.verdict}): {new.headline}"
    if old.verdict is not None and new.verdict is None:
        if old.holds or (new.outcome in FAILING_OUTCOMES and old.outcome not in FAILING_OUTCOMES):
            return REGRESSION, f"no verdict any more: {new.detail or new.outcome}"
        return CHANGED, f"no verdict any more: {new.detail or new.outcome}"
    if new.finding_reproduces and not old.finding_reproduces:
        return ATTENTION, ("declared finding now reproduces: the recorded non-reproduction no longer holds; "
                           "revise the finding and the README")
    if new.holds and not old.holds:
        return IMPROVEMENT, "the claim now reproduces" + (f" ({old.verdict} before: {old.headline})"
                                                          if old.headline else "")
    if new.outcome in FAILING_OUTCOMES and old.outcome not in FAILING_OUTCOMES:
        return REGRESSION, f"test now {new.outcome}: {new.detail or 'no message'}"
    if not _same_verdict(old.verdict, new.verdict) or old.outcome != new.outcome:
        return CHANGED, f"{old.describe()} -> {new.describe()}"
    return None


def _seed_change(old_record: dict, new_record: dict) -> list[SeedChange]:
    """The claim's seed counts, when both files decided it and on different numbers of seeds."""
    old_ev, new_ev = old_record.get("evidence"), new_record.get("evidence")
    if not old_ev or not new_ev or old_ev["n_seeds"] == new_ev["n_seeds"]:
        return []
    claim, setting = _claim_and_setting(new_record)
    return [SeedChange(claim=claim, setting=setting, nodeid=new_record["nodeid"], old_seeds=old_ev["n_seeds"],
                       new_seeds=new_ev["n_seeds"], old_looks=looks_text(old_ev), new_looks=looks_text(new_ev))]


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
    """The criterion's interval; None when it has none (schema 2) or a NaN bound (an undefined statistic)."""
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
        return (f"threshold changed: {format_threshold(old['direction'], old['threshold'])} -> "
                f"{format_threshold(new['direction'], new['threshold'])}")
    old_ci, new_ci = _interval(old), _interval(new)
    if old_ci is not None and new_ci is not None:
        if old_ci[1] < new_ci[0] or new_ci[1] < old_ci[0]:
            return "intervals do not overlap"
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


# ---------------------------------------------------------------------------------------------
# Output


def _describe_run(info: RunInfo) -> str:
    commit = info.commit[:10] if info.commit else "unknown commit"
    return (f"{info.created or 'unknown time'}, {commit}, device {info.device or '?'}, {info.n_claims} claim records, "
            f"schema {info.schema_version}")


def _legacy_note(comparison: Comparison) -> list[str]:
    """How a schema-2 file's verdicts were read, when one of the files is of schema 2."""
    if comparison.old.schema_version == comparison.new.schema_version == SCHEMA_VERSION:
        return []
    return ["note: schema-2 verdicts read as PASS = reproduces, FAIL = refuted or inconclusive (not told apart)"]


def render_text(comparison: Comparison, old_name: str = "old", new_name: str = "new") -> str:
    """A readable report: regressions, other verdict changes, moved statistics, seed counts,
    new/removed claims."""
    def change_line(c: Change, tag: str = "") -> str:
        old = c.old.describe() if c.old else "missing"
        new = c.new.describe() if c.new else "missing"
        return f"  {tag}{c.label}: {old} -> {new}: {c.reason}"

    def section(title: str, lines: list[str]) -> list[str]:
        return ["", f"{title} ({len(lines)})", *(lines or ["  none"])]

    others = [change_line(c, f"[{c.kind}] ") for c in comparison.of_kind(ATTENTION, IMPROVEMENT, CHANGED)]
    moved = [f"  {m.label} / {m.criterion}: {format_number(m.old_estimate)} {format_interval(m.old_ci)} -> "
             f"{format_number(m.new_estimate)} {format_interval(m.new_ci)}: {m.reason}" for m in comparison.moved]
    seeds = [f"  {c.label}: {c.old_seeds} -> {c.new_seeds} seeds (looks {c.old_looks} -> {c.new_looks})"
             for c in comparison.seeds]
    added_removed = [change_line(c, f"[{c.kind}] ") for c in comparison.of_kind(ADDED, REMOVED)]
    n = len(comparison.regressions)
    lines = [
        f"old: {old_name} ({_describe_run(comparison.old)})",
        f"new: {new_name} ({_describe_run(comparison.new)})",
        *_legacy_note(comparison),
        *section("Regressions", [change_line(c) for c in comparison.regressions]),
        *section("Other verdict changes", others),
        *section("Moved statistics (reported only)", moved),
        *section("Seed counts changed (reported only)", seeds),
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
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
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
