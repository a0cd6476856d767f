"""Seed variability through the α-trimming level (A1, A2, A3) of [Banerjee].

The claims' statements, sources, thresholds and decision texts are in harness.catalog
(CATALOG["A1"], ["A2"], ["A3"]); the thresholds are imported from there. The statistic is
harness.trimming's: each model's scalar output per test example (the logit gap for two classes,
the margin top-1 minus top-2 logit for more: our extension), the trimmed Kolmogorov distance d_K
and the α-trimming level α̂ with the authors' grid, ε and 100 bootstraps.

How the decisions are built:

- A1: an M-run ensemble averages its members' logits; its members' mixture is their outputs
  pooled (its ECDF is the average of theirs). Per K-subset of the seeds (K = the tier's ensemble
  size, harness.ensembles.ENSEMBLE_SIZE), d_K at α = 0 (the KS distance) of the K-ensemble to its
  mixture minus the mean of its 2-run sub-ensembles' distances: "approaches as M grows" is that
  difference below 0 (jackknife upper bound over K-subsets). α̂ and d_K against M, and the
  smallest M with α̂ <= ALPHA_CLOSE, are recorded (the "how many seeds" answer).
- A2: a seed's α̂ against a reference of other seeds (the n_seeds - 1 seeds that follow it,
  harness.sequential.rivals: the same reference size at every look), minus the null, the seed's
  α̂ against itself (disjoint example halves: sampling noise only): mean over seeds at most
  ALPHA_CLOSE (upper bound).
- A3: the odd model is each seed's network with its mirror temperature (harness.temperature:
  the temperature beyond the calibrating one that has the ECE of T = 1, on the test split that
  judges it), so its accuracy and its disagreement with every other model equal its seed's and
  its ECE is its seed's up to one step of the temperature grid. A seed without such a twin (an
  underconfident one whose ECE exceeds its error rate) contributes no odd model. Its α̂
  against the seed's reference minus the largest α̂ of the ordinary seeds of that group (the
  seed and its reference) must be above 0 (mean over seeds, lower bound), while its test ECE
  lies within the ordinary seeds' range (the odd models' mean ECE within [min, max]).

Negative controls: A1 on an "ensemble" that repeats one member must be refuted; A2 with each
seed's epoch-1 model as the candidate must be refuted; A3 with the odd model replaced by another
ordinary seed must not be separated (its level is never above its group's largest: with every
level near 0 the difference is 0, not refuted, so the control asserts "not separated").

A3's temperature search per seed (its ECE, mirror temperature and odd model: :func:`seed_calibration`)
is kept in the run store beside the seed's run, so a warm session only reads it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fixtures.derived_cache import cached_across_runs
from fixtures.runs import copies_of_one_run, setting_params
from harness import figspec
from harness import settings as settings_lib
from harness.catalog import A1_TREND_MAX, A3_SEPARATION_MIN, ALPHA_CLOSE, CATALOG
from harness.diversity import disagreement
from harness.ensembles import ensemble_size
from harness.evidence import FRACTION, REFUTED, REPRODUCES, Criterion, Evidence, mean_criterion, subset_criterion
from harness.scoring import expected_calibration_error
from harness.sequential import rivals
from harness.stats import CONFIDENCE, seed_subsets
from harness.store import RunStore
from harness.temperature import mirror_temperature
from harness.training import Run, seeds_of
from harness.trimming import (ALPHA_GRID, UNTRIMMABLE, alpha_hat, closest_trimming, noise_level, scalar_output,
                              trimmed_kolmogorov_distance)

# Ranges of the criteria's statistics (not thresholds): a difference of two distances in [0, 1],
# and of two trimming levels in [0, UNTRIMMABLE].
DISTANCE_DIFFERENCE = (-1.0, 1.0)
ALPHA_DIFFERENCE = (-UNTRIMMABLE, UNTRIMMABLE)
# α̂ against M is recorded on this many M-subsets per M (its bootstrap costs ~0.1-1 s a call).
A1_ALPHA_SUBSETS = 3
# A3 needs this many odd models: the seed bootstrap's minimum (harness.stats.seed_bootstrap).
MIN_TWINS = 3


def scalar_outputs(logits: torch.Tensor) -> np.ndarray:
    """Scalar output (harness.trimming.scalar_output) of each run's logits (S, N, C): (S, N) float64."""
    return np.stack([scalar_output(z).numpy() for z in logits])


