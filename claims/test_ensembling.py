"""Claims about ensembles of independently initialised runs: N1, N2 and N3.

Their statements, sources, the sources' numbers, the thresholds and the decisions' text are in
harness.catalog (CATALOG["N1"] and so on); N1's thresholds are imported from there (N2 and N3
compare with 0).

Ensembles of K runs. Each tier fixes its ensemble size K (ENSEMBLE_SIZE: the catalog's 5 in the smoke
tier, 10 in the gpu tier); more seeds give more K-subsets, never bigger ensembles, so that a statistic means
the same thing at every look of the sequential decision. A statistic of K-run ensembles is a mean
over K-subsets of the seeds (every subset, or a fixed random sample of harness.stats.MAX_SUBSETS),
a U-statistic of order K, bounded by the delete-one-seed jackknife with Student's t
(harness.stats.subset_mean_interval): a bootstrap resample repeats seeds, and an ensemble of a run
with itself is a smaller ensemble. The jackknife needs K + 1 seeds, so these claims take their
first look on one seed more than the setting's n_seeds.

How the decisions are built.
N1  On the final-epoch test probabilities (mean-of-probabilities ensembles), acc(k) the mean
    accuracy of k-run ensembles. "Diminishing returns, then a plateau" is read at the two ends of
    the curve: the first gain acc(2) - acc(1) against the last, acc(K) - acc(K-1), the plateau as
    the last gain minus a multiple of the first at most 0 (a difference, which stays defined when
    the first gain is 0, where a ratio would not). Each criterion is a kernel of one K-subset (its
    own curve up to K) averaged over K-subsets, with its interval. The curves up to
    FIGURE_MAX_RUNS runs are saved for the report's accuracy/Brier/NLL-vs-size figure beside the
    [WB] numbers (WB_ACCURACY).
N2  The K-run ensemble's accuracy and Brier score against the mean of its members' comparators,
    for each comparator: the run itself, its weight average (WA, of its subspace window), and each
    sampler's subspace ensemble (the mean of a run's samples at ensemble scales): twelve criteria.
    The first comparator is ours, not the catalog's: without it, an "ensemble" of copies of one run
    reproduces wherever WA and subspace ensembles are worse than a single run (they are on
    synthetic16-cnn: the negative control found it), and the claim is about a gain from ensembling.
N3  Per sampler, with each run replaced by its subspace ensemble: the gain over the plain run at
    k = 1 (mean over seeds), the gain of K-run ensembles of subspace ensembles over plain K-run
    ensembles, and their difference (the extra gain must not grow with k).

Changes from the catalog and the first version (README, Deviations): K = S became K fixed by
tier; N2 compared with the best run's comparator and N3 required its gain "at every k", worst
cases that grow stricter, not surer, as seeds are added: both became means with intervals, and N3
checks the two ends k = 1 and k = K of its curve.

Negative controls: N1 and N2 on copies of one run under the other runs' names must be refuted
(every ensemble gain is exactly zero); N3 with subspace ensembles drawn far outside the mode
(fixtures.samples.FAR_SCALES) must be refuted.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from fixtures.runs import copies_of_one_run, setting_params
from fixtures.samples import FAR_SCALES, N_FAR_SAMPLES, n_samples
from harness.catalog import CATALOG, N1_GAIN_MIN, N1_LAST_OVER_FIRST_GAIN_MAX
from harness.ensembles import ensemble_size, subset_curves, subset_metrics
from harness.evidence import REFUTED, Evidence, mean_criterion, subset_criterion
from harness.stats import CONFIDENCE, seed_subsets
from harness.subspace import ENSEMBLE_SAMPLES, ENSEMBLE_SCALES
from harness.training import Run, final_probs, seeds_of
from harness import figspec

# The report's accuracy-vs-size curve reaches [WB]'s largest ensemble.
FIGURE_MAX_RUNS = 10
# Ranges of the criteria's statistics, to which their intervals are clipped (not thresholds): a
# difference of two accuracies lies in [-1, 1]; the Brier score of one example lies in [0, 2].
ACCURACY_DIFFERENCE = (-1.0, 1.0)
BRIER_DIFFERENCE = (-2.0, 2.0)

# [WB] accuracy (%) against ensemble size, for the report's figure.
WB_ACCURACY = {
    "SmallCNN": {1: 62.7, 2: 66.8, 4: 68.1, 6: 68.9, 10: 68.5},
    "MediumCNN": {1: 78.2, 10: 83.2},
    "ResNet": {1: 86.6, 10: 89.9},
}


def _mean_over_parts(probs: torch.Tensor, labels: torch.Tensor, subsets: np.ndarray, size: int) -> dict:
    """Per K-subset, the mean over its ``size``-sub-subsets of their ensembles' metrics: {metric: (M,)}.

    Sub-subsets shared by many K-subsets (every single run, every pair) are evaluated once.
    """
    parts = np.stack([subsets[:, list(cols)] for cols in itertools.combinations(range(subsets.shape[1]), size)])
    unique, inverse = np.unique(parts.reshape(-1, size), axis=0, return_inverse=True)
    metrics = subset_metrics(probs, labels, unique)
    index = torch.from_numpy(inverse.reshape(parts.shape[:2]))  # (parts per subset, M)
    return {key: values[index].mean(0).numpy() for key, values in metrics.items()}


def subset_curve_ends(probs: torch.Tensor, labels: torch.Tensor, subsets: np.ndarray) -> dict[int, dict]:
    """For each K-subset (row of ``subsets``), its own curve at k = 1, 2, K - 1, K: {k: {metric: (M,)}}."""
    k = subsets.shape[1]
    return {size: _mean_over_parts(probs, labels, subsets, size) for size in sorted({1, 2, k - 1, k})}


def n1_evidence(runs: list[Run], setting: str, level: float = CONFIDENCE) -> Evidence:
    """N1 on the runs' final predictions, with ensembles of the tier's K runs."""
    k = ensemble_size(setting)
    finals = final_probs(runs)  # (S, N, C)
    labels = runs[0].eval_labels
    subsets = seed_subsets(len(runs), k)
    ends = subset_curve_ends(finals, labels, subsets)
    acc = {size: ends[size]["accuracy"] for size in ends}
    first, last = acc[2] - acc[1], acc[k] - acc[k - 1]

    def criterion(name, values, threshold, direction, limits=ACCURACY_DIFFERENCE):
        return subset_criterion(name, values, subsets, len(runs), threshold, direction, level=level, limits=limits)

    curves = subset_curves(finals[:FIGURE_MAX_RUNS], labels)
    return Evidence(
        claim="N1", setting=setting, source=CATALOG["N1"].citation, seeds=seeds_of(runs),
        criteria=(
            criterion(f"accuracy gain acc({k}) - acc(1)", acc[k] - acc[1], N1_GAIN_MIN, ">"),
            criterion(f"first gain minus last gain, (acc(2) - acc(1)) - (acc({k}) - acc({k - 1}))", first - last,
                      0.0, ">=", limits=(-2.0, 2.0)),
            criterion(f"last gain minus {N1_LAST_OVER_FIRST_GAIN_MAX} x first gain",
                      last - N1_LAST_OVER_FIRST_GAIN_MAX * first, 0.0, "<=", limits=(-2.0, 2.0)),
            criterion(f"Brier({k}) - Brier(1)", ends[k]["brier"] - ends[1]["brier"], 0.0, "<", BRIER_DIFFERENCE),
            criterion(f"NLL({k}) - NLL(1)", ends[k]["nll"] - ends[1]["nll"], 0.0, "<", (-np.inf, np.inf)),
        ),
        details={"ensemble_size": k, "curves": curves.to_dict(), "first_gain": float(first.mean()),
                 "last_gain": float(last.mean()), "member_accuracy": float(acc[1].mean()),
                 "wb_accuracy_percent": WB_ACCURACY, figspec.FIGURES_KEY: ensemble_size_figures(curves)},
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


def control_runs(setting: str, trained_runs) -> list[Run]:
    """The first look's runs (K + 1 at least), for a negative control."""
    return trained_runs(setting, at_least=ensemble_size(setting) + 1)


