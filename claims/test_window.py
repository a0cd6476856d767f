"""The precondition of the subspace claims: the subspace window is a flat, converged tail of the run (W1).

W1's statement, source (the official code's window), the source's numbers, its threshold and the
decision's text are in harness.catalog (CATALOG["W1"]); the threshold is imported from there.

Why it is checked: S1, S2, N2 and N3 read the window (harness.settings.Window,
harness.subspace.window_snapshots); a window on a run that still improves centres the Gaussians
behind the final run and weakens every comparator built on them, so a finding there would be
about the setting, not the claim.

How the decision is built: on test accuracy, with the noise of an accuracy on this test set
(W1_NOISE_MULTIPLE x harness.stats.accuracy_standard_error at the runs' mean final accuracy) as the
tolerance. The drift, last minus first window snapshot's accuracy, is an equivalence test (upper
bound <= +noise and lower bound >= -noise); the weight average of the window minus the final run
has only a lower bound (>= -noise): a weight average above the final run does not count against
the window. The mean accuracy of every snapshot and of the weight average are saved for the figure.

Negative control: the same decision on a "window" of the first epochs (epoch ends 1..w, w the
window's epochs), where the run is still learning fast, must be refuted.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fixtures.options import get_options
from fixtures.runs import setting_params
from harness import data as data_lib
from harness import settings as settings_lib
from harness.catalog import CATALOG, W1_NOISE_MULTIPLE
from harness.evidence import REFUTED, Evidence, mean_criterion
from harness.stats import CONFIDENCE, accuracy_standard_error
from harness.subspace import flatten, predict_states, weight_average
from harness.training import Run, seeds_of
from harness import figspec

# Accuracy differences lie in [-1, 1].
_DIFFERENCE = (-1.0, 1.0)


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Accuracy of each leading entry of ``probs`` (..., N, C) against ``labels`` (N,)."""
    return (probs.argmax(-1) == labels).double().mean(-1).numpy()


def w1_evidence(snapshot_acc: np.ndarray, wa_acc: np.ndarray, n_test: int, setting: str, seeds: tuple[int, ...],
                level: float = CONFIDENCE) -> Evidence:
    """W1 on the test accuracies of each run's window snapshots.

    Parameters
    ----------
    snapshot_acc : array, shape (S, K)
        Accuracy of each run's K window snapshots, in training order; the last is the final run.
    wa_acc : array, shape (S,)
        Accuracy of each run's weight average of its window.
    n_test : int
        Test examples the accuracies were measured on.
    """
    snapshot_acc, wa_acc = np.asarray(snapshot_acc, dtype=np.float64), np.asarray(wa_acc, dtype=np.float64)
    final = snapshot_acc[:, -1]
    noise = W1_NOISE_MULTIPLE * accuracy_standard_error(float(final.mean()), n_test)
    drift = final - snapshot_acc[:, 0]
    wa_gap = wa_acc - final
    curve = snapshot_acc.mean(0)
    return Evidence(
        claim="W1", setting=setting, source=CATALOG["W1"].citation, seeds=seeds,
        criteria=(
            mean_criterion("last minus first window snapshot's accuracy (no rise)", drift, noise, "<=",
                           level=level, limits=_DIFFERENCE),
            mean_criterion("last minus first window snapshot's accuracy (no fall)", drift, -noise, ">=",
                           level=level, limits=_DIFFERENCE),
            mean_criterion("weight average minus final run's accuracy", wa_gap, -noise, ">=", level=level,
                           limits=_DIFFERENCE),
        ),
        details={"noise": noise, "n_test": n_test, "snapshot_accuracy_mean": curve.tolist(),
                 "weight_average_accuracy_mean": float(wa_acc.mean()), "drift": drift.tolist(),
                 "weight_average_gap": wa_gap.tolist(),
                 figspec.FIGURES_KEY: [_window_figure(snapshot_acc, wa_acc, noise)]},
    )


def _window_figure(snapshot_acc: np.ndarray, wa_acc: np.ndarray, noise: float) -> dict:
    k = np.arange(1, snapshot_acc.shape[1] + 1)
    series = [figspec.series("runs (each snapshot)", np.broadcast_to(k, snapshot_acc.shape), snapshot_acc),
              figspec.series("mean over runs", k, snapshot_acc.mean(0), style="line+points"),
              figspec.series("weight average (mean)", [k[-1]], [wa_acc.mean()])]
    return figspec.xy("Test accuracy across the subspace window", series, "window snapshot", "test accuracy",
                      note=f"flat: last - first and weight average - final within the noise +-{noise:.4f}")


def window_evidence(setting: str, runs: list[Run], level: float, window_predictions,
                    weight_average_predictions) -> Evidence:
    labels = runs[0].eval_labels
    snapshot_acc = np.stack([accuracy(p, labels) for p in window_predictions(setting, runs)])
    wa_acc = accuracy(weight_average_predictions(setting, runs), labels)
    return w1_evidence(snapshot_acc, wa_acc, len(labels), setting, seeds_of(runs), level)


@pytest.mark.claim(id="W1")
@pytest.mark.parametrize("setting", setting_params())
def test_w1_subspace_window_is_flat(setting, decide_claim, window_predictions, weight_average_predictions):
    decide_claim(setting, lambda runs, level: window_evidence(setting, runs, level, window_predictions,
                                                              weight_average_predictions))


@pytest.mark.parametrize("setting", setting_params(("smoke",)))
def test_negative_control_w1_first_epochs_are_refuted(setting, pytestconfig, trained_runs):
    spec = settings_lib.get(setting)
    runs = trained_runs(setting)
    epochs = range(1, spec.recipe.window.epochs + 1)
    data = data_lib.load(spec.dataset, get_options(pytestconfig).data_root)
    labels = runs[0].eval_labels
    snapshot_acc = np.stack([accuracy(r.eval_probs[list(epochs)], labels) for r in runs])
    wa = [weight_average(torch.stack([flatten(r.weights[e]) for e in epochs])) for r in runs]
    wa_acc = np.array([accuracy(predict_states(spec, r, w[None], data.test.x, train_x=data.train.x)[0], labels)
                       for r, w in zip(runs, wa, strict=True)])
    evidence = w1_evidence(snapshot_acc, wa_acc, len(labels), setting, seeds_of(runs))
    assert evidence.outcome == REFUTED, f"W1 not refuted on the first epochs:\n{evidence.explain()}"