def ensemble_distance(logits: torch.Tensor, members: np.ndarray) -> float:
    """d_K at α = 0 between the ensemble of ``members`` (mean logits) and their pooled outputs.

    Parameters
    ----------
    logits : torch.Tensor, shape (S, N, C), float64
    members : int array, shape (M,)
    """
    pooled = scalar_outputs(logits[members]).ravel()
    return float(trimmed_kolmogorov_distance(scalar_output(logits[members].mean(0)).numpy(), pooled, 0.0))


def a1_evidence(logits: torch.Tensor, setting: str, seeds: tuple[int, ...], level: float = CONFIDENCE) -> Evidence:
    """A1 on the final test logits (S, N, C) of S runs."""
    logits = logits.double()
    n, k = logits.shape[0], ensemble_size(setting)
    pair = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            pair[i, j] = pair[j, i] = ensemble_distance(logits, np.array([i, j]))
    subsets = seed_subsets(n, k)
    iu = np.triu_indices(k, 1)
    trend = np.array([ensemble_distance(logits, s) - pair[s[:, None], s[None, :]][iu].mean() for s in subsets])
    curve = _a1_curve(logits, k)
    # From M = 2: a 1-run "ensemble" is its own mixture.
    closest = [m for m, a in zip(curve["m"], curve["alpha_hat"]) if m > 1 and a <= ALPHA_CLOSE]
    return Evidence(
        claim="A1", setting=setting, source=CATALOG["A1"].citation, seeds=seeds,
        criteria=(subset_criterion(f"KS distance of the {k}-run ensemble to its members' mixture minus the 2-run "
                                   "ensembles'", trend, subsets, n, A1_TREND_MAX, "<", level=level,
                                   limits=DISTANCE_DIFFERENCE),),
        details={"ensemble_size": k, "curve": curve, "smallest_m_alpha_close": closest[0] if closest else None,
                 "alpha_close": ALPHA_CLOSE,
                 figspec.FIGURES_KEY: [_a1_figure(curve, closest[0] if closest else None)]},
    )


def _a1_curve(logits: torch.Tensor, k: int) -> dict:
    """Mean d_K and α̂ of M-run ensembles to their mixtures, M = 1..k, on the first M-subsets."""
    n = logits.shape[0]
    m_values, distances, alphas = [], [], []
    for m in range(1, k + 1):
        subsets = seed_subsets(n, m)[:A1_ALPHA_SUBSETS]
        d, a = [], []
        for s in subsets:
            d.append(ensemble_distance(logits, s))
            a.append(alpha_hat(scalar_output(logits[s].mean(0)).numpy(), scalar_outputs(logits[s]))[0])
        m_values.append(m)
        distances.append(float(np.mean(d)))
        alphas.append(float(np.mean(a)))
    return {"m": m_values, "distance": distances, "alpha_hat": alphas}


def _a1_figure(curve: dict, smallest: int | None) -> dict:
    series = [figspec.series("KS distance d_K (alpha = 0)", curve["m"], curve["distance"], style="line+points"),
              figspec.series("alpha-trimming level", curve["m"], curve["alpha_hat"], style="line+points")]
    return figspec.xy("M-run ensemble vs its members' mixture", series, "ensemble size M", "distance / level",
                      note=f"'how many seeds': the smallest M >= 2 with alpha_hat <= {ALPHA_CLOSE:g} is {smallest}")


# ----------------------------------------------------------------------------------------------
# A2, A3: each seed against a reference of other seeds


def reference_of(index: int, n_runs: int, setting: str) -> list[int]:
    """The reference runs of run ``index``: the ``n_seeds - 1`` runs that follow it (a fixed size at every look)."""
    return rivals(index, n_runs, settings_lib.get(setting).n_seeds - 1)


def alpha_against_reference(candidates: np.ndarray, outputs: np.ndarray, setting: str) -> np.ndarray:
    """α̂ of candidate i's outputs against the reference of run i: (S,) for candidates and outputs (S, N)."""
    n = len(outputs)
    return np.array([alpha_hat(candidates[i], outputs[reference_of(i, n, setting)])[0] for i in range(n)])


def self_alpha(outputs: np.ndarray) -> np.ndarray:
    """The null: each run's α̂ against itself on disjoint example halves, (S,)."""
    return np.array([alpha_hat(o, o)[0] for o in outputs])


