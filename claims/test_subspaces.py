"""Claims about subspaces around one solution: S1 and S2.

Their statements, sources, the sources' numbers, the thresholds (S2's accuracy band included) and
the decisions' text are in harness.catalog (CATALOG["S1"], CATALOG["S2"]); the thresholds are
imported from there.

The samplers are the official code's (harness/subspace.py): random direction, dropout on the flat
weights, diagonal Gaussian and rank-5 PCA Gaussian of the run's subspace window
(harness.settings.Window; W1 in claims/test_window.py checks that it is flat), and weight
averaging, recorded beside them.

How the decisions are built.
S1  Per sampler at ensemble scales (harness.subspace.ENSEMBLE_SCALES), one Criterion each in one
    Evidence: a sample stays home when its disagreement on the test split with its own centre's
    final predictions is strictly below that with each of the n_seeds - 1 rival runs that follow
    it (harness.sequential.rivals: a fixed number, so that adding seeds does not make the claim
    stricter; ties count against the claim). The per-run fractions are averaged over seeds, and
    the lower bound is the wider of the seed bootstrap's and the exact binomial one of the pooled
    samples (harness.evidence.fraction_criterion: 5 seeds whose samples all stay home do not prove
    a fraction of 1). The joint t-SNE of the trajectories and the samples is saved for the figure.
S2  Per sampler: among samples whose test accuracy lies within the band around the independent
    runs' mean accuracy, the mean normalised diversity against the final predictions of the run
    they were drawn around, divided by the independent runs' mean normalised diversity over pairs,
    bounded above by a bootstrap over seeds (at the sequential decision's level). "Equal accuracy"
    needs samples near the reference: the plane draws (PLANE_SCALES, from the reference down to
    chance, as the figure) put few there, so each run also gets draws at BAND_SCALES, which spread
    over the band; both count when they fall in it. The diversity-accuracy points of every sampler
    and of the independent runs, and the two model curves of the official code, are saved for the
    figure.

Samples per run and sampler: harness.subspace.ENSEMBLE_SAMPLES / PLANE_SAMPLES (8 in the smoke
tier, 16 in the slow tier, the official 30 / 50 in the gpu tier). Sample predictions are cached in
the run store.

Negative controls: S1 at scales far outside the mode (FAR_SCALES), and S1 with every run's samples
attributed to another run (samples drawn around another run's solution); S2 with a doctored
"sampler" whose samples of a run are the other independent runs' final predictions. Each must FAIL.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fixtures.figures import function_space_figure, stored_tsne
from fixtures.runs import setting_params
from fixtures.samples import FAR_SCALES, N_FAR_SAMPLES, n_samples
from harness.catalog import CATALOG, S1_OWN_MODE_FRACTION_MIN, S2_ACCURACY_BAND, S2_DIVERSITY_RATIO_MAX
from harness import settings as settings_lib
from harness.diversity import diversity_lower_model, diversity_upper_model
from harness.evidence import REFUTED, Evidence, bootstrap_criterion, fraction_criterion
from harness.sequential import rivals
from harness.stats import CONFIDENCE, pairwise_mean, resampled_pairwise_mean
from harness.subspace import ENSEMBLE_SAMPLES, ENSEMBLE_SCALES, PLANE_SAMPLES, PLANE_SCALES, Scales
from harness.store import RunStore
from harness.training import Run, final_probs, seeds_of
from harness import figspec

# Draws that spread over the band: for each sampler the largest value of the grids random
# {0.2, 0.3, 0.5, 0.7, 1}, dropout {0.02, 0.05, 0.1, 0.2}, diag and pca {1, 3, 10, 30, 100} (U(0,1)
# spread, as the plane) whose mean validation-accuracy drop stays within half S2_ACCURACY_BAND (2.5 points)
# on both smoke settings (seed 0, 20 samples, validation split; measured before any S2 run, and
# again on the 16-epoch synthetic16-cnn runs and their subspace window, which chose the same values):
#   random 0.2: digits-mlp 0.0, synthetic16-cnn 1.1 (0.3: 0.4, 2.7)
#   dropout 0.05: 0.2, 1.4 (0.1: 0.9, 3.6)
#   diag 30: -0.1, 0.1 (100: 0.4, 11.3)
#   pca 3: 0.1, -0.1 (10: 0.2, 4.4)
BAND_SCALES = Scales(random=0.2, dropout=0.05, diag=30.0, pca=3.0, gaussian_spread=True)


def _labels(probs: torch.Tensor) -> torch.Tensor:
    return probs.argmax(-1)


def s1_evidence(runs: list[Run], setting: str, sample_probs: dict[str, list[torch.Tensor]],
                level: float = CONFIDENCE) -> Evidence:
    """S1 decision. ``sample_probs[sampler][i]`` (K, N, C) are the samples drawn around ``runs[i]``."""
    finals = _labels(final_probs(runs))  # (S, N)
    n_rivals = settings_lib.get(setting).n_seeds - 1
    criteria, fractions = [], {}
    for sampler, per_run in sample_probs.items():
        own, drawn = [], []
        for i, probs in enumerate(per_run):
            d = (_labels(probs)[:, None, :] != finals[None]).double().mean(-1)  # (K, S)
            nearest_rival = d[:, rivals(i, len(runs), n_rivals)].amin(1)
            own.append(int((d[:, i] < nearest_rival).sum()))  # ties count against the claim
            drawn.append(len(probs))
        fractions[sampler] = (np.array(own) / np.array(drawn)).tolist()
        criteria.append(fraction_criterion(f"{sampler}: fraction of samples closest to their own solution", own,
                                           drawn, S1_OWN_MODE_FRACTION_MIN, ">=", level=level))
    return Evidence(claim="S1", setting=setting, source=CATALOG["S1"].citation, seeds=seeds_of(runs),
                    criteria=tuple(criteria), details={"own_mode_fraction_per_run": fractions})


def weight_average_closest_to_own(runs: list[Run], wa_probs: torch.Tensor) -> list[bool]:
    """Per run: is its weight average (``wa_probs[i]``, (N, C)) strictly closer to its own final
    predictions than to every other run's?"""
    finals = _labels(final_probs(runs))
    out = []
    for i, wa in enumerate(wa_probs):
        d = (_labels(wa)[None] != finals).double().mean(-1)
        out.append(bool(d[i] < torch.cat([d[:i], d[i + 1:]]).min()))
    return out


