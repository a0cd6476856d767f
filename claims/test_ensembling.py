"""Claims about ensembles of independently initialised runs.

Sources: [Fort] Fort, Hu, Lakshminarayanan, "Deep Ensembles: A Loss Landscape Perspective",
arXiv 1912.02757, Sec. 5; [WB] Paul & Thakur, W&B report "Understanding the Effectivity of
Ensembles in Deep Learning".

N1  Accuracy rises with ensemble size with diminishing returns, then plateaus; Brier and NLL fall.
    [WB] test accuracy (%) against ensemble size: SmallCNN 62.7 -> 66.8 (2) -> 68.1 (4) -> 68.9 (6)
    -> 68.5 (10); MediumCNN 78.2 -> 83.2 (10); ResNet 86.6 -> 89.9 (10).
    Decision, on the final-epoch test probabilities of the S runs of a setting, with the curves
    acc(k), Brier(k), NLL(k) averaged over every k-subset of the runs (harness.ensembles.subset_curves,
    mean of probabilities) and K = S: acc(K) - acc(1) > 0; the accuracy gain of 2-run ensembles
    over their members has a lower 95% bound above 0; gain(1->2) >= gain(K-1->K); the last gain
    is at most 0.25 x the first; Brier(K) < Brier(1) and NLL(K) < NLL(1). The curves are saved
    in the evidence for the report's accuracy/Brier/NLL-vs-size figure beside the [WB] numbers.

N2  An ensemble of independent runs beats weight averaging and subspace ensembles of one run
    ([Fort] Sec. 5: ensembling gives the largest gain). Decision: the mean ensemble of the S runs
    has higher test accuracy and lower Brier score than the best, over the runs, of each run's
    weight average (WA, of its late checkpoints) and of each sampler's subspace ensemble (the mean
    of a run's samples at ensemble scales), and than the best single run: twelve comparisons, all
    must hold. Comparing with the best run's comparator needs no interval: it is a worst case over
    all seeds. The last pair is ours, not the catalog's: without it, an "ensemble" of copies of one
    run passes wherever WA and subspace ensembles are worse than a single run (they are on
    synthetic16-cnn: the negative control found it), and the claim is about a gain from ensembling.
N3  Subspace sampling and ensembling are complementary; the extra gain shrinks as ensembles grow
    ([Fort] Sec. 5). Decision, per sampler: with each run replaced by its subspace ensemble, the
    accuracy curve over ensemble sizes (all k-subsets) is >= the plain ensemble's at every k, and
    its gain at k = S is <= its gain at k = 1.

Bootstrap over seeds (N1): a resample of seeds (with replacement) holds fewer distinct runs than S
(3.4 of 5 on average), and an ensemble of a run with itself is that run, so a resample's
"acc(K) - acc(1)" would be the gain of a smaller ensemble: its bootstrap distribution sits below
the estimate and the bound would be too optimistic. The confidence bound is therefore put on a
statistic that every resample estimates without that bias: the mean over pairs of distinct runs
a, b of acc(ensemble of a and b) - (acc(a) + acc(b)) / 2, a pairwise U-statistic bounded with
harness.stats.pairwise_mean_interval (pairs of two draws of one seed skipped, resamples with at
least 3 distinct seeds). The other criteria compare the point estimates of the curves.

Runs: at least 5 in the smoke tier and 10 in the gpu tier (the tiers' defaults), so that the
curve reaches past its first steps; a test run with fewer (``--seeds``) skips, saying so.

Does not reproduce on digits-mlp (xfail, numbers below): accuracy, Brier and NLL improve, but the
curve of 5 MLPs at 97% accuracy has not flattened (last gain 0.49 x the first).

Negative controls: N1 and N2 on copies of one run under the other runs' names must FAIL (every
ensemble gain is exactly zero); N3 with subspace ensembles drawn far outside the mode
(fixtures.samples.FAR_SCALES) must FAIL.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fixtures.runs import copies_of_one_run, setting_params
from fixtures.samples import ENSEMBLE_SAMPLES, FAR_SCALES, N_FAR_SAMPLES, n_samples
from harness import settings as settings_lib
from harness.ensembles import ensemble_probs, subset_curves
from harness.metrics import brier_score
from harness.stats import (
    CONFIDENCE,
    Criterion,
    Evidence,
    pairwise_mean,
    pairwise_mean_interval,
)
from harness.subspace import ENSEMBLE_SCALES
from harness.training import Run, final_probs, seeds_of
from reports import figspec

# CLAIMS.md N1: the ensemble must beat its members, acc(K) - acc(1) > 0 (and the 2-run gain's
# lower bound above 0).
N1_GAIN_MIN = 0.0
# CLAIMS.md N1: the last step's gain, acc(K) - acc(K-1), at most 0.25 x the first,
# acc(2) - acc(1). [WB] SmallCNN: first gain 4.1 points, 6 -> 10 members -0.4 points.
N1_LAST_OVER_FIRST_GAIN_MAX = 0.25
# Runs a tier needs for N1 (CLAIMS.md; the tiers' default n_seeds).
N1_MIN_RUNS = {"smoke": 5, "slow": 5, "gpu": 10}

SOURCES = {
    "N2": "[Fort] Sec. 5: ensembling independent runs gives the largest gain, beyond WA and subspace ensembles",
    "N3": "[Fort] Sec. 5: subspace sampling adds small gains on top of ensembles",
    "N1": "[WB] acc % vs size: SmallCNN 62.7 -> 66.8 (2) -> 68.1 (4) -> 68.9 (6) -> 68.5 (10); "
          "MediumCNN 78.2 -> 83.2 (10); ResNet 86.6 -> 89.9",
}
# [WB] accuracy (%) against ensemble size, for the report's figure.
WB_ACCURACY = {
    "SmallCNN": {1: 62.7, 2: 66.8, 4: 68.1, 6: 68.9, 10: 68.5},
    "MediumCNN": {1: 78.2, 10: 83.2},
    "ResNet": {1: 86.6, 10: 89.9},
}


def pair_gain_matrix(finals: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """(S, S) accuracy of the 2-run mean ensemble of a and b minus the mean of their accuracies.

    Parameters
    ----------
    finals : torch.Tensor, shape (S, N, C)
    labels : torch.Tensor, shape (N,)
    """
    s = len(finals)
    acc = (finals.argmax(-1) == labels).double().mean(-1)
    gain = np.zeros((s, s))
    for a in range(s):
        for b in range(a + 1, s):
            pair = ensemble_probs(finals[[a, b]])
            gain[a, b] = gain[b, a] = (pair.argmax(-1) == labels).double().mean().item() - (acc[a] + acc[b]).item() / 2
    return gain


def n1_evidence(runs: list[Run], setting: str) -> Evidence:
    finals = final_probs(runs)  # (S, N, C)
    labels = runs[0].eval_labels
    curves = subset_curves(finals, labels)
    acc, brier, nll = curves.accuracy, curves.brier, curves.nll
    first, last = acc[1] - acc[0], acc[-1] - acc[-2]
    pairs = pair_gain_matrix(finals, labels)
    return Evidence(
        claim="N1", setting=setting, source=SOURCES["N1"], seeds=seeds_of(runs),
        criteria=(
            Criterion(f"accuracy gain acc({len(runs)}) - acc(1)", acc[-1] - acc[0], N1_GAIN_MIN, ">"),
            Criterion("accuracy gain of 2-run ensembles over their members", pairwise_mean(pairs), N1_GAIN_MIN,
                      ">", ci=pairwise_mean_interval(pairs, CONFIDENCE), level=CONFIDENCE),
            Criterion(f"first gain minus last gain, (acc(2) - acc(1)) - (acc({len(runs)}) - acc({len(runs) - 1}))",
                      first - last, 0.0, ">="),
            Criterion(f"last gain minus {N1_LAST_OVER_FIRST_GAIN_MAX} x first gain",
                      last - N1_LAST_OVER_FIRST_GAIN_MAX * first, 0.0, "<="),
            Criterion(f"Brier({len(runs)}) - Brier(1)", brier[-1] - brier[0], 0.0, "<"),
            Criterion(f"NLL({len(runs)}) - NLL(1)", nll[-1] - nll[0], 0.0, "<"),
        ),
        details={"curves": curves.to_dict(), "first_gain": first, "last_gain": last,
                 "member_accuracy": acc[0], "wb_accuracy_percent": WB_ACCURACY,
                 figspec.FIGURES_KEY: ensemble_size_figures(curves)},
    )


def ensemble_size_figures(curves) -> list[dict]:
    """Accuracy (beside [WB]'s SmallCNN), Brier and NLL against ensemble size."""
    k = np.arange(1, len(curves.accuracy) + 1)
    wb = WB_ACCURACY["SmallCNN"]
    return [
        figspec.xy("Accuracy against ensemble size", [
            figspec.series("ours", k, curves.accuracy, style="line+points"),
            figspec.series("[WB] SmallCNN, CIFAR-10", list(wb), [v / 100 for v in wb.values()], style="line+points"),
        ], "ensemble size k", "test accuracy", note="mean over all k-subsets of the runs"),
        figspec.xy("Brier score against ensemble size", [figspec.series("ours", k, curves.brier, style="line+points")],
                   "ensemble size k", "Brier score"),
        figspec.xy("NLL against ensemble size", [figspec.series("ours", k, curves.nll, style="line+points")],
                   "ensemble size k", "NLL"),
    ]


def _needs_runs(setting: str, runs: list[Run]) -> None:
    need = N1_MIN_RUNS[settings_lib.get(setting).tier]
    if len(runs) < need:
        pytest.skip(f"N1 on {setting} needs at least {need} runs for a curve over ensemble sizes; got {len(runs)} "
                    f"(--seeds {len(runs)})")



# Measured on seeds 0-4 (540 test digits): acc 96.56 -> 97.09 (2) -> 97.24 (3) -> 97.33 (4) -> 97.59 (5)
# %. Accuracy, Brier and NLL all improve, but the curve has not flattened at 5 members: the last
# step gains 0.26 points (1.4 examples) against 0.53 for the first, a ratio of 0.49.
N1_DOES_NOT_REPRODUCE = {
    "digits-mlp": "no plateau at 5 members: acc 96.56 -> 97.09 (2) -> 97.59 (5) %, last gain 0.26 points = "
                  "0.49 x the first gain of 0.53 (> 0.25), seeds 0-4",
}


@pytest.mark.claim(id="N1", source="[WB]; [Fort] Sec. 5")
@pytest.mark.parametrize("setting", setting_params(xfail=N1_DOES_NOT_REPRODUCE))
def test_n1_accuracy_rises_with_ensemble_size_then_plateaus(setting, trained_runs, record_evidence):
    runs = trained_runs(setting)
    _needs_runs(setting, runs)
    evidence = record_evidence(n1_evidence(runs, setting))
    assert evidence.passed, evidence.explain()


@pytest.mark.parametrize("setting", setting_params(("smoke",)))
def test_negative_control_copies_of_one_run_fail(setting, trained_runs):
    runs = trained_runs(setting)
    _needs_runs(setting, runs)
    evidence = n1_evidence(copies_of_one_run(runs), setting)
    assert not evidence.passed, f"N1 passed on copies of one run:\n{evidence.explain()}"


# ----------------------------------------------------------------------------------------------
# N2 and N3


def _accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return (probs.argmax(-1) == labels).double().mean().item()


def n2_evidence(runs: list[Run], setting: str, wa_probs: torch.Tensor,
                sample_probs: dict[str, list[torch.Tensor]]) -> Evidence:
    """N2 decision. ``wa_probs`` (S, N, C): each run's weight average; ``sample_probs[sampler][i]``
    (K, N, C): samples around ``runs[i]`` at ensemble scales."""
    labels = runs[0].eval_labels
    ensemble = ensemble_probs(final_probs(runs))
    acc_k, brier_k = _accuracy(ensemble, labels), brier_score(ensemble, labels)
    comparators = {"single run": list(final_probs(runs)), "weight average": list(wa_probs)}
    comparators |= {f"{sampler} subspace ensemble": [p.double().mean(0) for p in per_run]
                    for sampler, per_run in sample_probs.items()}
    criteria, per_run = [], {}
    for name, members in comparators.items():
        acc = [_accuracy(m, labels) for m in members]
        brier = [brier_score(m, labels) for m in members]
        per_run[name] = {"accuracy": acc, "brier": brier}
        best = "the best single run" if name == "single run" else f"the best run's {name}"
        criteria += [
            Criterion(f"accuracy: {len(runs)}-run ensemble minus {best}", acc_k - max(acc), 0.0, ">"),
            Criterion(f"Brier: {len(runs)}-run ensemble minus {best}", brier_k - min(brier), 0.0, "<"),
        ]
    points = [figspec.series(name, v["brier"], v["accuracy"], group=name) for name, v in per_run.items()]
    points.append(figspec.series(f"{len(runs)}-run ensemble", [brier_k], [acc_k]))
    return Evidence(
        claim="N2", setting=setting, source=SOURCES["N2"], seeds=seeds_of(runs), criteria=tuple(criteria),
        details={"ensemble": {"accuracy": acc_k, "brier": brier_k}, "per_run": per_run,
                 figspec.FIGURES_KEY: [figspec.xy("Ensemble vs weight averaging and subspace ensembles", points,
                                                  "Brier score (lower is better)", "test accuracy",
                                                  note="one point per run and method; the ensemble of all runs")]},
    )


def n3_evidence(runs: list[Run], setting: str, sample_probs: dict[str, list[torch.Tensor]]) -> Evidence:
    """N3 decision. ``sample_probs[sampler][i]`` (K, N, C): samples around ``runs[i]``."""
    labels = runs[0].eval_labels
    plain = np.array(subset_curves(final_probs(runs), labels).accuracy)
    k = np.arange(1, len(runs) + 1)
    criteria, gains = [], {}
    series = [figspec.series("plain ensemble", k, plain, style="line+points")]
    for sampler, per_run in sample_probs.items():
        members = torch.stack([p.double().mean(0) for p in per_run])  # each run -> its subspace ensemble
        curve = np.array(subset_curves(members, labels).accuracy)
        gain = curve - plain
        gains[sampler] = gain.tolist()
        series.append(figspec.series(f"ensemble of {sampler} subspace ensembles", k, curve, style="line+points"))
        criteria += [
            Criterion(f"{sampler}: smallest accuracy gain over the plain ensemble, k = 1..{len(runs)}",
                      float(gain.min()), 0.0, ">="),
            Criterion(f"{sampler}: gain at k = {len(runs)} minus gain at k = 1", float(gain[-1] - gain[0]), 0.0, "<="),
        ]
    return Evidence(
        claim="N3", setting=setting, source=SOURCES["N3"], seeds=seeds_of(runs), criteria=tuple(criteria),
        details={"plain_accuracy": plain.tolist(), "gain_over_plain": gains,
                 figspec.FIGURES_KEY: [figspec.xy("Ensembles of subspace ensembles against ensemble size", series,
                                                  "ensemble size k", "test accuracy",
                                                  note="mean over all k-subsets of the runs")]},
    )


# Measured on seeds 0-4, 8 samples per run and sampler at ensemble scales.
N2_DOES_NOT_REPRODUCE = {
    "digits-mlp": "Brier: the 5-run ensemble's is 0.0016 above the best single run's, 0.0003-0.0005 above the "
                  "best weight average's and the best dropout, diag and pca subspace ensembles'; its accuracy beats "
                  "every comparator by 0.19-0.74 points",
}
# Our subspace ensembles cost accuracy (ensemble scales allow a mean drop of up to 2 points; the
# Gaussians centre on the late checkpoints, whose weight average is ~1 point below the final run on
# synthetic16-cnn), and averaging 8 of them does not win it back.
N3_DOES_NOT_REPRODUCE = {
    "digits-mlp": "ensembles of subspace ensembles fall below the plain ensemble: smallest gain over k = 1..5 "
                  "random -0.19, dropout -0.37, diag -0.19, pca -0.37 points",
    "synthetic16-cnn": "ensembles of subspace ensembles fall below the plain ensemble: smallest gain over k = 1..5 "
                       "random -0.3, dropout -0.14, diag -0.7, pca -0.64 points",
}


@pytest.mark.claim(id="N2", source="[Fort] Sec. 5")
@pytest.mark.parametrize("setting", setting_params(xfail=N2_DOES_NOT_REPRODUCE))
def test_n2_ensemble_beats_weight_averaging_and_subspace_ensembles(setting, trained_runs, sample_predictions,
                                                                   weight_average_predictions, record_evidence):
    runs = trained_runs(setting)
    samples = sample_predictions(setting, runs, ENSEMBLE_SCALES, n_samples(setting, ENSEMBLE_SAMPLES))
    evidence = record_evidence(n2_evidence(runs, setting, weight_average_predictions(setting, runs), samples))
    assert evidence.passed, evidence.explain()


@pytest.mark.claim(id="N3", source="[Fort] Sec. 5")
@pytest.mark.parametrize("setting", setting_params(xfail=N3_DOES_NOT_REPRODUCE))
def test_n3_subspace_sampling_complements_ensembling(setting, trained_runs, sample_predictions, record_evidence):
    runs = trained_runs(setting)
    samples = sample_predictions(setting, runs, ENSEMBLE_SCALES, n_samples(setting, ENSEMBLE_SAMPLES))
    evidence = record_evidence(n3_evidence(runs, setting, samples))
    assert evidence.passed, evidence.explain()


@pytest.mark.parametrize("setting", setting_params(("smoke",)))
def test_negative_control_n2_copies_of_one_run_fail(setting, trained_runs, sample_predictions,
                                                    weight_average_predictions):
    runs = trained_runs(setting)
    copies = copies_of_one_run(runs)
    samples = sample_predictions(setting, runs, ENSEMBLE_SCALES, n_samples(setting, ENSEMBLE_SAMPLES))
    wa = weight_average_predictions(setting, runs)
    # Every copy is run 0, with run 0's weight average and samples.
    evidence = n2_evidence(copies, setting, wa[[0] * len(runs)], {k: [v[0]] * len(runs) for k, v in samples.items()})
    assert not evidence.passed, f"N2 passed on copies of one run:\n{evidence.explain()}"


@pytest.mark.parametrize("setting", setting_params(("smoke",)))
def test_negative_control_n3_far_samples_fail(setting, trained_runs, sample_predictions):
    runs = trained_runs(setting)
    evidence = n3_evidence(runs, setting, sample_predictions(setting, runs, FAR_SCALES, N_FAR_SAMPLES))
    assert not any(c.passed for c in evidence.criteria[::2]), f"N3 passed far outside the mode:\n{evidence.explain()}"
