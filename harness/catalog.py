"""The claims catalog as data: statement, source, reference numbers, decision and deviations.

One :class:`ClaimInfo` per claim id of CLAIMS.md that has a test under ``claims/``. The report
(``reports/``) prints these beside the measured evidence; the test modules keep the thresholds
(with their provenance) and the decisions themselves. A test's ``@pytest.mark.claim(id=...)`` must
name an id of :data:`CATALOG` (``tests/test_catalog.py`` checks every claim test).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["CATALOG", "ClaimInfo"]


@dataclass(frozen=True)
class ClaimInfo:
    """One claim of the catalog.

    Attributes
    ----------
    id : str
        CLAIMS.md id, e.g. "T1".
    title : str
        A short name for tables.
    statement : str
        What the source claims.
    source : str
        Where (paper figure or section).
    reference : str
        The source's numbers.
    decision : str
        How the harness decides it (thresholds named in the test module).
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

    def to_dict(self) -> dict:
        return asdict(self)


_ENTRIES = (
    ClaimInfo(
        "T1", "trajectory converges in weight space",
        "Snapshots of one run grow more similar in weight space toward convergence.",
        "[Fort] Fig. 2a; [WB]", "[WB] SmallCNN: consecutive cos > 0.95 after ~epoch 10",
        "step distance 1 - cos(theta_e, theta_e+1) over the last quarter of epochs <= 0.5 x the first "
        "quarter's (mean over seeds, upper bound); late consecutive cos >= 0.95 (mean over seeds, lower bound)",
        "cosine over conv/dense kernels only (as [WB]); [Fort] included biases; the step ratio is a mean over "
        "seeds, not a worst seed"),
    ClaimInfo(
        "T2", "moving away from the initialisation",
        "Late checkpoints differ most from the initialisation.",
        "[WB]", "[WB] cos(theta_0, theta_E) ~ 0.62 SmallCNN, ~ 0.74 ResNet",
        "cos(theta_0, theta_e) decreases with e: mean Spearman rho over seeds <= -0.8 (upper bound)"),
    ClaimInfo(
        "T3", "trajectory converges in function space",
        "Snapshots of one run grow more similar in function space toward convergence.",
        "[Fort] Fig. 2b; [WB]", "[WB] late pairs disagree 0.05-0.15; epoch 0 vs late ~0.45-0.55",
        "d(p_e, p_e+1) over the last quarter <= 0.5 x the first quarter's (mean over seeds, upper bound); "
        "d(p_1, p_E) - d(p_E-1, p_E) > 0 (mean over seeds, lower bound)",
        "means over seeds with intervals, not 'in every seed'"),
    ClaimInfo(
        "I1", "independent solutions orthogonal",
        "Solutions from independent initialisations are nearly orthogonal in weight space.",
        "[Fort] Fig. 3; [WB]", "cos ~ 0-0.05 (CNNs); 1/sqrt(D) for random vectors",
        "mean cross-seed cosine of the final weights <= 0.1 (upper bound) and <= late within-run "
        "cosine - 0.5; nulls recorded: cosine at initialisation, cos(theta, permuted theta)",
        "cosine over conv/dense kernels only; the all-parameter cosine is recorded beside it"),
    ClaimInfo(
        "I2", "independent solutions disagree",
        "Independent solutions disagree on a large fraction of inputs, about their error rate, far more than "
        "late snapshots of one run.",
        "[Fort] Fig. 3, 5; [WB]; [GDE]", "normalised diversity ~0.85-1.0 [Fort]; [WB] 0.25-0.29 vs late 0.05-0.15",
        "mean normalised diversity d / (1 - acc) over pairs >= 0.5 (lower bound); cross-seed d - 1.5 x "
        "late within-run d >= 0 (lower bound)",
        "normalised diversity averaged over both directions of a pair (the official code's is asymmetric)"),
    ClaimInfo(
        "I3", "error sets depend on the initialisation",
        "The set of misclassified examples depends on the initialisation.",
        "[WB] 'intrinsically hard examples'", "-",
        "Jaccard overlap of error sets between the last two snapshots of one run minus between independent "
        "runs > 0 (lower bound)"),
    ClaimInfo(
        "F1", "trajectories fan out in function space",
        "Trajectories start close in function space and end in different regions.",
        "[Fort] Fig. 2c, 4; [WB] t-SNE", "3 trajectories fan out into 3 clusters",
        "nearest-neighbour purity of late checkpoints (own run) >= 0.9 (mean over runs, lower bound); "
        "between-run distance at the last epoch minus after epoch 1 > 0 (mean over pairs, lower bound)",
        "decided in prediction space (disagreement, total variation), not on t-SNE coordinates; the joint t-SNE "
        "of the first 5 runs is for the figure only; means with intervals, not 'every pair'"),
    ClaimInfo(
        "W1", "the subspace window is flat",
        "The Gaussians and the weight average are fitted in a flat, converged tail of the run, after the last "
        "learning-rate halving (the precondition of S1, S2, N2 and N3).",
        "[Fort] official code", "checkpoints of epochs 30-39 of 40, at the last learning rate",
        "test accuracy of the last minus the first window snapshot within +- one binomial standard error of the "
        "final accuracy (mean over seeds, both bounds); weight average minus final run >= - that error (lower bound)",
        "a protocol check, not a claim of the paper; smoke windows take 3 snapshots per epoch over the last 4 "
        "epochs (official: 10 epoch ends)"),
    ClaimInfo(
        "S1", "subspace samples stay in their mode",
        "Subspace samples (random direction, dropout, diagonal and low-rank Gaussian) stay within the mode of "
        "their own solution.",
        "[Fort] Fig. 4", "the clouds stay next to their own end point",
        "per sampler at ensemble scales: >= 95% of samples closer in function space to their own centre than to "
        "any other independent solution (mean over seeds, lower bound)",
        "scales relative to |theta*| (random) or to the window snapshots' spread (Gaussians), not the official "
        "absolute radii; 8 samples per run in the smoke tier (official: 30)"),
    ClaimInfo(
        "S2", "subspace diversity below independent runs",
        "At equal accuracy, no subspace sampler reaches the diversity of independent solutions.",
        "[Fort] Fig. 5", "independent ~0.85-1.0 normalised diversity; subspace samples on a lower curve",
        "per sampler at plane scales: among samples within 5 points of the independent runs' accuracy, mean "
        "normalised diversity <= 0.7 x the independent runs' (upper bound over seeds)",
        "plane scales calibrated on the smoke settings to reach near-chance accuracy, plus draws that spread "
        "over the accuracy band; 8 + 8 samples per run in the smoke tier (official: 50)"),
    ClaimInfo(
        "N1", "ensemble accuracy rises, then plateaus",
        "Accuracy rises with ensemble size with diminishing returns, then plateaus; Brier and NLL fall.",
        "[WB]; [Fort] Sec. 5",
        "[WB] SmallCNN 62.7 -> 66.8 (2) -> 68.1 (4) -> 68.9 (6) -> 68.5 (10); MediumCNN 78.2 -> 83.2 (10); "
        "ResNet 86.6 -> 89.9",
        "K = 5 (smoke) or 10 (gpu) runs, means over K-subsets of the seeds with jackknife bounds: "
        "acc(K) - acc(1) > 0; gain(1->2) - gain(K-1->K) >= 0; last gain - 0.25 x first gain <= 0; "
        "Brier(K) - Brier(1) < 0; NLL(K) - NLL(1) < 0",
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
)

CATALOG: dict[str, ClaimInfo] = {c.id: c for c in _ENTRIES}