@pytest.mark.claim(id="N1")
@pytest.mark.parametrize("setting", setting_params())
def test_n1_accuracy_rises_with_ensemble_size_then_plateaus(setting, decide_claim):
    decide_claim(setting, lambda runs, level: n1_evidence(runs, setting, level), min_seeds=ensemble_size(setting) + 1)


@pytest.mark.parametrize("setting", setting_params(("smoke",)))
def test_negative_control_n1_copies_of_one_run_are_refuted(setting, trained_runs):
    runs = control_runs(setting, trained_runs)
    evidence = n1_evidence(copies_of_one_run(runs), setting)
    assert evidence.outcome == REFUTED, f"N1 is not refuted on copies of one run:\n{evidence.explain()}"


# ----------------------------------------------------------------------------------------------
# N2 and N3


def _accuracy(probs: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Accuracy of each of (..., N, C) probabilities -> (...)."""
    return (probs.argmax(-1) == labels).double().mean(-1).numpy()


def _subspace_ensembles(sample_probs: dict[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Each run replaced by the mean of its samples: {sampler: (S, N, C)}."""
    return {sampler: torch.stack([p.double().mean(0) for p in per_run]) for sampler, per_run in sample_probs.items()}


def n2_evidence(runs: list[Run], setting: str, wa_probs: torch.Tensor, sample_probs: dict[str, list[torch.Tensor]],
                level: float = CONFIDENCE) -> Evidence:
    """N2 decision. ``wa_probs`` (S, N, C): each run's weight average; ``sample_probs[sampler][i]``
    (n, N, C): samples around ``runs[i]`` at ensemble scales."""
    k = ensemble_size(setting)
    labels = runs[0].eval_labels
    finals = final_probs(runs)
    subsets = seed_subsets(len(runs), k)
    ensemble = subset_metrics(finals, labels, subsets)
    comparators = {"single run": finals.double(), "weight average": wa_probs.double()}
    comparators |= {f"{sampler} subspace ensemble": probs for sampler, probs in _subspace_ensembles(sample_probs).items()}
    criteria, per_run = [], {}
    for name, members in comparators.items():
        single = subset_metrics(members, labels, np.arange(len(runs))[:, None])
        acc, brier = single["accuracy"].numpy(), single["brier"].numpy()
        per_run[name] = {"accuracy": acc.tolist(), "brier": brier.tolist()}
        criteria += [
            subset_criterion(f"accuracy: {k}-run ensemble minus its runs' {name}",
                             ensemble["accuracy"].numpy() - acc[subsets].mean(1), subsets, len(runs), 0.0, ">",
                             level=level, limits=ACCURACY_DIFFERENCE),
            subset_criterion(f"Brier: {k}-run ensemble minus its runs' {name}",
                             ensemble["brier"].numpy() - brier[subsets].mean(1), subsets, len(runs), 0.0, "<",
                             level=level, limits=BRIER_DIFFERENCE),
        ]
    acc_k, brier_k = float(ensemble["accuracy"].mean()), float(ensemble["brier"].mean())
    points = [figspec.series(name, v["brier"], v["accuracy"], group=name) for name, v in per_run.items()]
    points.append(figspec.series(f"{k}-run ensembles (mean)", [brier_k], [acc_k]))
    return Evidence(
        claim="N2", setting=setting, source=CATALOG["N2"].citation, seeds=seeds_of(runs), criteria=tuple(criteria),
        details={"ensemble_size": k, "ensemble": {"accuracy": acc_k, "brier": brier_k}, "per_run": per_run,
                 figspec.FIGURES_KEY: [figspec.xy("Ensemble vs weight averaging and subspace ensembles", points,
                                                  "Brier score (lower is better)", "test accuracy",
                                                  note=f"one point per run and method; the mean of {k}-run ensembles")]},
    )


def n3_evidence(runs: list[Run], setting: str, sample_probs: dict[str, list[torch.Tensor]],
                level: float = CONFIDENCE) -> Evidence:
    """N3 decision. ``sample_probs[sampler][i]`` (n, N, C): samples around ``runs[i]``.

    Criteria come in threes per sampler: gain at k = 1, gain at k = K, and their difference.
    """
    k = ensemble_size(setting)
    labels = runs[0].eval_labels
    finals = final_probs(runs)
    subsets = seed_subsets(len(runs), k)
    plain_single, plain_k = _accuracy(finals, labels), subset_metrics(finals, labels, subsets)["accuracy"].numpy()
    shown = min(len(runs), FIGURE_MAX_RUNS)
    sizes = np.arange(1, shown + 1)
    series = [figspec.series("plain ensemble", sizes, subset_curves(finals[:shown], labels).accuracy,
                             style="line+points")]
    criteria, gains = [], {}
    for sampler, members in _subspace_ensembles(sample_probs).items():
        gain_single = _accuracy(members, labels) - plain_single  # (S,)
        gain_k = subset_metrics(members, labels, subsets)["accuracy"].numpy() - plain_k  # (M,)
        gains[sampler] = {"k=1": float(gain_single.mean()), f"k={k}": float(gain_k.mean())}
        series.append(figspec.series(f"ensemble of {sampler} subspace ensembles", sizes,
                                     subset_curves(members[:shown], labels).accuracy, style="line+points"))
        criteria += [
            mean_criterion(f"{sampler}: accuracy gain over the plain run, k = 1", gain_single, 0.0, ">=",
                           level=level, limits=ACCURACY_DIFFERENCE),
            subset_criterion(f"{sampler}: accuracy gain over the plain ensemble, k = {k}", gain_k, subsets, len(runs),
                             0.0, ">=", level=level, limits=ACCURACY_DIFFERENCE),
            subset_criterion(f"{sampler}: gain at k = {k} minus gain at k = 1",
                             gain_k - gain_single[subsets].mean(1), subsets, len(runs), 0.0, "<=", level=level,
                             limits=(-2.0, 2.0)),
        ]
    return Evidence(
        claim="N3", setting=setting, source=CATALOG["N3"].citation, seeds=seeds_of(runs), criteria=tuple(criteria),
        details={"ensemble_size": k, "gain_over_plain": gains,
                 figspec.FIGURES_KEY: [figspec.xy("Ensembles of subspace ensembles against ensemble size", series,
                                                  "ensemble size k", "test accuracy",
                                                  note="mean over all k-subsets of the runs")]},
    )


@pytest.mark.claim(id="N2")
@pytest.mark.parametrize("setting", setting_params())
def test_n2_ensemble_beats_weight_averaging_and_subspace_ensembles(setting, decide_claim, sample_predictions,
                                                                   weight_average_predictions):
    def evidence_of(runs: list[Run], level: float) -> Evidence:
        samples = sample_predictions(setting, runs, ENSEMBLE_SCALES, n_samples(setting, ENSEMBLE_SAMPLES))
        return n2_evidence(runs, setting, weight_average_predictions(setting, runs), samples, level)

    decide_claim(setting, evidence_of, min_seeds=ensemble_size(setting) + 1)


@pytest.mark.claim(id="N3")
@pytest.mark.parametrize("setting", setting_params())
def test_n3_subspace_sampling_complements_ensembling(setting, decide_claim, sample_predictions):
    def evidence_of(runs: list[Run], level: float) -> Evidence:
        samples = sample_predictions(setting, runs, ENSEMBLE_SCALES, n_samples(setting, ENSEMBLE_SAMPLES))
        return n3_evidence(runs, setting, samples, level)

    decide_claim(setting, evidence_of, min_seeds=ensemble_size(setting) + 1)


@pytest.mark.parametrize("setting", setting_params(("smoke",)))
def test_negative_control_n2_copies_of_one_run_are_refuted(setting, trained_runs, sample_predictions,
                                                           weight_average_predictions):
    runs = control_runs(setting, trained_runs)
    copies = copies_of_one_run(runs)
    samples = sample_predictions(setting, runs, ENSEMBLE_SCALES, n_samples(setting, ENSEMBLE_SAMPLES))
    wa = weight_average_predictions(setting, runs)
    # Every copy is run 0, with run 0's weight average and samples.
    evidence = n2_evidence(copies, setting, wa[[0] * len(runs)], {k: [v[0]] * len(runs) for k, v in samples.items()})
    assert evidence.outcome == REFUTED, f"N2 is not refuted on copies of one run:\n{evidence.explain()}"


@pytest.mark.parametrize("setting", setting_params(("smoke",)))
def test_negative_control_n3_far_samples_are_refuted(setting, trained_runs, sample_predictions):
    runs = control_runs(setting, trained_runs)
    evidence = n3_evidence(runs, setting, sample_predictions(setting, runs, FAR_SCALES, N_FAR_SAMPLES))
    assert evidence.outcome == REFUTED, f"N3 is not refuted far outside the mode:\n{evidence.explain()}"