def _accuracy(probs: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    return (_labels(probs) == labels).double().mean(-1).numpy()


def independent_normalized_diversity(runs: list[Run]) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy (S,), normalised diversity (S, S)) of the runs' final predictions.

    ``nd[a, b] = d(a, b) / (1 - acc(a))``, the official code's, normalised by the first run's
    error; I2 and S2 average both directions of a pair.
    """
    probs = final_probs(runs)
    finals = _labels(probs)
    cross = (finals[:, None] != finals[None]).double().mean(-1).numpy()
    acc = _accuracy(probs, runs[0].eval_labels)
    return acc, cross / (1 - acc)[:, None]


def s2_evidence(runs: list[Run], setting: str, sample_probs: dict[str, list[torch.Tensor]],
                plane_probs: dict[str, list[torch.Tensor]] | None = None, level: float = CONFIDENCE) -> Evidence:
    """S2 decision on ``sample_probs[sampler][i]`` (K, N, C), the samples drawn around ``runs[i]``.

    ``plane_probs``, the plane draws of the same samplers, are pooled with them (the decision uses
    every sample within the accuracy band) and drawn in the figure.
    """
    labels = runs[0].eval_labels
    acc_ind, nd_ind = independent_normalized_diversity(runs)
    symmetric = (nd_ind + nd_ind.T) / 2
    reference = float(acc_ind.mean())
    finals = _labels(final_probs(runs))
    criteria, points, near_counts = [], {}, {}
    for sampler, per_run in sample_probs.items():
        if plane_probs is not None:
            per_run = [torch.cat([a, b]) for a, b in zip(per_run, plane_probs[sampler], strict=True)]
        sums, counts, acc_all, nd_all = np.zeros(len(runs)), np.zeros(len(runs)), [], []
        for i, probs in enumerate(per_run):
            acc = _accuracy(probs, labels)
            d = (_labels(probs) != finals[i]).double().mean(-1).numpy()
            with np.errstate(divide="ignore", invalid="ignore"):
                nd = d / (1 - acc)
            # A sample without errors has no normalised diversity (d / 0): it cannot count.
            near = (np.abs(acc - reference) <= S2_ACCURACY_BAND) & (acc < 1)
            sums[i], counts[i] = nd[near].sum(), near.sum()
            acc_all.append(acc), nd_all.append(nd)
        points[sampler] = (np.concatenate(acc_all), np.concatenate(nd_all))
        near_counts[sampler] = counts.astype(int).tolist()

        def ratio(idx, sums=sums, counts=counts):
            # The in-band samples of the seeds, pooled: a seed whose draw put none in the band adds
            # nothing (how many land there depends on the draw's size, not on the claim); seeds
            # without any in-band sample at all leave the statistic undefined (NaN: undecided).
            with np.errstate(divide="ignore", invalid="ignore"):
                value = (sums[idx].sum(1) / counts[idx].sum(1)) / resampled_pairwise_mean(symmetric, idx)
            return np.where(counts[idx].sum(1) > 0, value, np.nan)

        criteria.append(bootstrap_criterion(f"{sampler}: near-accuracy normalised diversity / independent runs'",
                                            ratio, len(runs), S2_DIVERSITY_RATIO_MAX, "<=", level=level,
                                            limits=(0.0, np.inf), min_distinct=3))
    return Evidence(
        claim="S2", setting=setting, source=CATALOG["S2"].citation, seeds=seeds_of(runs),
        criteria=tuple(criteria),
        details={"reference_accuracy": reference, "accuracy_band": S2_ACCURACY_BAND,
                 "independent_normalized_diversity": pairwise_mean(symmetric),
                 "near_samples_per_run": near_counts,
                 figspec.FIGURES_KEY: [plane_figure(points, acc_ind, nd_ind, reference, runs[0].eval_probs.shape[-1])]},
    )


def plane_figure(points: dict[str, tuple[np.ndarray, np.ndarray]], acc_ind: np.ndarray, nd_ind: np.ndarray,
                 reference: float, num_classes: int) -> dict:
    """The diversity-accuracy plane ([Fort] Fig. 5) with the official code's two model curves."""
    grid = np.linspace(1 / num_classes, reference, 41)
    off = ~np.eye(len(acc_ind), dtype=bool)
    series = [figspec.series(sampler, a, v, group=sampler) for sampler, (a, v) in points.items()]
    series.append(
        figspec.series("independent runs", np.broadcast_to(acc_ind[:, None], nd_ind.shape)[off], nd_ind[off]))
    if reference > 1 / num_classes:  # the model curves exist for a reference above chance only
        series += [
            figspec.series("model: perturbed reference", grid,
                           diversity_lower_model(grid, reference, num_classes) / (1 - grid), style="line"),
            figspec.series("model: independent errors", grid,
                           diversity_upper_model(grid, reference, num_classes) / (1 - grid), style="line"),
        ]
    return figspec.xy("Diversity vs accuracy of subspace samples", series, "test accuracy",
                      "normalised diversity d / (1 - acc)",
                      note=f"band: within {S2_ACCURACY_BAND:.0%} of the independent runs' mean accuracy "
                           f"{reference:.3f}")