def a2_evidence(candidates: np.ndarray, outputs: np.ndarray, setting: str, seeds: tuple[int, ...],
                level: float = CONFIDENCE) -> Evidence:
    """A2: candidates (S, N) against references of the runs' final outputs (S, N)."""
    seed_alpha = alpha_against_reference(candidates, outputs, setting)
    null = self_alpha(candidates)
    return Evidence(
        claim="A2", setting=setting, source=CATALOG["A2"].citation, seeds=seeds,
        criteria=(mean_criterion("alpha-trimming level against other seeds minus against itself", seed_alpha - null,
                                 ALPHA_CLOSE, "<=", level=level, limits=ALPHA_DIFFERENCE),),
        details={"alpha_hat": seed_alpha.tolist(), "null_alpha_hat": null.tolist(),
                 "reference_size": len(reference_of(0, len(outputs), setting)),
                 "delta": noise_level(outputs.shape[1] // 2), figspec.FIGURES_KEY: [
                     _ecdf_figure(candidates[0], outputs[reference_of(0, len(outputs), setting)], ALPHA_CLOSE,
                                  "first seed")]},
    )


def _ecdf_figure(candidate: np.ndarray, reference: np.ndarray, alpha: float, name: str) -> dict:
    """The ECDFs of ``candidate`` (N,), its ``reference`` (pooled outputs) and the candidate's closest α-trimming."""
    reference = np.sort(reference.ravel())
    cand = np.sort(candidate)
    values, trimmed = closest_trimming(candidate, reference, alpha)
    series = [figspec.series(name, cand, np.arange(1, cand.size + 1) / cand.size, style="line"),
              figspec.series("its reference (the seeds after it, pooled)", reference,
                             np.arange(1, reference.size + 1) / reference.size, style="line"),
              figspec.series(f"{name}, closest {alpha:g}-trimming", values, trimmed, style="line")]
    return figspec.xy(f"ECDF of the scalar output: {name}", series, "logit gap or margin", "ECDF",
                      note=f"d_K of the trimming: {trimmed_kolmogorov_distance(candidate, reference, alpha):.4f}")


def a3_evidence(outputs: np.ndarray, ece: np.ndarray, twins: np.ndarray, odd: np.ndarray, odd_ece: np.ndarray,
                setting: str, seeds: tuple[int, ...], level: float = CONFIDENCE,
                temperatures: np.ndarray | None = None, shared: dict[str, np.ndarray] | None = None) -> Evidence:
    """A3 on the seeds' outputs (S, N) and test ECE (S,), and the odd models of the seeds ``twins`` (T,):
    their outputs (T, N) and ECE (T,). Fewer than :data:`MIN_TWINS` odd models leave every criterion
    undecided. ``shared`` holds per-seed metrics (S,) that an odd model shares with its seed (accuracy,
    churn), drawn against α̂ beside the ECE."""
    n = len(outputs)
    seed_alpha = alpha_against_reference(outputs, outputs, setting)
    odd_alpha = np.array([alpha_hat(o, outputs[reference_of(i, n, setting)])[0] for i, o in zip(twins, odd)])
    group_max = np.array([seed_alpha[[i, *reference_of(i, n, setting)]].max() for i in twins])
    names = ("odd model's alpha-trimming level minus its group's largest ordinary one",
             "odd models' ECE, at least the seeds' smallest", "odd models' ECE, at most the seeds' largest")
    if len(twins) < MIN_TWINS:
        short = f" (undecided: {len(twins)} of {n} seeds have a temperature twin, {MIN_TWINS} needed)"
        criteria = tuple(Criterion(name + short, math.nan, threshold, direction, (math.nan, math.nan), level)
                         for name, threshold, direction in zip(names, (A3_SEPARATION_MIN, ece.min(), ece.max()),
                                                               (">", ">=", "<=")))
    else:
        criteria = (
            mean_criterion(names[0], odd_alpha - group_max, A3_SEPARATION_MIN, ">", level=level,
                           limits=ALPHA_DIFFERENCE),
            mean_criterion(names[1], odd_ece, float(ece.min()), ">=", level=level, limits=FRACTION),
            mean_criterion(names[2], odd_ece, float(ece.max()), "<=", level=level, limits=FRACTION),
        )
    figures = _a3_figures(seed_alpha, twins, odd_alpha, ece, odd_ece, shared or {})
    if len(twins):  # the first odd model's ECDF, and its trimming at the grid's largest level
        figures.append(_ecdf_figure(odd[0], outputs[reference_of(twins[0], n, setting)], ALPHA_GRID[-1],
                                    f"odd model of seed {seeds[twins[0]]}"))
    return Evidence(
        claim="A3", setting=setting, source=CATALOG["A3"].citation, seeds=seeds, criteria=criteria,
        details={"alpha_hat": seed_alpha.tolist(), "ece": ece.tolist(), "twins": [seeds[i] for i in twins],
                 "odd_alpha_hat": odd_alpha.tolist(), "odd_ece": np.asarray(odd_ece).tolist(),
                 "temperatures": None if temperatures is None else np.asarray(temperatures).tolist(),
                 **{name: values.tolist() for name, values in (shared or {}).items()},
                 figspec.FIGURES_KEY: figures},
    )


