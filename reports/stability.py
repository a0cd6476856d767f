"""Do the verdicts repeat? Run the smoke claims on disjoint seed sets and compare every outcome.

Usage::

    python -m reports.stability [--offsets 0 1000 2000 3000] [--out DIR] [-- PYTEST_ARGS ...]

For each offset K, runs ``pytest claims/ -m smoke --seed-offset K --report-dir DIR/offset-K``
(K >= every setting's ``max_seeds`` apart keeps the sets disjoint, grown decisions included), then
prints one row per (claim, setting): the verdict and the seeds it used on each seed set. Exit
status: 0 when every claim's verdict is the same on every set, 1 when some differ (a decision that
flips between seed sets is a bug in the decision), 2 on bad input or a run that wrote no results.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness import settings
from reports.results import UNDECIDABLE, ResultsError, load_results
from reports.table import format_table

UNDECIDABLE_TAG = ", undecidable"

DEFAULT_OFFSETS = (0, 1000, 2000, 3000)
DEFAULT_OUT = Path("reports/out/stability")


def verdicts(results: Mapping) -> dict[tuple[str, str], str]:
    """``{(claim, setting): "verdict (n seeds)"}`` of a results.json document; the test outcome when
    a claim test recorded no evidence (e.g. "error"). A claim declared undecidable in its setting
    (harness.findings) reads "verdict (n seeds, undecidable)"."""
    out = {}
    for record in results["claims"]:
        evidence = record.get("evidence")
        key = (record.get("claim") or record["nodeid"], record.get("setting") or "-")
        if evidence is None:
            out[key] = record["outcome"]
            continue
        undecidable = (evidence.get("finding") or {}).get("expected") == UNDECIDABLE
        out[key] = f"{evidence['outcome']} ({evidence['n_seeds']}{UNDECIDABLE_TAG if undecidable else ''})"
    return out


def verdict_of(cell: str) -> str:
    """The verdict of a cell without its seed count: seed counts may differ, verdicts may not."""
    return cell.split(" (")[0]


def compare(per_offset: Mapping[int, Mapping[tuple[str, str], str]]) -> tuple[list[tuple], list[tuple[str, str]]]:
    """Rows (claim, setting, cell per offset) and the keys whose verdict differs between offsets.

    A claim missing from some seed set counts as differing; one declared undecidable in its setting
    is shown but not compared (its verdict is not expected to repeat).
    """
    keys = sorted({key for table in per_offset.values() for key in table})
    rows, unstable = [], []
    for key in keys:
        cells = [table.get(key, "missing") for table in per_offset.values()]
        rows.append((*key, *cells))
        if len({verdict_of(c) for c in cells}) > 1 and not any(UNDECIDABLE_TAG in c for c in cells):
            unstable.append(key)
    return rows, unstable


def run_offset(offset: int, out: Path, pytest_args: Sequence[str]) -> dict:
    """Run the smoke claims from ``offset`` and return its results.json document."""
    report_dir = out / f"offset-{offset}"
    command = [sys.executable, "-m", "pytest", "claims/", "-m", "smoke", "-q", "-p", "no:cacheprovider",
               "--seed-offset", str(offset), "--report-dir", str(report_dir), *pytest_args]
    print(f"[stability] {' '.join(command[1:])}", flush=True)
    subprocess.run(command, check=False)  # failing claims are what this measures; the results say which
    try:
        return load_results(report_dir)
    except ResultsError as exc:
        raise ResultsError(f"pytest wrote no readable results for --seed-offset {offset}: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.stability", description=__doc__.splitlines()[0])
    parser.add_argument("--offsets", type=int, nargs="+", default=list(DEFAULT_OFFSETS),
                        help=f"first seed of each seed set (default: {' '.join(map(str, DEFAULT_OFFSETS))})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report folders (default: {DEFAULT_OUT})")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments, after --")
    args = parser.parse_args(argv)
    offsets = sorted(set(args.offsets))
    spacing = max(s.max_seeds for s in map(settings.get, settings.names("smoke")))
    if len(offsets) < 2 or min(b - a for a, b in zip(offsets, offsets[1:])) < spacing:
        print(f"--offsets must name at least two seed sets at least {spacing} apart (the largest max_seeds of the "
              f"smoke settings), so that grown decisions stay disjoint; got {offsets}", file=sys.stderr)
        return 2
    try:
        per_offset = {k: verdicts(run_offset(k, args.out, args.pytest_args)) for k in offsets}
    except (ResultsError, KeyError) as exc:
        print(f"stability: {exc}", file=sys.stderr)
        return 2
    rows, unstable = compare(per_offset)
    header = ("claim", "setting", *(f"seeds from {k}" for k in offsets))
    print("\n".join(format_table(rows, header)))
    if unstable:
        print(f"UNSTABLE: {len(unstable)} of {len(rows)} claim verdicts differ between seed sets: "
              + ", ".join(f"{c} {s}" for c, s in unstable))
        return 1
    undecidable = sum(any(UNDECIDABLE_TAG in cell for cell in row[2:]) for row in rows)
    print(f"stable: {len(rows) - undecidable} claim verdicts are identical on {len(offsets)} disjoint seed sets; "
          f"{undecidable} declared undecidable (shown, not compared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
