"""Ensembles and diversity under dataset shift (X1).

X1's statement, source numbers, thresholds and decision text are in harness.catalog
(CATALOG["X1"]); the corruptions (X1_CORRUPTIONS, [HD19]'s constants in harness.corruptions) and
the threshold are imported from there. Every model is evaluated on one corrupted test set per
corruption and severity (harness.data.shifted_test; fixtures.samples.shifted_predictions caches the
predictions in the run store).

How the decision is built, per corruption c and severity s = 1..5, from the runs' final models,
their late trajectory checkpoints (the L ends of their subspace-window epochs) and their
ensemble-scale diagonal-Gaussian samples (the sampler of [Fort]'s figure):

- the Brier score of K-run ensembles minus the mean of their runs' < 0 (K = the tier's ensemble
  size; mean over K-subsets of the seeds, jackknife bound);
- the JS diversity H(mean p) - mean H(p) of L independent runs minus the mean JS of their L-model
  trajectories > 0 (mean over L-subsets of the seeds, jackknife bound): equal member counts, since JS
  grows with the number of members;
- the JS of a run's trajectory minus that of its first L subspace samples > 0 (mean over seeds);

and per corruption, the trend: the JS of L independent runs at severity 5 minus at severity 1 > 0
(mean over L-subsets). The figure per corruption: accuracy and Brier of single runs and K-run
ensembles, and the three JS curves, against severity (0 = the clean test set), beside [Fort]'s.

Negative controls: an "ensemble" of copies of one run (its Brier gain and every JS are exactly 0)
must be refuted; the trend on severity-0 copies of the clean set (the clean predictions at both
ends: a rise of exactly 0) must be refuted.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fixtures.runs import setting_params
from fixtures.samples import SHIFT_SAMPLER, n_samples
from harness import figspec
from harness import settings as settings_lib
from harness.catalog import CATALOG, X1_CORRUPTIONS, X1_GAIN_MIN
from harness.diversity import js_diversity
from harness.ensembles import ensemble_size, subset_metrics
from harness.evidence import REFUTED, Criterion, Evidence, mean_criterion, subset_criterion
from harness.scoring import brier_score_loss
from harness.stats import CONFIDENCE, seed_subsets
from harness.subspace import ENSEMBLE_SAMPLES, ENSEMBLE_SCALES
from harness.training import Run, seeds_of

# [HD19]'s severities (harness.corruptions.SEVERITIES holds one constant per level).
SEVERITY_LEVELS = (1, 2, 3, 4, 5)
# A dry run checks the code paths on the first corruption at the trend's two ends only.
DRY_RUN_SEVERITIES = (SEVERITY_LEVELS[0], SEVERITY_LEVELS[-1])
# [Fort]'s CIFAR-10-C figure, JS diversity at severities 1 and 5 (for the report's figure).
FORT_JS = {"independent": {1: 0.273, 5: 0.377}, "trajectory": {1: 0.091, 5: 0.147}, "subspace": {1: 0.022, 5: 0.035}}
# Ranges of the statistics (not thresholds): a difference of Brier scores, of JS diversities (nats).
BRIER_DIFFERENCE = (-2.0, 2.0)
JS_DIFFERENCE = (-np.log(10.0), np.log(10.0))


def trajectory_size(setting: str) -> int:
    """L, the late checkpoints of a run's trajectory (its window epochs), the member count of every JS."""
    return len(settings_lib.get(setting).recipe.window_epochs)