def s1_with_figure(setting: str, runs: list[Run], level: float, sample_predictions,
                   weight_average_predictions, run_store: RunStore) -> Evidence:
    probs = sample_predictions(setting, runs, ENSEMBLE_SCALES, n_samples(setting, ENSEMBLE_SAMPLES))
    evidence = s1_evidence(runs, setting, probs, level)
    evidence.details["weight_average_closest_to_own"] = weight_average_closest_to_own(
        runs, weight_average_predictions(setting, runs))
    evidence.details[figspec.FIGURES_KEY] = [function_space_figure(runs, probs, stored_tsne(run_store, setting, runs))]
    return evidence


@pytest.mark.claim(id="S1")
@pytest.mark.parametrize("setting", setting_params())
def test_s1_subspace_samples_stay_in_their_mode(setting, decide_claim, sample_predictions, weight_average_predictions,
                                               run_store):
    decide_claim(setting, lambda runs, level: s1_with_figure(setting, runs, level, sample_predictions,
                                                             weight_average_predictions, run_store))


@pytest.mark.claim(id="S2")
@pytest.mark.parametrize("setting", setting_params())
def test_s2_subspace_diversity_below_independent(setting, decide_claim, sample_predictions):
    def evidence_of(runs: list[Run], level: float) -> Evidence:
        n = n_samples(setting, PLANE_SAMPLES)
        return s2_evidence(runs, setting, sample_predictions(setting, runs, BAND_SCALES, n),
                           sample_predictions(setting, runs, PLANE_SCALES, n), level)

    decide_claim(setting, evidence_of)


