"""Claims about the snapshots of one training run: T1, T2 and T3.

Their statements, sources, the sources' numbers, the thresholds and the decisions' text are in
harness.catalog (CATALOG["T1"] and so on); the thresholds are imported from there.

How the decisions are built. T1 and T3 read one run's trajectory as a series of steps between
consecutive checkpoints (1 - cos of the kernels' weights for T1, the disagreement of the test
predictions for T3) and compare the mean step over the last quarter of the steps with that over
the first quarter: a ratio per seed, free of the setting's scale, so one threshold serves both.
T1 also bounds the late consecutive cosine itself, the quantity [WB] reports; T3 also asks that the
final checkpoint be nearer its predecessor than the first trained epoch. T2 reads
cos(theta_0, theta_e) as a Spearman trend with e (monotone, not linear). The first seed's
checkpoint-by-checkpoint matrices are saved for the report's heat maps ([Fort] Fig. 2a-b).

Every interval is a bootstrap over seeds (harness.stats) at the level of the sequential decision
(harness.sequential). Change from the catalog: "in every seed" (a worst case, which grows stricter,
not surer, as seeds are added) became a mean over seeds with its interval.

Negative control of each: the same decision on the same runs with their checkpoints shuffled in
time reproduces at most 5% of 200 shuffles. A single shuffle can pass by chance (~1-2% for T1), so
the control is a rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from fixtures.runs import setting_params
from harness.catalog import CATALOG, STEP_RATIO_MAX, T1_LATE_CONSECUTIVE_COS_MIN, T2_SPEARMAN_MAX
from harness.diversity import pairwise_disagreement
from harness.weightspace import pairwise_cosine, run_weight_vectors
from harness.evidence import COSINE, REPRODUCES, Evidence, mean_criterion
from harness.stats import CONFIDENCE, NULL_PASS_RATE_MAX, spearman_trend
from harness.training import Run, seeds_of
from harness import figspec

# Time-shuffled trajectories per negative control (its pass rate is a rate over these).
N_SHUFFLES = 200


def checkpoint_cosines(run: Run) -> np.ndarray:
    """Cosine similarity of every pair of a run's checkpoints (kernels only), shape (E+1, E+1)."""
    if run.epochs != tuple(range(run.epochs[-1] + 1)):
        raise ValueError(f"trajectory claims need the weights of every epoch; seed={run.seed} keeps {run.epochs}")
    return pairwise_cosine(run_weight_vectors(run)).numpy()


def checkpoint_disagreements(run: Run) -> np.ndarray:
    """Disagreement of every pair of a run's checkpoints on the test split, shape (E+1, E+1)."""
    return pairwise_disagreement(run.eval_probs).numpy()


def _step_ratio(steps: np.ndarray) -> float:
    """Mean of the last quarter of a series of step sizes over the mean of its first quarter."""
    quarter = math.ceil(len(steps) / 4)
    return float(steps[-quarter:].mean() / steps[:quarter].mean())


def t1_evidence(cosines: list[np.ndarray], seeds: tuple[int, ...], setting: str,
                level: float = CONFIDENCE) -> Evidence:
    """Decide T1 from each seed's checkpoint cosine matrix (E+1, E+1), rows in epoch order."""
    consecutive = [np.diagonal(gram, offset=1) for gram in cosines]
    ratios = [_step_ratio(1.0 - cos) for cos in consecutive]
    late_cos = np.array([cos[-math.ceil(len(cos) / 4):].mean() for cos in consecutive])
    return Evidence(
        claim="T1", setting=setting, source=CATALOG["T1"].citation, seeds=seeds,
        criteria=(
            mean_criterion("late consecutive cosine", late_cos, T1_LATE_CONSECUTIVE_COS_MIN, ">=", level=level,
                           limits=COSINE),
            mean_criterion("late/early step distance, mean over seeds", ratios, STEP_RATIO_MAX, "<=", level=level,
                           limits=(0.0, math.inf)),
        ),
        details={"late_consecutive_cos": late_cos.tolist(), "step_ratio": ratios,
                 figspec.FIGURES_KEY: [_checkpoint_heatmap("Cosine between checkpoints", cosines[0], seeds[0],
                                                           "cosine (conv/dense kernels)")]},
    )


def _checkpoint_heatmap(title: str, matrix: np.ndarray, seed: int, colorbar: str) -> dict:
    """Heat map of one run's checkpoint-by-checkpoint matrix ([Fort] Fig. 2a-b), epochs as ticks.

    The colours span the data's range: the cosines of a small CNN's checkpoints all lie above ~0.9.
    """
    return figspec.heatmap(f"{title}, run {seed}", matrix, ticks=[str(e) for e in range(len(matrix))],
                           label="epoch", colorbar=colorbar)