def shift_grid(setting: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The corruptions and severities X1 evaluates ``setting`` on (fewer in a dry run)."""
    if settings_lib.get(setting).dry_run:
        return X1_CORRUPTIONS[:1], DRY_RUN_SEVERITIES
    return X1_CORRUPTIONS, SEVERITY_LEVELS


def _grid(stats: dict) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The corruptions (in order) and the sorted severities of the keys ``(c, s)`` of ``stats``."""
    return tuple(dict.fromkeys(c for c, _ in stats)), tuple(sorted({s for _, s in stats}))


def severity_statistics(preds: dict, labels: torch.Tensor, k: int, m: int) -> dict:
    """The statistics of one corrupted test set.

    Parameters
    ----------
    preds : dict
        ``"final"``: (S, N, C); ``"late"``: (S, L, N, C); ``"subspace"``: (S, n, N, C), n >= m.
    labels : torch.Tensor, shape (N,)
    k, m : int
        Ensemble size K and JS member count M (= L).

    Returns
    -------
    dict of numpy arrays
        ``brier_gain`` (K-subsets,), ``js_independent`` (M-subsets,), ``js_trajectory`` (S,),
        ``js_subspace`` (S,), ``single_accuracy``, ``single_brier`` (S,), ``ensemble_accuracy``,
        ``ensemble_brier`` (K-subsets,).
    """
    final = preds["final"]
    n = final.shape[0]
    k_subsets, m_subsets = seed_subsets(n, k), seed_subsets(n, m)
    ensembles = subset_metrics(final, labels, k_subsets)
    single_brier = np.array([brier_score_loss(p, labels) for p in final])
    return {
        "brier_gain": ensembles["brier"].numpy() - single_brier[k_subsets].mean(1),
        "js_independent": np.array([js_diversity(final[s]) for s in m_subsets]),
        "js_trajectory": np.array([js_diversity(late[-m:]) for late in preds["late"]]),
        "js_subspace": np.array([js_diversity(samples[:m]) for samples in preds["subspace"]]),
        "single_accuracy": (final.argmax(-1) == labels).double().mean(-1).numpy(),
        "single_brier": single_brier,
        "ensemble_accuracy": ensembles["accuracy"].numpy(),
        "ensemble_brier": ensembles["brier"].numpy(),
    }


def x1_evidence(shifted: dict, clean: dict, labels: torch.Tensor, setting: str, seeds: tuple[int, ...],
                level: float = CONFIDENCE) -> Evidence:
    """X1 on predictions per (corruption, severity) in ``shifted`` and on the clean test set ``clean``.

    ``shifted[(c, s)]`` and ``clean`` hold the :func:`severity_statistics` inputs; every corruption
    at the same severities (:func:`shift_grid`).
    """
    k, m = ensemble_size(setting), trajectory_size(setting)
    n = len(seeds)
    k_subsets, m_subsets = seed_subsets(n, k), seed_subsets(n, m)
    stats = {key: severity_statistics(p, labels, k, m) for key, p in shifted.items()}
    clean_stats = severity_statistics(clean, labels, k, m)
    criteria = []
    corruptions, severities = _grid(stats)
    for c in corruptions:
        for s in severities:
            st = stats[(c, s)]
            criteria += [
                subset_criterion(f"{c} {s}: Brier of {k}-run ensembles minus their runs'", st["brier_gain"], k_subsets,
                                 n, X1_GAIN_MIN, "<", level=level, limits=BRIER_DIFFERENCE),
                subset_criterion(f"{c} {s}: JS of {m} independent runs minus their {m}-checkpoint trajectories'",
                                 st["js_independent"] - st["js_trajectory"][m_subsets].mean(1), m_subsets, n,
                                 X1_GAIN_MIN, ">", level=level, limits=JS_DIFFERENCE),
                mean_criterion(f"{c} {s}: JS of a trajectory minus of {m} of its subspace samples",
                               st["js_trajectory"] - st["js_subspace"], X1_GAIN_MIN, ">", level=level,
                               limits=JS_DIFFERENCE),
            ]
        criteria.append(trend_criterion(c, (severities[0], stats[(c, severities[0])]),
                                        (severities[-1], stats[(c, severities[-1])]), m_subsets, n, level))
    return Evidence(
        claim="X1", setting=setting, source=CATALOG["X1"].citation, seeds=seeds, criteria=tuple(criteria),
        details={"ensemble_size": k, "js_members": m, "curves": _curves(stats, clean_stats),
                 figspec.FIGURES_KEY: _figures(stats, clean_stats, k, m)},
    )


def trend_criterion(corruption: str, low: tuple[int, dict], high: tuple[int, dict], m_subsets: np.ndarray, n: int,
                    level: float) -> Criterion:
    """The JS of independent runs at the highest severity minus at the lowest, over M-subsets of the seeds.

    ``low`` and ``high`` are (severity, :func:`severity_statistics`) pairs.
    """
    return subset_criterion(f"{corruption}: JS of independent runs, severity {high[0]} minus {low[0]}",
                            high[1]["js_independent"] - low[1]["js_independent"], m_subsets, n,
                            X1_GAIN_MIN, ">", level=level, limits=JS_DIFFERENCE)


def _curves(stats: dict, clean: dict) -> dict:
    """Per corruption, the mean of each statistic at severity 0 (clean) to 5."""
    keys = ("single_accuracy", "ensemble_accuracy", "single_brier", "ensemble_brier", "js_independent",
            "js_trajectory", "js_subspace")
    corruptions, severities = _grid(stats)
    return {c: {key: [float(clean[key].mean())] + [float(stats[(c, s)][key].mean()) for s in severities]
                for key in keys} for c in corruptions}


def _figures(stats: dict, clean: dict, k: int, m: int) -> list[dict]:
    corruptions, severities = _grid(stats)
    curves, x = _curves(stats, clean), [0, *severities]
    figures = []
    for c in corruptions:
        cv = curves[c]
        figures.append(figspec.xy(
            f"{c}: accuracy and Brier against severity",
            [figspec.series("single run accuracy", x, cv["single_accuracy"], style="line+points"),
             figspec.series(f"{k}-run ensemble accuracy", x, cv["ensemble_accuracy"], style="line+points"),
             figspec.series("single run Brier", x, cv["single_brier"], style="line+points"),
             figspec.series(f"{k}-run ensemble Brier", x, cv["ensemble_brier"], style="line+points")],
            "severity (0 = clean)", "accuracy / Brier"))
        series = [figspec.series(f"{name} ({m} models)", x, cv[f"js_{name}"], style="line+points")
                  for name in ("independent", "trajectory", "subspace")]
        series += [figspec.series(f"[Fort] {name}", list(points), list(points.values()))
                   for name, points in FORT_JS.items()]
        figures.append(figspec.xy(f"{c}: JS diversity against severity", series, "severity (0 = clean)", "JS (nats)",
                                  note="[Fort]: CIFAR-10-C, at severities 1 and 5"))
    return figures


# ----------------------------------------------------------------------------------------------
# Inputs from runs

def clean_predictions(setting: str, runs: list[Run], sample_predictions) -> dict:
    """The clean test set's ``final``, ``late`` and ``subspace`` predictions, as the shifted ones."""
    window = list(settings_lib.get(setting).recipe.window_epochs)
    samples = sample_predictions(setting, runs, ENSEMBLE_SCALES, n_samples(setting, ENSEMBLE_SAMPLES))
    return {"final": torch.stack([r.eval_probs[-1] for r in runs]),
            "late": [r.eval_probs[window] for r in runs], "subspace": samples[SHIFT_SAMPLER]}


def shifted(setting: str, runs: list[Run], shifted_predictions) -> dict:
    out = {}
    corruptions, severities = shift_grid(setting)
    for c in corruptions:
        for s in severities:
            p = shifted_predictions(setting, runs, c, s)
            out[(c, s)] = {"final": torch.stack(p["final"]), "late": p["late"], "subspace": p["subspace"]}
    return out


@pytest.mark.claim(id="X1")
@pytest.mark.parametrize("setting", setting_params())
def test_x1_ensembles_and_diversity_under_dataset_shift(setting, decide_claim, shifted_predictions,
                                                        sample_predictions):
    def evidence_of(runs, level):
        return x1_evidence(shifted(setting, runs, shifted_predictions),
                           clean_predictions(setting, runs, sample_predictions), runs[0].eval_labels, setting,
                           seeds_of(runs), level)

    decide_claim(setting, evidence_of, min_seeds=ensemble_size(setting) + 1)


def _copies(preds: dict, n: int) -> dict:
    """Predictions of ``n`` copies of the first run."""
    return {"final": preds["final"][:1].expand(n, *preds["final"].shape[1:]), "late": [preds["late"][0]] * n,
            "subspace": [preds["subspace"][0]] * n}


@pytest.mark.parametrize("setting", setting_params(("smoke",)))
def test_negative_control_x1_copies_of_one_run_are_refuted(setting, trained_runs, shifted_predictions,
                                                          sample_predictions):
    runs = trained_runs(setting, at_least=ensemble_size(setting) + 1)
    copies = {key: _copies(p, len(runs)) for key, p in shifted(setting, runs, shifted_predictions).items()}
    clean = _copies(clean_predictions(setting, runs, sample_predictions), len(runs))
    evidence = x1_evidence(copies, clean, runs[0].eval_labels, setting, seeds_of(runs))
    assert evidence.outcome == REFUTED, f"X1 not refuted on copies of one run:\n{evidence.explain()}"


@pytest.mark.parametrize("setting", setting_params(("smoke",)))
def test_negative_control_x1_trend_on_clean_copies_is_refuted(setting, trained_runs):
    runs = trained_runs(setting, at_least=ensemble_size(setting) + 1)
    m, n = trajectory_size(setting), len(runs)
    final = torch.stack([r.eval_probs[-1] for r in runs])
    clean = {"js_independent": np.array([js_diversity(final[s]) for s in seed_subsets(n, m)])}
    criterion = trend_criterion("severity-0 copies", (0, clean), (0, clean), seed_subsets(n, m), n, CONFIDENCE)
    assert criterion.outcome == REFUTED, f"the JS trend on clean copies is not refuted: {criterion.describe()}"
