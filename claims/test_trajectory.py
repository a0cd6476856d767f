"""Claims about the snapshots of one training run.

Sources: [Fort] Fort, Hu, Lakshminarayanan, "Deep Ensembles: A Loss Landscape Perspective",
arXiv 1912.02757, Fig. 2a; [WB] Paul & Thakur, W&B report "Understanding the Effectivity of
Ensembles in Deep Learning".

T1  Snapshots of one run grow more similar in weight space toward convergence.
    [WB] SmallCNN: the cosine similarity of consecutive checkpoints exceeds 0.95 after ~epoch 10.
    Decision: the step distance 1 - cos(theta_e, theta_e+1) averaged over the last quarter of the
    steps is at most half that over the first quarter, in every seed; and the late consecutive
    cosine has a bootstrap lower bound (over seeds) of at least 0.95.
    Negative control: the same decision on the same runs with their snapshots shuffled in time
    must pass at most 5% of 200 shuffles (a single shuffle passes by chance ~1-2% of the time).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fixtures.runs import setting_params
from harness.metrics import pairwise_cosine, weight_vector
from harness.stats import Criterion, Evidence, mean_interval
from harness.training import Run

# [WB]: consecutive cosine > 0.95 after ~epoch 10 of SmallCNN training.
T1_LATE_CONSECUTIVE_COS_MIN = 0.95
# CLAIMS.md T1: "grow more similar" read as late steps at most half the size of early steps.
T1_STEP_RATIO_MAX = 0.5
# One-sided confidence level of every bootstrap bound in this module.
CONFIDENCE = 0.95
# Negative controls: the decision may pass a null (e.g. time-shuffled) trajectory at most this
# often, the conventional 5% significance level, estimated over N_SHUFFLES shuffles.
NULL_PASS_RATE_MAX = 0.05
N_SHUFFLES = 200
T1_SOURCE = "[Fort] Fig. 2a, [WB]: consecutive cos > 0.95 after ~epoch 10 (SmallCNN)"


def checkpoint_cosines(run: Run, subset: str = "weights") -> np.ndarray:
    """Cosine similarity between every pair of a run's saved checkpoints, in epoch order.

    Returns
    -------
    numpy.ndarray, shape (K, K), for K saved epochs
    """
    if run.epochs != tuple(range(run.epochs[-1] + 1)):
        raise ValueError(f"T1 needs the weights of every epoch; run seed={run.seed} keeps epochs {run.epochs}")
    return pairwise_cosine(torch.stack([weight_vector(run.weights[e], subset) for e in run.epochs])).numpy()


def t1_evidence(cosines: list[np.ndarray], seeds: tuple[int, ...], setting: str) -> Evidence:
    """Decide T1 from each seed's checkpoint cosine matrix (K, K), rows in epoch order."""
    ratios, late_cos = [], []
    for gram in cosines:
        cos = np.diagonal(gram, offset=1)  # cos(theta_e, theta_e+1)
        quarter = math.ceil(len(cos) / 4)
        steps = 1.0 - cos
        ratios.append(steps[-quarter:].mean() / steps[:quarter].mean())
        late_cos.append(cos[-quarter:].mean())
    late_cos = np.array(late_cos)
    return Evidence(
        claim="T1", setting=setting, source=T1_SOURCE, seeds=seeds,
        criteria=(
            Criterion("late consecutive cosine", float(late_cos.mean()), T1_LATE_CONSECUTIVE_COS_MIN, ">=",
                      ci=mean_interval(late_cos, CONFIDENCE), level=CONFIDENCE),
            Criterion("late/early step distance, worst seed", float(max(ratios)), T1_STEP_RATIO_MAX, "<="),
        ),
        details={"late_consecutive_cos": late_cos.tolist(), "step_ratio": [float(r) for r in ratios]},
    )


@pytest.mark.claim(id="T1", source="[Fort] Fig. 2a; [WB]")
@pytest.mark.parametrize("setting", setting_params())
def test_t1_snapshots_converge_in_weight_space(setting, trained_runs, record_evidence):
    runs = trained_runs(setting)
    evidence = t1_evidence([checkpoint_cosines(r) for r in runs], tuple(r.seed for r in runs), setting)
    record_evidence(evidence)
    assert evidence.passed, evidence.explain()


@pytest.mark.parametrize("setting", setting_params(("smoke",)))
def test_t1_negative_control_time_shuffled_snapshots_fail(setting, trained_runs):
    # Relabel each run's checkpoints in a random temporal order: no convergence is left, so the
    # decision must fail on (nearly) every shuffle. One shuffle may pass by chance; the rate may not.
    runs = trained_runs(setting)
    cosines = [checkpoint_cosines(r) for r in runs]
    rng = np.random.default_rng(0)
    passes = 0
    for _ in range(N_SHUFFLES):
        shuffled = []
        for gram in cosines:
            order = rng.permutation(len(gram))
            shuffled.append(gram[np.ix_(order, order)])
        passes += t1_evidence(shuffled, tuple(r.seed for r in runs), setting).passed
    assert passes / N_SHUFFLES <= NULL_PASS_RATE_MAX, (
        f"T1's decision passed {passes} of {N_SHUFFLES} time-shuffled trajectories of {setting}")