@pytest.mark.parametrize("setting", setting_params(("smoke",)))
def test_negative_control_s1_far_scales_are_refuted(setting, trained_runs, sample_predictions):
    runs = trained_runs(setting)
    evidence = s1_evidence(runs, setting, sample_predictions(setting, runs, FAR_SCALES, N_FAR_SAMPLES))
    assert evidence.outcome == REFUTED, f"S1 not refuted far outside the mode:\n{evidence.explain()}"


@pytest.mark.parametrize("setting", setting_params(("smoke",)))
def test_negative_control_s1_samples_of_another_run_are_refuted(setting, trained_runs, sample_predictions):
    runs = trained_runs(setting)
    probs = sample_predictions(setting, runs, ENSEMBLE_SCALES, n_samples(setting, ENSEMBLE_SAMPLES))
    relabelled = {k: v[1:] + v[:1] for k, v in probs.items()}  # run i gets the samples of run i + 1
    evidence = s1_evidence(runs, setting, relabelled)
    assert evidence.outcome == REFUTED, f"S1 not refuted with another run's samples:\n{evidence.explain()}"


@pytest.mark.parametrize("setting", setting_params(("smoke",)))
def test_negative_control_s2_independent_solutions_as_samples_are_refuted(setting, trained_runs):
    runs = trained_runs(setting)
    finals = final_probs(runs)
    doctored = {"independent": [torch.cat([finals[:i], finals[i + 1:]]) for i in range(len(runs))]}
    evidence = s2_evidence(runs, setting, doctored)
    assert evidence.outcome == REFUTED, f"S2 not refuted on independent solutions posing as samples:\n{evidence.explain()}"


@pytest.mark.parametrize("setting", setting_params(("smoke",)))
def test_s2_is_decided_when_a_run_has_no_sample_in_the_band(setting, trained_runs, sample_predictions):
    # run 0's samples replaced by constant predictions (chance accuracy, far below the band)
    runs = trained_runs(setting)
    n = n_samples(setting, PLANE_SAMPLES)
    probs = sample_predictions(setting, runs, BAND_SCALES, n)
    chance = {k: [torch.full_like(v[0], 1 / v[0].shape[-1])] + v[1:] for k, v in probs.items()}
    evidence = s2_evidence(runs, setting, chance)
    assert all(counts[0] == 0 for counts in evidence.details["near_samples_per_run"].values())
    assert all(np.isfinite([c.estimate, *c.ci]).all() for c in evidence.criteria), evidence.explain()

