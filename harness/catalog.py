"""The claims catalog: each claim's statement, source, source numbers, thresholds and decision.

This module is the one home of those facts. One :class:`ClaimInfo` per claim id of the catalog
(``docs/claims.md``, rendered from this module by ``python -m harness.catalog_doc``) that has a test
under ``claims/``; the report (``reports/``) prints it beside the measured evidence. The decision
thresholds are the named constants below, grouped by claim, each after a ``#:`` comment that gives
its provenance (the catalog document prints it); the claim modules import them from here, and
each entry's ``decision`` text is built from them, so that the text cannot state another threshold
than the test uses (:data:`THRESHOLDS` names each claim's constants; ``tests/test_catalog.py``
checks both). ``Evidence(source=...)`` of a claim is its entry's :attr:`ClaimInfo.citation`. A
test's ``@pytest.mark.claim(id=...)`` must name an id of :data:`CATALOG`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = [
    "CATALOG", "ClaimInfo", "THRESHOLDS",
    "T1_LATE_CONSECUTIVE_COS_MIN", "STEP_RATIO_MAX", "T2_SPEARMAN_MAX",
    "I1_CROSS_COS_MAX", "I1_WITHIN_MINUS_CROSS_MIN", "I2_NORMALIZED_DIVERSITY_MIN", "I2_CROSS_OVER_WITHIN_MIN",
    "I3_OVERLAP_GAP_MIN", "F1_PURITY_MIN",
    "W1_NOISE_MULTIPLE",
    "S1_OWN_MODE_FRACTION_MIN", "S2_DIVERSITY_RATIO_MAX", "S2_ACCURACY_BAND",
    "N1_GAIN_MIN", "N1_LAST_OVER_FIRST_GAIN_MAX",
    "ALPHA_CLOSE", "A1_TREND_MAX", "A3_SEPARATION_MIN", "P3_GAIN_MIN", "X1_CORRUPTIONS", "X1_GAIN_MIN",
]

# ----------------------------------------------------------------------------------------------
# Decision thresholds, fixed before any measurement (claims/test_*.py import them from here).

# T1, T2, T3 (claims/test_trajectory.py)
#: [WB]: consecutive cosine > 0.95 after ~epoch 10 of SmallCNN training.
T1_LATE_CONSECUTIVE_COS_MIN = 0.95
#: The catalog's suggested decisions of T1 and T3: "grow more similar" read as late steps at most
#: half the size of early ones.
STEP_RATIO_MAX = 0.5
#: The catalog's suggested decision of T2: a strong monotone decrease of cos(theta_0, theta_e) with e.
T2_SPEARMAN_MAX = -0.8

# I1, I2, I3, F1 (claims/test_independent_runs.py)
#: [Fort] Fig. 3 / [WB]: cross-seed cosine ~0-0.05; the catalog's suggested decision allows up to 0.1.
I1_CROSS_COS_MAX = 0.1
#: The catalog's suggested decision of I1: late within-run cosine at least 0.5 above the cross-seed cosine.
I1_WITHIN_MINUS_CROSS_MIN = 0.5
#: [Fort] Fig. 5 reports 0.85-1.0; the catalog's suggested decision asks for at least 0.5.
I2_NORMALIZED_DIVERSITY_MIN = 0.5
#: The catalog's suggested decision of I2: cross-seed disagreement at least 1.5 x the late within-run
#: disagreement.
I2_CROSS_OVER_WITHIN_MIN = 1.5
#: I3: the within-run error overlap must exceed the cross-seed one (a difference above zero).
I3_OVERLAP_GAP_MIN = 0.0
#: The catalog's suggested decision of F1: nearest-neighbour purity of late checkpoints.
F1_PURITY_MIN = 0.9

# W1 (claims/test_window.py)
#: "Within noise": one binomial standard error of the final test accuracy, in each direction.
W1_NOISE_MULTIPLE = 1.0

# S1, S2 (claims/test_subspaces.py)
#: The catalog's suggested decision of S1: at least 95% of samples closer to their own centre than to
#: any other solution.
S1_OWN_MODE_FRACTION_MIN = 0.95
#: The catalog's suggested decision of S2: near-accuracy subspace diversity at most 0.7 x the
#: independent runs'.
S2_DIVERSITY_RATIO_MAX = 0.7
#: "Near the independent runs' accuracy": within 5 points of their mean test accuracy (fixed before
#: any measurement; the spread of independent runs' accuracies on the smoke settings is ~1-2 points).
S2_ACCURACY_BAND = 0.05

# N1 (claims/test_ensembling.py; N2 and N3 compare with 0)
#: The catalog's suggested decision of N1: the ensemble must beat its members, acc(K) - acc(1) > 0.
N1_GAIN_MIN = 0.0
#: The catalog's suggested decision of N1: the last step's gain, acc(K) - acc(K-1), at most 0.25 x the
#: first, acc(2) - acc(1). [WB] SmallCNN: first gain 4.1 points, 6 -> 10 members -0.4 points.
N1_LAST_OVER_FIRST_GAIN_MAX = 0.25

# A1, A2, A3 (claims/test_seed_variability.py); [Banerjee]'s abstracts give no numbers.
#: The catalog's suggested decision of A1: "alpha-close" is an alpha-trimming level of at most 0.05
#: (the third step of the authors' grid); A2's excess over the null (a seed against itself) must
#: stay below it.
ALPHA_CLOSE = 0.05
#: A1 "approaches as M grows": the K-run ensemble's distance to its mixture below the 2-run ones'.
A1_TREND_MAX = 0.0
#: A3 "above every ordinary seed's": the odd model's level minus the largest of its group's seeds > 0.
A3_SEPARATION_MIN = 0.0

# P3 (claims/test_alignment.py)
#: Alignment raises the cosine and lowers the barrier (differences above 0); the aligned
#: disagreement stays above I2_CROSS_OVER_WITHIN_MIN x the late within-run one.
P3_GAIN_MIN = 0.0

# X1 (claims/test_dataset_shift.py)
#: The catalog's two corruptions (harness.corruptions has more), at severities 1-5.
X1_CORRUPTIONS = ("gaussian_noise", "shot_noise")
#: Every comparison is a sign: Brier gain below 0, JS differences and the trend above 0.
X1_GAIN_MIN = 0.0

THRESHOLDS: dict[str, tuple[str, ...]] = {
    "T1": ("T1_LATE_CONSECUTIVE_COS_MIN", "STEP_RATIO_MAX"),
    "T2": ("T2_SPEARMAN_MAX",),
    "T3": ("STEP_RATIO_MAX",),
    "I1": ("I1_CROSS_COS_MAX", "I1_WITHIN_MINUS_CROSS_MIN"),
    "I2": ("I2_NORMALIZED_DIVERSITY_MIN", "I2_CROSS_OVER_WITHIN_MIN"),
    "I3": ("I3_OVERLAP_GAP_MIN",),
    "F1": ("F1_PURITY_MIN",),
    "W1": ("W1_NOISE_MULTIPLE",),
    "S1": ("S1_OWN_MODE_FRACTION_MIN",),
    "S2": ("S2_DIVERSITY_RATIO_MAX", "S2_ACCURACY_BAND"),
    "N1": ("N1_GAIN_MIN", "N1_LAST_OVER_FIRST_GAIN_MAX"),
    "N2": (),
    "N3": (),
    "A1": ("A1_TREND_MAX", "ALPHA_CLOSE"),
    "A2": ("ALPHA_CLOSE",),
    "A3": ("A3_SEPARATION_MIN",),
    "P3": ("P3_GAIN_MIN", "I2_CROSS_OVER_WITHIN_MIN"),
    "X1": ("X1_GAIN_MIN",),
}
"""Claim id -> names of the threshold constants above that its decision (and its text) uses."""


@dataclass(frozen=True)
class ClaimInfo:
    """One claim of the catalog.

    Attributes
    ----------
    id : str
        Catalog id (docs/claims.md), e.g. "T1".
    title : str
        A short name for tables.
    statement : str
        What the source claims.
    source : str
        Where (paper figure or section).
    reference : str
        The source's numbers ("-" when it gives none).
    decision : str
        How the harness decides it, built from the threshold constants of this module.
    deviations : str
        Where our test differs from the source's measurement ("" when it does not).
    """

    id: str
    title: str
    statement: str
    source: str
    reference: str
    decision: str
    deviations: str = ""

    @property
    def citation(self) -> str:
        """Where the claim comes from and the source's numbers, for ``Evidence(source=...)``."""
        if self.reference.strip() in ("", "-"):
            return self.source
        return f"{self.source}: {self.reference}"

    def to_dict(self) -> dict:
        return asdict(self)