def _a3_figures(seed_alpha, twins, odd_alpha, ece, odd_ece, shared: dict[str, np.ndarray]) -> list[dict]:
    """α̂ per model against each ordinary metric: the ordinary seeds and the odd models in one panel each."""
    metrics = {"test ECE": (ece, odd_ece), **{name: (v, v[twins]) for name, v in shared.items()}}
    return [figspec.xy(f"alpha-trimming level against {name}, per model",
                       [figspec.series("ordinary seeds", seeds_value, seed_alpha),
                        figspec.series("odd models (mirror temperature)", odd_value, odd_alpha)],
                       name, "alpha_hat")
            for name, (seeds_value, odd_value) in metrics.items()]


# ----------------------------------------------------------------------------------------------
# Inputs from runs


def final_logits(runs: list[Run]) -> torch.Tensor:
    return torch.stack([r.final_logits for r in runs]).double()


# Bump when what seed_calibration computes changes (harness.temperature's grid or search, the ECE,
# the scalar output): calibrations cached in the run store under an older version are then
# recomputed, not read.
CALIBRATION_VERSION = 1


def seed_calibration(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """A run's test ECE, its mirror temperature, and its odd model's outputs and ECE when it has a twin.

    The temperature search (harness.temperature.mirror_temperature: up to two passes over a
    97-point grid) is what costs: this is what A3 keeps in the run store per seed.

    Parameters
    ----------
    logits : torch.Tensor, shape (N, C)
        The run's final test logits.
    labels : torch.Tensor, shape (N,), int64

    Returns
    -------
    dict of str to torch.Tensor
        ``ece``: 0-d float64, at T = 1; ``temperature``: 0-d float64, NaN without a twin; and, with
        one only, ``odd_output``: (N,) float64 (harness.trimming.scalar_output at the temperature)
        and ``odd_ece``: 0-d float64.
    """
    z = logits.double()
    out = {"ece": torch.tensor(expected_calibration_error(torch.softmax(z, dim=1), labels), dtype=torch.float64)}
    t = mirror_temperature(logits, labels)
    out["temperature"] = torch.tensor(math.nan if t is None else t, dtype=torch.float64)
    if t is not None:
        out["odd_output"] = scalar_output(z / t)
        out["odd_ece"] = torch.tensor(expected_calibration_error(torch.softmax(z / t, dim=1), labels),
                                      dtype=torch.float64)
    return out


def calibrations(runs: list[Run], run_store: RunStore | None = None, setting: str | None = None) -> list[dict]:
    """:func:`seed_calibration` of each run, from the run store when given one (filed under the run's seed)."""
    def compute(run: Run) -> dict[str, torch.Tensor]:
        return seed_calibration(run.final_logits, run.eval_labels)

    if run_store is None:
        return [compute(run) for run in runs]
    params = {"what": "A3 calibration: test ECE and mirror temperature", "version": CALIBRATION_VERSION}
    return [cached_across_runs(run_store, setting, [run], "a3-calibration", params, lambda run=run: compute(run))
            for run in runs]


def odd_models(calibrated: list[dict], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The runs that have a temperature twin on the test split (indices, (T,)), the twins' temperatures (T,),
    outputs (T, N) and test ECE (T,), from the :func:`calibrations` of the runs; ``n`` examples."""
    twins = [i for i, c in enumerate(calibrated) if "odd_output" in c]
    return (np.array(twins, dtype=np.int64), np.array([calibrated[i]["temperature"].item() for i in twins]),
            np.stack([calibrated[i]["odd_output"].numpy() for i in twins]) if twins else np.empty((0, n)),
            np.array([calibrated[i]["odd_ece"].item() for i in twins]))


def seeds_ece(calibrated: list[dict]) -> np.ndarray:
    """The test ECE at T = 1 of each run, (S,), from their :func:`calibrations`."""
    return np.array([c["ece"].item() for c in calibrated])


# ----------------------------------------------------------------------------------------------
# Tests

def _a3_from_runs(setting: str, runs: list[Run], level: float, run_store: RunStore | None = None) -> Evidence:
    logits = final_logits(runs)
    outputs = scalar_outputs(logits)
    calibrated = calibrations(runs, run_store, setting)
    twins, temps, odd, odd_ece = odd_models(calibrated, logits.shape[1])
    labels = logits.argmax(-1)
    churn = np.array([np.mean([disagreement(labels[i], labels[j]) for j in reference_of(i, len(runs), setting)])
                      for i in range(len(runs))])
    shared = {"test accuracy": np.array([(p == r.eval_labels).double().mean().item() for p, r in zip(labels, runs)]),
              "churn (disagreement with its reference seeds)": churn}
    return a3_evidence(outputs, seeds_ece(calibrated), twins, odd, odd_ece, setting, seeds_of(runs), level,
                       temperatures=temps, shared=shared)


@pytest.mark.claim(id="A1")
@pytest.mark.parametrize("setting", setting_params(claim="A1"))
def test_a1_ensemble_output_approaches_mixture(setting, decide_claim):
    decide_claim(setting, lambda runs, level: a1_evidence(final_logits(runs), setting, seeds_of(runs), level),
                 min_seeds=ensemble_size(setting) + 1)


@pytest.mark.claim(id="A2")
@pytest.mark.parametrize("setting", setting_params(claim="A2"))
def test_a2_seeds_are_alpha_close_to_other_seeds(setting, decide_claim):
    def evidence_of(runs, level):
        outputs = scalar_outputs(final_logits(runs))
        return a2_evidence(outputs, outputs, setting, seeds_of(runs), level)

    decide_claim(setting, evidence_of)


@pytest.mark.claim(id="A3")
@pytest.mark.parametrize("setting", setting_params(claim="A3"))
def test_a3_alpha_separates_what_accuracy_churn_and_ece_do_not(setting, decide_claim, run_store):
    decide_claim(setting, lambda runs, level: _a3_from_runs(setting, runs, level, run_store))


@pytest.mark.parametrize("setting", setting_params(("smoke",), claim="A1"))
def test_negative_control_a1_repeated_member_is_refuted(setting, trained_runs):
    runs = copies_of_one_run(trained_runs(setting, at_least=ensemble_size(setting) + 1))
    evidence = a1_evidence(final_logits(runs), setting, seeds_of(runs))
    assert evidence.outcome == REFUTED, f"A1 not refuted on copies of one run:\n{evidence.explain()}"


@pytest.mark.parametrize("setting", setting_params(("smoke",), claim="A2"))
def test_negative_control_a2_first_epoch_models_are_refuted(setting, trained_runs):
    runs = trained_runs(setting)
    outputs = scalar_outputs(final_logits(runs))
    # Log-probabilities differ from the logits by a per-example constant: the same gaps and margins.
    first_epoch = np.stack([scalar_output(r.eval_probs[1].double().log()).numpy() for r in runs])
    evidence = a2_evidence(first_epoch, outputs, setting, seeds_of(runs))
    assert evidence.outcome == REFUTED, f"A2 not refuted on epoch-1 candidates:\n{evidence.explain()}"


@pytest.mark.parametrize("setting", setting_params(("smoke",), claim="A3"))
def test_negative_control_a3_ordinary_seed_is_not_separated(setting, trained_runs, run_store):
    runs = trained_runs(setting)
    outputs = scalar_outputs(final_logits(runs))
    ece = seeds_ece(calibrations(runs, run_store, setting))
    # The "odd" model of seed i is the seed after it, ordinary in every respect.
    shift = np.roll(np.arange(len(runs)), -1)
    evidence = a3_evidence(outputs, ece, np.arange(len(runs)), outputs[shift], ece[shift], setting, seeds_of(runs))
    # Its level is one of its group's (or below them): never above the group's largest.
    separation = evidence.criteria[0]
    assert separation.estimate <= 0 and separation.outcome != REPRODUCES, \
        f"A3 separates an ordinary seed:\n{evidence.explain()}"
