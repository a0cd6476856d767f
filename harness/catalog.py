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
        "quarter's, in every seed; late consecutive cos >= 0.95 (lower 95% bound over seeds)",
        "cosine over conv/dense kernels only (as [WB]); [Fort] included biases"),
    ClaimInfo(
        "T2", "moving away from the initialisation",
        "Late checkpoints differ most from the initialisation.",
        "[WB]", "[WB] cos(theta_0, theta_E) ~ 0.62 SmallCNN, ~ 0.74 ResNet",
        "cos(theta_0, theta_e) decreases with e: mean Spearman rho over seeds <= -0.8 (upper 95% bound)"),
    ClaimInfo(
        "T3", "trajectory converges in function space",
        "Snapshots of one run grow more similar in function space toward convergence.",
        "[Fort] Fig. 2b; [WB]", "[WB] late pairs disagree 0.05-0.15; epoch 0 vs late ~0.45-0.55",
        "d(p_e, p_e+1) over the last quarter <= 0.5 x the first quarter's; d(p_1, p_E) > d(p_E-1, p_E)"),
    ClaimInfo(
        "I1", "independent solutions orthogonal",
        "Solutions from independent initialisations are nearly orthogonal in weight space.",
        "[Fort] Fig. 3; [WB]", "cos ~ 0-0.05 (CNNs); 1/sqrt(D) for random vectors",
        "mean cross-seed cosine of the final weights <= 0.1 (upper 95% bound) and <= late within-run "
        "cosine - 0.5; nulls recorded: cosine at initialisation, cos(theta, permuted theta)",
        "cosine over conv/dense kernels only; the all-parameter cosine is recorded beside it"),
    ClaimInfo(
        "I2", "independent solutions disagree",
        "Independent solutions disagree on a large fraction of inputs, about their error rate, far more than "
        "late snapshots of one run.",
        "[Fort] Fig. 3, 5; [WB]; [GDE]", "normalised diversity ~0.85-1.0 [Fort]; [WB] 0.25-0.29 vs late 0.05-0.15",
        "mean normalised diversity d / (1 - acc) over pairs >= 0.5 (lower 95% bound); cross-seed d >= 1.5 x "
        "late within-run d",
        "normalised diversity averaged over both directions of a pair (the official code's is asymmetric)"),
    ClaimInfo(
        "I3", "error sets depend on the initialisation",
        "The set of misclassified examples depends on the initialisation.",
        "[WB] 'intrinsically hard examples'", "-",
        "Jaccard overlap of error sets between independent runs < between the last two snapshots of one run"),
    ClaimInfo(
        "F1", "trajectories fan out in function space",
        "Trajectories start close in function space and end in different regions.",
        "[Fort] Fig. 2c, 4; [WB] t-SNE", "3 trajectories fan out into 3 clusters",
        "nearest-neighbour purity of late checkpoints (own run) >= 0.9; between-run distance after epoch 1 < "
        "at the last epoch",
        "decided in prediction space (disagreement, total variation), not on t-SNE coordinates; the joint t-SNE "
        "of all checkpoints is for the figure only"),
    ClaimInfo(
        "S1", "subspace samples stay in their mode",
        "Subspace samples (random direction, dropout, diagonal and low-rank Gaussian) stay within the mode of "
        "their own solution.",
        "[Fort] Fig. 4", "the clouds stay next to their own end point",
        "per sampler at ensemble scales: >= 95% of samples closer in function space to their own centre than to "
        "any other independent solution (lower 95% bound over seeds)",
        "scales relative to |theta*| (random) or to the late checkpoints' spread (Gaussians), not the official "
        "absolute radii; 8 samples per run in the smoke tier (official: 30)"),
    ClaimInfo(
        "S2", "subspace diversity below independent runs",
        "At equal accuracy, no subspace sampler reaches the diversity of independent solutions.",
        "[Fort] Fig. 5", "independent ~0.85-1.0 normalised diversity; subspace samples on a lower curve",
        "per sampler at plane scales: among samples within 5 points of the independent runs' accuracy, mean "
        "normalised diversity <= 0.7 x the independent runs' (upper 95% bound over seeds)",
        "plane scales calibrated on the smoke settings to reach near-chance accuracy, plus draws that spread "
        "over the accuracy band; 8 + 8 samples per run in the smoke tier (official: 50)"),
    ClaimInfo(
        "N1", "ensemble accuracy rises, then plateaus",
        "Accuracy rises with ensemble size with diminishing returns, then plateaus; Brier and NLL fall.",
        "[WB]; [Fort] Sec. 5",
        "[WB] SmallCNN 62.7 -> 66.8 (2) -> 68.1 (4) -> 68.9 (6) -> 68.5 (10); MediumCNN 78.2 -> 83.2 (10); "
        "ResNet 86.6 -> 89.9",
        "over all k-subsets: acc(K) - acc(1) > 0; 2-run gain > 0 (lower 95% bound); gain(1->2) >= "
        "gain(K-1->K); last gain <= 0.25 x first gain; Brier and NLL fall",
        "the bound is on the mean 2-run gain (a bootstrap resample of seeds holds fewer distinct runs)"),
    ClaimInfo(
        "N2", "ensembles beat weight averaging and subspace ensembles",
        "An ensemble of independent runs beats weight averaging and subspace ensembles of one run.",
        "[Fort] Sec. 5", "ensembling gives the largest gain",
        "the K-run ensemble has higher accuracy and lower Brier than the best run's weight average, the best "
        "run's subspace ensemble of each sampler, and the best single run",
        "comparison with the best single run added (without it, copies of one run pass where WA and subspace "
        "ensembles are worse than one run); subspace ensembles of 8 samples in the smoke tier (official: 30)"),
    ClaimInfo(
        "N3", "subspace sampling and ensembling are complementary",
        "Subspace sampling and ensembling are complementary; the extra gain shrinks as ensembles grow.",
        "[Fort] Sec. 5", "small gains on top of ensembles",
        "ensemble of subspace ensembles >= plain ensemble at each size k (accuracy); its gain at k = K <= its "
        "gain at k = 1",
        "a run's subspace ensemble is the mean of its samples (8 in the smoke tier, official 30) at ensemble "
        "scales; accuracy ties count as 'not worse'"),
)

CATALOG: dict[str, ClaimInfo] = {c.id: c for c in _ENTRIES}