def t2_evidence(cosines: list[np.ndarray], seeds: tuple[int, ...], setting: str,
                level: float = CONFIDENCE) -> Evidence:
    """Decide T2 from each seed's checkpoint cosine matrix: row 0 is cos(theta_0, theta_e)."""
    rho = np.array([spearman_trend(gram[0, 1:]) for gram in cosines])
    return Evidence(
        claim="T2", setting=setting, source=CATALOG["T2"].citation, seeds=seeds,
        criteria=(mean_criterion("Spearman rho of cos(theta_0, theta_e) with e", rho, T2_SPEARMAN_MAX, "<=",
                                 level=level, limits=(-1.0, 1.0)),),
        details={"spearman_rho": rho.tolist(), "cos_init_final": [float(gram[0, -1]) for gram in cosines],
                 figspec.FIGURES_KEY: [figspec.xy(
                     "Cosine to the initialisation along each run",
                     [figspec.series(f"run {seed}", np.arange(len(gram)), gram[0], style="line+points")
                      for seed, gram in zip(seeds, cosines, strict=True)],
                     "epoch e", "cos(theta_0, theta_e)", note="[WB]: ~0.62 at the end for the SmallCNN")]},
    )


def t3_evidence(disagreements: list[np.ndarray], seeds: tuple[int, ...], setting: str,
                level: float = CONFIDENCE) -> Evidence:
    """Decide T3 from each seed's checkpoint disagreement matrix (E+1, E+1), rows in epoch order."""
    ratios = [_step_ratio(np.diagonal(d, offset=1)) for d in disagreements]
    # d(p_1, p_E) - d(p_E-1, p_E): how much closer the last step is than the first trained epoch.
    gaps = [float(d[1, -1] - d[-2, -1]) for d in disagreements]
    return Evidence(
        claim="T3", setting=setting, source=CATALOG["T3"].citation, seeds=seeds,
        criteria=(
            mean_criterion("late/early consecutive disagreement, mean over seeds", ratios, STEP_RATIO_MAX, "<=",
                           level=level, limits=(0.0, math.inf)),
            mean_criterion("d(p_1, p_E) - d(p_E-1, p_E), mean over seeds", gaps, 0.0, ">", level=level,
                           limits=(-1.0, 1.0)),
        ),
        details={"step_ratio": ratios, "gap": gaps,
                 "late_consecutive_disagreement": [float(np.diagonal(d, 1)[-1]) for d in disagreements],
                 "epoch1_vs_final_disagreement": [float(d[1, -1]) for d in disagreements],
                 "init_vs_final_disagreement": [float(d[0, -1]) for d in disagreements],
                 figspec.FIGURES_KEY: [_checkpoint_heatmap("Disagreement between checkpoints", disagreements[0],
                                                           seeds[0], "fraction of test predictions that differ")]},
    )


def shuffled_pass_rate(decide: Callable[..., Evidence], matrices: list[np.ndarray], seeds: tuple[int, ...],
                       setting: str) -> float:
    """How often ``decide`` reproduces on the runs with their checkpoints in a random temporal order.

    Shuffling permutes the rows and columns of each checkpoint matrix together, which is the same
    as relabelling the epochs of each run.
    """
    rng = np.random.default_rng(0)
    passes = 0
    for _ in range(N_SHUFFLES):
        shuffled = []
        for m in matrices:
            order = rng.permutation(len(m))
            shuffled.append(m[np.ix_(order, order)])
        passes += decide(shuffled, seeds, setting).outcome == REPRODUCES
    return passes / N_SHUFFLES


CLAIMS = {  # id -> (decision, checkpoint matrix of one run)
    "T1": (t1_evidence, checkpoint_cosines),
    "T2": (t2_evidence, checkpoint_cosines),
    "T3": (t3_evidence, checkpoint_disagreements),
}


def decide(claim: str, runs: list[Run], setting: str, level: float = CONFIDENCE) -> Evidence:
    evidence_of, matrix_of = CLAIMS[claim]
    return evidence_of([matrix_of(r) for r in runs], seeds_of(runs), setting, level)


def _decision(claim: str, setting: str):
    return lambda runs, level: decide(claim, runs, setting, level)


@pytest.mark.claim(id="T1")
@pytest.mark.parametrize("setting", setting_params())
def test_t1_snapshots_converge_in_weight_space(setting, decide_claim):
    decide_claim(setting, _decision("T1", setting))


@pytest.mark.claim(id="T2")
@pytest.mark.parametrize("setting", setting_params())
def test_t2_late_checkpoints_differ_most_from_the_initialisation(setting, decide_claim):
    decide_claim(setting, _decision("T2", setting))


@pytest.mark.claim(id="T3")
@pytest.mark.parametrize("setting", setting_params())
def test_t3_snapshots_converge_in_function_space(setting, decide_claim):
    decide_claim(setting, _decision("T3", setting))


@pytest.mark.parametrize("claim", list(CLAIMS))
@pytest.mark.parametrize("setting", setting_params(("smoke",)))
def test_negative_control_time_shuffled_snapshots_fail(claim, setting, trained_runs):
    runs = trained_runs(setting)
    evidence_of, matrix_of = CLAIMS[claim]
    rate = shuffled_pass_rate(evidence_of, [matrix_of(r) for r in runs], seeds_of(runs), setting)
    assert rate <= NULL_PASS_RATE_MAX, f"{claim} passed {rate:.1%} of {N_SHUFFLES} time-shuffled trajectories"