_ENTRIES = (
    ClaimInfo(
        "T1", "trajectory converges in weight space",
        "Snapshots of one run grow more similar in weight space toward convergence.",
        "[Fort] Fig. 2a; [WB]", "[WB] SmallCNN: consecutive cos > 0.95 after ~epoch 10",
        f"step distance 1 - cos(theta_e, theta_e+1) over the last quarter of epochs <= {STEP_RATIO_MAX:g} x the "
        f"first quarter's (mean over seeds, upper bound); late consecutive cos >= {T1_LATE_CONSECUTIVE_COS_MIN:g} "
        "(mean over seeds, lower bound)",
        "cosine over conv/dense kernels only (as [WB]); [Fort] included biases; the step ratio is a mean over "
        "seeds, not a worst seed"),
    ClaimInfo(
        "T2", "moving away from the initialisation",
        "Late checkpoints differ most from the initialisation.",
        "[WB]", "[WB] cos(theta_0, theta_E) ~ 0.62 SmallCNN, ~ 0.74 ResNet",
        f"cos(theta_0, theta_e) decreases with e: mean Spearman rho over seeds <= {T2_SPEARMAN_MAX:g} (upper bound)"),
    ClaimInfo(
        "T3", "trajectory converges in function space",
        "Snapshots of one run grow more similar in function space toward convergence.",
        "[Fort] Fig. 2b; [WB]", "[WB] late pairs disagree 0.05-0.15; epoch 0 vs late ~0.45-0.55",
        f"d(p_e, p_e+1) over the last quarter <= {STEP_RATIO_MAX:g} x the first quarter's (mean over seeds, upper "
        "bound); d(p_1, p_E) - d(p_E-1, p_E) > 0 (mean over seeds, lower bound)",
        "means over seeds with intervals, not 'in every seed'"),
    ClaimInfo(
        "I1", "independent solutions orthogonal",
        "Solutions from independent initialisations are nearly orthogonal in weight space.",
        "[Fort] Fig. 3; [WB]", "cos ~ 0-0.05 (CNNs); 1/sqrt(D) for random vectors",
        f"mean cross-seed cosine of the final weights <= {I1_CROSS_COS_MAX:g} (upper bound) and <= late within-run "
        f"cosine - {I1_WITHIN_MINUS_CROSS_MIN:g}; nulls recorded: cosine at initialisation, cos(theta, permuted theta)",
        "cosine over conv/dense kernels only; the all-parameter cosine is recorded beside it"),
    ClaimInfo(
        "I2", "independent solutions disagree",
        "Independent solutions disagree on a large fraction of inputs, about their error rate, far more than "
        "late snapshots of one run.",
        "[Fort] Fig. 3, 5; [WB]; [GDE]", "normalised diversity ~0.85-1.0 [Fort]; [WB] 0.25-0.29 vs late 0.05-0.15",
        f"mean normalised diversity d / (1 - acc) over pairs >= {I2_NORMALIZED_DIVERSITY_MIN:g} (lower bound); "
        f"cross-seed d - {I2_CROSS_OVER_WITHIN_MIN:g} x late within-run d >= 0 (lower bound)",
        "normalised diversity averaged over both directions of a pair (the official code's is asymmetric)"),
    ClaimInfo(
        "I3", "error sets depend on the initialisation",
        "The set of misclassified examples depends on the initialisation.",
        "[WB] 'intrinsically hard examples'", "-",
        "Jaccard overlap of error sets between the last two snapshots of one run minus between independent "
        f"runs > {I3_OVERLAP_GAP_MIN:g} (lower bound)"),
    ClaimInfo(
        "F1", "trajectories fan out in function space",
        "Trajectories start close in function space and end in different regions.",
        "[Fort] Fig. 2c, 4; [WB] t-SNE", "3 trajectories fan out into 3 clusters",
        f"nearest-neighbour purity of late checkpoints (own run) >= {F1_PURITY_MIN:g} (mean over runs, lower bound); "
        "between-run distance at the last epoch minus after epoch 1 > 0 (mean over pairs, lower bound)",
        "decided in prediction space (disagreement, total variation), not on t-SNE coordinates; the joint t-SNE "
        "of the first 5 runs is for the figure only; means with intervals, not 'every pair'"),
    ClaimInfo(
        "W1", "the subspace window is flat",
        "The Gaussians and the weight average are fitted in a flat, converged tail of the run, after the last "
        "learning-rate halving (the precondition of S1, S2, N2 and N3).",
        "[Fort] official code", "checkpoints of epochs 30-39 of 40, at the last learning rate",
        "test accuracy of the last minus the first window snapshot within +- noise, noise = "
        f"{W1_NOISE_MULTIPLE:g} x the binomial standard error of the final accuracy (mean over seeds, both bounds); "
        "weight average minus final run >= -noise (lower bound)",
        "a protocol check, not a claim of the paper; smoke windows take 3 snapshots per epoch over the last 4 "
        "epochs (official: 10 epoch ends)"),
    ClaimInfo(
        "S1", "subspace samples stay in their mode",
        "Subspace samples (random direction, dropout, diagonal and low-rank Gaussian) stay within the mode of "
        "their own solution.",
        "[Fort] Fig. 4", "the clouds stay next to their own end point",
        f"per sampler at ensemble scales: >= {S1_OWN_MODE_FRACTION_MIN:.0%} of samples closer in function space to "
        "their own centre than to each of the n_seeds - 1 independent runs that follow it (mean over seeds, lower "
        "bound: the wider of the seed bootstrap's and the pooled samples' binomial one)",
        "scales relative to |theta*| (random) or to the window snapshots' spread (Gaussians), not the official "
        "absolute radii; 8 samples per run in the smoke tier (official: 30)"),
    ClaimInfo(
        "S2", "subspace diversity below independent runs",
        "At equal accuracy, no subspace sampler reaches the diversity of independent solutions.",
        "[Fort] Fig. 5", "independent ~0.85-1.0 normalised diversity; subspace samples on a lower curve",
        f"per sampler at plane scales: among samples within {100 * S2_ACCURACY_BAND:g} points of the independent "
        f"runs' accuracy, mean normalised diversity <= {S2_DIVERSITY_RATIO_MAX:g} x the independent runs' (upper "
        "bound over seeds)",
        "plane scales calibrated on the smoke settings to reach near-chance accuracy, plus draws that spread "
        "over the accuracy band; 8 + 8 samples per run in the smoke tier (official: 50)"),
    ClaimInfo(
        "N1", "ensemble accuracy rises, then plateaus",
        "Accuracy rises with ensemble size with diminishing returns, then plateaus; Brier and NLL fall.",
        "[WB]; [Fort] Sec. 5",
        "[WB] SmallCNN 62.7 -> 66.8 (2) -> 68.1 (4) -> 68.9 (6) -> 68.5 (10); MediumCNN 78.2 -> 83.2 (10); "
        "ResNet 86.6 -> 89.9",
        "K = 5 (smoke) or 10 (gpu) runs, means over K-subsets of the seeds with jackknife bounds: "
        f"acc(K) - acc(1) > {N1_GAIN_MIN:g}; gain(1->2) - gain(K-1->K) >= 0; last gain - "
        f"{N1_LAST_OVER_FIRST_GAIN_MAX:g} x first gain <= 0; Brier(K) - Brier(1) < 0; NLL(K) - NLL(1) < 0",
        "K fixed by tier (more seeds give more subsets, not bigger ensembles); the catalog's K was all runs"),
    ClaimInfo(
        "N2", "ensembles beat weight averaging and subspace ensembles",
        "An ensemble of independent runs beats weight averaging and subspace ensembles of one run.",
        "[Fort] Sec. 5", "ensembling gives the largest gain",
        "K-run ensembles have higher accuracy and lower Brier than their runs' weight averages, their runs' "
        "subspace ensembles of each sampler, and their runs themselves (means over K-subsets, jackknife bounds)",
        "comparison with the single runs added (without it, copies of one run pass where WA and subspace "
        "ensembles are worse than one run); means instead of the best run's comparator; subspace ensembles of "
        "8 samples in the smoke tier (official: 30)"),
    ClaimInfo(
        "N3", "subspace sampling and ensembling are complementary",
        "Subspace sampling and ensembling are complementary; the extra gain shrinks as ensembles grow.",
        "[Fort] Sec. 5", "small gains on top of ensembles",
        "per sampler: accuracy gain of a run's subspace ensemble over the run >= 0 (mean over seeds); gain of "
        "K-run ensembles of subspace ensembles over plain K-run ensembles >= 0; gain at K - gain at 1 <= 0",
        "a run's subspace ensemble is the mean of its samples (8 in the smoke tier, official 30) at ensemble "
        "scales; accuracy ties count as 'not worse'; the two ends k = 1 and K of the curve, not every k"),
    ClaimInfo(
        "X1", "ensembles keep their edge under dataset shift",
        "Under corruption, accuracy falls, ensembles keep their advantage, and diversity among independent runs "
        "stays far above within-trajectory and subspace diversity, growing with intensity.",
        "[Fort] Fig. (CIFAR-10-C)",
        "JS diversity, severity 1 -> 5: independent 0.273 -> 0.377, trajectory 0.091 -> 0.147, diagonal Gaussian "
        "0.022 -> 0.035",
        f"per corruption ({', '.join(X1_CORRUPTIONS)}) and severity 1-5: Brier of K-run ensembles minus their runs' "
        f"< {X1_GAIN_MIN:g} (K-subsets); JS of L independent runs minus their L-checkpoint trajectories' > "
        f"{X1_GAIN_MIN:g} (L-subsets); a trajectory's JS minus that of L of its diagonal-Gaussian samples > "
        f"{X1_GAIN_MIN:g} (mean over seeds); per corruption, JS of independent runs at severity 5 minus 1 > "
        f"{X1_GAIN_MIN:g}; all with bounds",
        "corruptions computed here with [HD19]'s constants on our test sets (not the published CIFAR-10-C files); "
        "synthetic images mapped to [0, 1] by the generated set's range; trajectory = the ends of the L window "
        "epochs, and every JS over L models (JS grows with the member count)"),
    ClaimInfo(
        "P3", "aligned solutions stay different functions",
        "Independent solutions stay different functions after permutation alignment: weight matching raises their "
        "cosine and lowers the linear-interpolation loss barrier, but their disagreement is unchanged.",
        "[ReBasin] (weight matching), beyond [Fort]", "narrow networks keep a barrier after matching",
        f"over pairs of seeds, run j weight-matched onto run i: aligned minus raw kernel cosine > {P3_GAIN_MIN:g}; raw "
        f"minus aligned test-loss barrier on the linear path > {P3_GAIN_MIN:g}; disagreement with the aligned "
        f"run minus {I2_CROSS_OVER_WITHIN_MIN:g} x the late within-run disagreement > {P3_GAIN_MIN:g} (means over "
        "pairs and seeds, bounds)",
        "barriers on the test split; 'far above late snapshots' reuses I2's multiple; BatchNorm statistics recomputed "
        "on the training split at every point of a path"),
    ClaimInfo(
        "A1", "an ensemble's outputs approach its members' mixture",
        "The output distribution of an ensemble of M seeds approaches the average of its members' distributions "
        "as M grows, which tells how many seeds to sample.",
        "[Banerjee] arXiv 2406.08307", "-",
        "per K-subset of the seeds: KS distance d_K (alpha = 0) of the K-run ensemble (mean logits) to its members' "
        f"mixture minus the mean of its 2-run sub-ensembles' < {A1_TREND_MAX:g} (jackknife upper bound); recorded: "
        f"d_K and alpha_hat against M, the smallest M with alpha_hat <= {ALPHA_CLOSE:g}",
        "scalar output: the logit gap (two classes) or the margin top-1 minus top-2 logit (more: our extension); the "
        "reference ECDF is the step ECDF (the authors interpolate it linearly) of the unclipped outputs (the "
        "authors set gaps beyond +-15 to 0); decided on d_K because alpha_hat cannot resolve distances below delta"),
    ClaimInfo(
        "A2", "seeds are alpha-close to other seeds",
        "Independently trained seeds are alpha-close to a reference built from other seeds.",
        "[Banerjee] arXiv 2310.00541", "-",
        "a seed's alpha_hat against a reference of the n_seeds - 1 seeds after it, minus the null (the seed's "
        f"alpha_hat against itself on disjoint example halves) <= {ALPHA_CLOSE:g} (mean over seeds, upper bound)",
        "every seed is a candidate against the seeds after it (the authors split the runs into candidates and one "
        "reference); the reference's pooled outputs stand for the authors' resampled average ECDF"),
    ClaimInfo(
        "A3", "alpha_hat separates what accuracy, churn and ECE do not",
        "The alpha-trimming level is more expressive than validation accuracy, churn or expected calibration error "
        "taken alone.",
        "[Banerjee] arXiv 2406.08307", "-",
        "odd model = a seed at its mirror temperature (same accuracy and predictions, the ECE of T = 1 on the "
        "test split, up to one step of the temperature grid): its alpha_hat minus the largest of the seeds in its "
        "group (the seed and its reference) "
        f"> {A3_SEPARATION_MIN:g} (mean over seeds, lower bound); its test ECE within the seeds' range (mean of the "
        "odd models' ECE >= the seeds' smallest and <= their largest, bounds)",
        "the 'model trained differently' is a temperature on the logits, chosen so that accuracy, churn and ECE "
        "cannot tell it from its seed"),
)

CATALOG: dict[str, ClaimInfo] = {c.id: c for c in _ENTRIES}
