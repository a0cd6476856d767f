"""How many training images do a sampled model's BatchNorm statistics need? The README's table.

Usage::

    python -m reports.batchnorm [--train N] [--epochs E] [--test N] [--repeats R] [--runs-dir DIR]

Trains (into the run store) one ResNet20 of the gpu tier's ``synthetic32-resnet20`` on its first
``--train`` images for ``--epochs`` epochs, then takes its final weights and one ensemble-scale
sample of the random and diagonal-Gaussian samplers. For each model it recomputes the BatchNorm statistics on the
whole 49.5k-image training split (the reference, and the cost before) and on random subsets of
512 * 2^k images (``--repeats`` subsets each), and prints per size: the fraction of test points
whose predicted class differs from the reference's (mean over subsets, worst model), the largest
accuracy change, and the seconds a sample's statistics and predictions take. The smallest size
within :data:`harness.interpolation.BATCHNORM_TOLERANCE` is the one to keep in
:data:`harness.interpolation.BATCHNORM_IMAGES`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence

import torch

from harness import data as data_lib
from harness import settings
from harness.interpolation import BATCHNORM_TOLERANCE, batchnorm_inputs, recompute_batchnorm_stats_
from harness.store import RunStore
from harness.subspace import ENSEMBLE_SCALES, sample, unflatten
from harness.training import model_at, predict_proba

SETTING = "synthetic32-resnet20"
SIZES = (512, 1024, 2048, 4096, 8192)
# The final weights and the two samplers that perturb every weight (dropout and PCA move fewer
# directions): each model costs ~100k forward passes, minutes on a CPU.
SAMPLED = ("random", "diag")


def probe_setting(n_train: int, epochs: int, n_test: int) -> settings.Setting:
    """``SETTING`` trained on its first ``n_train`` images (+500 validation) for ``epochs`` epochs.

    The learning rate is halved every ``epochs // 4`` epochs, and the window is the last phase,
    as in the smoke settings' scale-down of the official recipe.
    """
    base = settings.get(SETTING)
    phase = max(epochs // 4, 1)
    per_epoch = -(-settings.MIN_WINDOW_SNAPSHOTS // phase)
    recipe = dataclasses.replace(base.recipe, epochs=epochs, lr_halving_every=phase,
                                 window=settings.Window(epochs=phase, per_epoch=per_epoch))
    dataset = dataclasses.replace(base.dataset, limit=(n_train + base.dataset.n_val, n_test))
    return base.replace(name=f"{SETTING}-probe", dataset=dataset, recipe=recipe)


def measure(model: torch.nn.Module, train_x: torch.Tensor, test: data_lib.Split, repeats: int) -> list[dict]:
    """One row per size (the whole split first): disagreement with the whole split's predictions,
    accuracy change, and seconds per sample (statistics + test predictions)."""
    def predict(x: torch.Tensor) -> tuple[torch.Tensor, float]:
        start = time.perf_counter()
        recompute_batchnorm_stats_(model, x)
        probs = predict_proba(model, test.x)
        return probs.argmax(1), time.perf_counter() - start

    reference, seconds = predict(train_x)
    ref_acc = (reference == test.y).double().mean().item()
    rows = [{"images": len(train_x), "disagreement": 0.0, "accuracy_change": 0.0, "seconds": seconds}]
    for size in SIZES:
        outcomes = [predict(batchnorm_inputs(train_x, size, seed)) for seed in range(repeats)]
        rows.append({
            "images": size,
            "disagreement": sum((pred != reference).double().mean().item() for pred, _ in outcomes) / repeats,
            "accuracy_change": max(abs((pred == test.y).double().mean().item() - ref_acc) for pred, _ in outcomes),
            "seconds": sum(s for _, s in outcomes) / repeats,
        })
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.batchnorm", description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=3000, help="training images of the probe run (default 3000)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs of the probe run (default 8)")
    parser.add_argument("--test", type=int, default=2000, help="test images predicted (default 2000)")
    parser.add_argument("--repeats", type=int, default=2, help="random subsets per size (default 2)")
    parser.add_argument("--runs-dir", default="runs")
    args = parser.parse_args(argv)
    setting = probe_setting(args.train, args.epochs, args.test)
    run = RunStore(args.runs_dir).get_or_train(setting, [0], device="cpu", progress=lambda line: print(line, flush=True))[0]
    train_x = data_lib.load(settings.get(SETTING).dataset).train.x  # the whole 49.5k-image split
    test = data_lib.load(setting.dataset).test
    print(f"probe: {setting.name}, {args.train} training images, {args.epochs} epochs; BatchNorm statistics "
          f"on subsets of the whole {len(train_x):,}-image split; {len(test.y):,} test images; cpu, "
          f"{torch.get_num_threads()} threads")
    final = run.weights[run.epochs[-1]]
    models = {"final": final}
    for sampler in SAMPLED:
        theta = sample(sampler, run, 1, ENSEMBLE_SCALES, torch.Generator().manual_seed(0))[0]
        models[sampler] = unflatten(theta, final)
    table: dict[int, list[dict]] = {}
    for name, state in models.items():
        model = model_at(setting, run, run.epochs[-1])
        model.load_state_dict(state)
        for row in measure(model, train_x, test, args.repeats):
            table.setdefault(row["images"], []).append(row)
        print(f"  measured {name}", flush=True)
    print("\n| BatchNorm images | test points changed (worst model) | largest accuracy change | seconds per sample |")
    print("|---:|---:|---:|---:|")
    for images, rows in table.items():
        worst = max(r["disagreement"] for r in rows)
        mark = " ✓" if worst <= BATCHNORM_TOLERANCE else ""
        print(f"| {images:,} | {worst:.2%}{mark} | {max(r['accuracy_change'] for r in rows):.2%} | "
              f"{sum(r['seconds'] for r in rows) / len(rows):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
