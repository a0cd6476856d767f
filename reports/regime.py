"""How far is a setting from the paper's regime? The README's *Regime* table, measured from the runs.

Usage::

    python -m reports.regime [SETTING ...] [--seeds N] [--runs-dir DIR] [--data-root DIR]

Trains the settings' missing runs into the store (seeds 0..N-1, default 5) and prints one Markdown
row per setting beside the paper's: final test accuracy, cos(theta_0, theta_E) (kernels only, as
[WB]), epochs, the subspace window, samples per run, the test-set size and the smallest accuracy
difference it resolves (one binomial standard error). A finding is about the claim only where the
setting keeps what the claim depends on; this table says where it does not.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from harness import settings
from harness.stats import accuracy_standard_error
from harness.store import RunStore
from harness.subspace import ENSEMBLE_SAMPLES, PLANE_SAMPLES
from harness.training import Run
from harness.weightspace import cosine_similarity, weight_vector

# [WB] SmallCNN on CIFAR-10, 40 epochs: single-run test accuracy 62.7% (its N1 curve), cos(theta_0,
# theta_E) = 0.62 (0.74 for its ResNet); the official window and sample counts ([Fort] code).
PAPER_ROW = ("paper: [WB] SmallCNN, CIFAR-10", "62.7%", "0.62 (ResNet 0.74)", "40, lr halved every 10",
             "epochs 31-40 at lr/8, 10 epoch ends", "30 (ensembles), 50 (plane)", "10,000: 0.48 points")
HEADER = ("setting", "final test accuracy", "cos(θ₀, θ_E)", "epochs", "subspace window", "samples per run",
          "test set: 1 s.e.")


def window_text(recipe: settings.Recipe) -> str:
    """The recipe's subspace window in words, e.g. "epochs 13-16 at lr/8, 3 per epoch (12)"."""
    if recipe.window is None:
        return "none"
    first, last = recipe.window_epochs[0], recipe.window_epochs[-1]
    per = recipe.window.per_epoch
    snapshots = "epoch ends" if per == 1 else f"{per} per epoch"
    return (f"epochs {first}-{last} at lr/{round(recipe.lr / recipe.lr_at(last))}, {snapshots} "
            f"({recipe.window.snapshots})")


def regime_row(setting: settings.Setting, runs: Sequence[Run]) -> tuple[str, ...]:
    """One table row of ``setting`` measured on ``runs`` (means over the runs)."""
    accuracy = float(np.mean([r.eval_acc[-1].item() for r in runs]))
    cos = float(np.mean([cosine_similarity(weight_vector(r.weights[0]), weight_vector(r.weights[r.epochs[-1]]))
                         for r in runs]))
    n_test = len(runs[0].eval_labels)
    recipe = setting.recipe
    halving = "constant lr" if recipe.lr_halving_every is None else f"lr halved every {recipe.lr_halving_every}"
    return (f"{setting.name} ({len(runs)} seeds)", f"{accuracy:.1%}", f"{cos:.2f}", f"{recipe.epochs}, {halving}",
            window_text(recipe), f"{ENSEMBLE_SAMPLES[setting.tier]} (ensembles), {PLANE_SAMPLES[setting.tier]} (plane)",
            f"{n_test:,}: {100 * accuracy_standard_error(accuracy, n_test):.2f} points")


def markdown(rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table of ``HEADER`` and ``rows``."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.regime", description=__doc__.split("\n\n")[0])
    parser.add_argument("settings", nargs="*", default=list(settings.names("smoke")),
                        help="setting names (default: the smoke settings)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--runs-dir", default="runs", help="run store (default: runs/)")
    parser.add_argument("--data-root", default=None, help="folder containing cifar-10-batches-py/")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds} is invalid: expected at least 1")
    try:
        chosen = [settings.get(name) for name in args.settings]
    except KeyError as err:
        parser.error(err.args[0])
    store = RunStore(args.runs_dir)
    rows = [PAPER_ROW] + [regime_row(s, store.get_or_train(s, range(args.seeds), data_root=args.data_root))
                          for s in chosen]
    sys.stdout.write(markdown(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
