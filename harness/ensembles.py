"""Combining the predictions of ensemble members, and metrics against ensemble size.

=============== ================================================================== ==============
combiner        ensemble probability of class c for example n                      source
=============== ================================================================== ==============
``mean``        mean_m p_mnc (average of the members' probabilities)               [Fort] Sec. 5
``vote``        fraction of members whose argmax is c (majority vote)              [WB]
``trimmed_mean`` mean of p_mnc over the members left after dropping the            [Trim]
                floor(trim * M) lowest and highest values, rows renormalised
=============== ================================================================== ==============

Conventions follow :mod:`harness.metrics`: probabilities are torch tensors or numpy arrays whose
rows (last axis) sum to 1; results are float64 torch tensors; argmax ties go to the lowest class
index. :func:`subset_curves` gives accuracy, Brier and NLL (as :func:`harness.scoring.brier_score_loss`
and :func:`harness.scoring.nll` define them) against the ensemble size k = 1..M.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from harness import settings
from harness.scoring import NLL_EPS
from harness.stats import seed_subsets
from harness.validation import as_labels, as_probs, check_int

__all__ = ["COMBINERS", "ENSEMBLE_SIZE", "MAX_SUBSETS", "SubsetCurves", "ensemble_probs", "ensemble_size",
           "subset_curves", "subset_metrics"]

COMBINERS = ("mean", "vote", "trimmed_mean")
# Subsets per ensemble size before subset_curves samples instead of enumerating: 256 covers every
# size of 10 members exhaustively (the largest, C(10, 5), is 252), the gpu tier's ensembles.
MAX_SUBSETS = 256
# Elements (subsets x members x examples x classes) gathered at once by subset_curves: 2^24
# float64 values are 128 MiB, which bounds its memory whatever the number of subsets.
_CHUNK_ELEMENTS = 1 << 24

# Ensemble size K by tier, as N1's decision in docs/claims.md states: 5 runs in the smoke tier, 10 in
# the gpu tier ([WB]'s curve reaches 10). A decision over K-subsets needs K + 1 seeds (the jackknife
# leaves one out).
ENSEMBLE_SIZE = {"smoke": 5, "slow": 5, "gpu": 10}
# A dry run's ensembles (harness.settings.dry_run): K + 1 = harness.stats.MIN_SEEDS seeds suffice.
DRY_RUN_ENSEMBLE = 3


def _check_combiner(combiner: object, trim: object) -> None:
    if combiner not in COMBINERS:
        raise ValueError(f"combiner={combiner!r} is invalid: expected one of {COMBINERS}")
    if combiner == "trimmed_mean":
        if isinstance(trim, bool) or not isinstance(trim, (int, float)) or not 0 <= trim < 0.5:
            raise ValueError(f"trim={trim!r} is invalid: combiner='trimmed_mean' needs a fraction in [0, 0.5)")
    elif trim is not None:
        raise ValueError(f"trim={trim!r} is given, but trim applies to combiner='trimmed_mean' only, "
                         f"not {combiner!r}")


def _combine(p: torch.Tensor, combiner: str, trim: float | None) -> torch.Tensor:
    """Combine validated float64 member probabilities (..., M, N, C) along the member axis -> (..., N, C)."""
    m = p.shape[-3]
    if combiner == "mean":
        return p.mean(-3)
    if combiner == "vote":
        votes = F.one_hot(p.argmax(-1), p.shape[-1]).double()  # argmax ties: lowest class index
        return votes.mean(-3)
    cut = math.floor(trim * m)
    kept = p.sort(dim=-3).values.narrow(-3, cut, m - 2 * cut).mean(-3)
    sums = kept.sum(-1, keepdim=True)
    uniform = torch.full_like(kept, 1.0 / kept.shape[-1])
    # A row is all zeros only when the members put their mass on different classes and trimming
    # removed every class's support: nothing is left to prefer a class, so the row is uniform.
    return torch.where(sums > 0, kept / sums.clamp_min(torch.finfo(kept.dtype).tiny), uniform)


def ensemble_probs(probs: torch.Tensor | np.ndarray, combiner: str = "mean",
                   trim: float | None = None) -> torch.Tensor:
    """The ensemble's predicted probabilities from its members'.

    Parameters
    ----------
    probs : torch.Tensor or numpy.ndarray, shape (M, N, C)
        Probabilities of M >= 1 members on N examples of C classes.
    combiner : {"mean", "vote", "trimmed_mean"}
        ``"mean"``: average of the members' probabilities ([Fort], the deep-ensembles rule).
        ``"vote"``: majority vote as a distribution, the fraction of members whose argmax is each
        class. A member's own argmax ties go to its lowest class index; ties between classes in
        the vote are kept as equal fractions (two votes each for classes 1 and 3 give 0.5 and
        0.5), and the argmax of the result then picks the lowest of the tied classes.
        ``"trimmed_mean"``: per example and class, the mean over the members left after dropping
        the ``floor(trim * M)`` lowest and as many highest values, rows renormalised to sum to 1
        (a row with no mass left becomes uniform). With ``floor(trim * M) = 0`` it is the mean.
    trim : float in [0, 0.5), optional
        Fraction trimmed at each end; required for ``"trimmed_mean"``, rejected otherwise.

    Returns
    -------
    torch.Tensor, shape (N, C), float64
        Rows sum to 1.

    Raises
    ------
    ValueError
        For a shape other than (M, N, C), an empty axis, entries that are not probabilities, an
        unknown combiner, or a missing or out-of-range ``trim``.
    """
    _check_combiner(combiner, trim)
    return _combine(as_probs(probs, "probs", "(M, N, C)"), combiner, trim)


@dataclass(frozen=True)
class SubsetCurves:
    """Accuracy, Brier and NLL of k-member ensembles, k = 1..M, averaged over k-subsets.

    Every attribute is a tuple with one entry per size k = 1..M (JSON-able via :meth:`to_dict`).

    Attributes
    ----------
    sizes : tuple of int
        The ensemble sizes 1..M.
    accuracy, brier, nll : tuple of float
        Mean over the k-subsets evaluated of the ensemble's metric.
    accuracy_std, brier_std, nll_std : tuple of float
        Standard deviation over those subsets (ddof 0; 0 at k = M, which has one subset).
    n_subsets : tuple of int
        Subsets evaluated at each size.
    exhaustive : tuple of bool
        True where every k-subset was evaluated, False where a seeded random sample was.
    """

    sizes: tuple[int, ...]
    accuracy: tuple[float, ...]
    brier: tuple[float, ...]
    nll: tuple[float, ...]
    accuracy_std: tuple[float, ...]
    brier_std: tuple[float, ...]
    nll_std: tuple[float, ...]
    n_subsets: tuple[int, ...]
    exhaustive: tuple[bool, ...]

    def to_dict(self) -> dict:
        return {key: list(value) for key, value in asdict(self).items()}


def subset_curves(probs: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray,
                  max_subsets: int = MAX_SUBSETS, seed: int = 0, combiner: str = "mean",
                  trim: float | None = None) -> SubsetCurves:
    """Metrics of ensembles of k of the M members against k, averaged over k-subsets.

    For each size k, every k-subset of the members is evaluated when there are at most
    ``max_subsets`` of them (C(M, k) <= max_subsets; with the default, always for M <= 10), and
    otherwise ``max_subsets`` subsets drawn independently and uniformly at random (with
    replacement across draws) from a generator seeded with ``seed``, so that the result is
    reproducible. Members are gathered by indexing with the subsets' member indices and combined
    in batches of subsets, never looping over examples.

    Parameters
    ----------
    probs : torch.Tensor or numpy.ndarray, shape (M, N, C)
        Probabilities of M >= 1 members.
    labels : torch.Tensor or numpy.ndarray, shape (N,), int in [0, C)
    max_subsets : int >= 1
    seed : int
        Seed of the subset sampling (used only at sizes that are sampled).
    combiner, trim
        As in :func:`ensemble_probs`.

    Returns
    -------
    SubsetCurves
        Curves over k = 1..M. At k = 1 they are the mean of the members' metrics, at k = M the
        full ensemble's.

    Raises
    ------
    ValueError
        For invalid probabilities or labels (as :func:`ensemble_probs`), labels whose length is
        not N, a ``max_subsets`` that is not a positive int, or a bad combiner.
    """
    _check_combiner(combiner, trim)
    max_subsets = check_int("max_subsets", max_subsets, 1)
    p = as_probs(probs, "probs", "(M, N, C)")
    m, n, c = p.shape
    y = as_labels(labels, "labels", c).to(p.device)
    if len(y) != n:
        raise ValueError(f"probs and labels must have the same number of examples; got {n} and {len(y)}")
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {key: [] for key in ("accuracy", "brier", "nll", "accuracy_std", "brier_std",
                                                 "nll_std", "n_subsets", "exhaustive")}
    for k in range(1, m + 1):
        subsets = seed_subsets(m, k, max_subsets, rng)
        metrics = subset_metrics(p, y, subsets, combiner, trim)
        values = torch.stack([metrics[key] for key in ("accuracy", "brier", "nll")], dim=1)  # (B, 3)
        mean, std = values.mean(0).tolist(), values.std(0, correction=0).tolist()
        for i, key in enumerate(("accuracy", "brier", "nll")):
            rows[key].append(mean[i])
            rows[f"{key}_std"].append(std[i])
        rows["n_subsets"].append(len(subsets))
        rows["exhaustive"].append(math.comb(m, k) <= max_subsets)
    return SubsetCurves(sizes=tuple(range(1, m + 1)), **{key: tuple(v) for key, v in rows.items()})


def subset_metrics(probs: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, subsets: np.ndarray,
                   combiner: str = "mean", trim: float | None = None) -> dict[str, torch.Tensor]:
    """Accuracy, Brier and NLL of the ensemble of each row of ``subsets``.

    Members are gathered by indexing and combined in batches of subsets (at most
    ``_CHUNK_ELEMENTS`` values at once), never looping over examples.

    Parameters
    ----------
    probs : torch.Tensor or numpy.ndarray, shape (M, N, C)
    labels : torch.Tensor or numpy.ndarray, shape (N,), int in [0, C)
    subsets : int array, shape (B, k)
        Member indices of each ensemble.
    combiner, trim
        As in :func:`ensemble_probs`.

    Returns
    -------
    dict of str to torch.Tensor
        ``"accuracy"``, ``"brier"``, ``"nll"``: float64, shape (B,).
    """
    _check_combiner(combiner, trim)
    p = as_probs(probs, "probs", "(M, N, C)")
    m, n, c = p.shape
    y = as_labels(labels, "labels", c).to(p.device)
    if len(y) != n:
        raise ValueError(f"probs and labels must have the same number of examples; got {n} and {len(y)}")
    index = torch.as_tensor(np.asarray(subsets), dtype=torch.int64, device=p.device)
    if index.ndim != 2 or len(index) == 0 or index.min() < 0 or index.max() >= m:
        raise ValueError(f"subsets must be a non-empty (B, k) array of member indices in [0, {m}); "
                         f"got shape {tuple(index.shape)}")
    onehot = F.one_hot(y, c).double()
    per_chunk = max(1, _CHUNK_ELEMENTS // (index.shape[1] * n * c))
    values = []
    for chunk in index.split(per_chunk):
        ens = _combine(p[chunk], combiner, trim)  # (B, N, C)
        values.append(torch.stack([
            (ens.argmax(-1) == y).double().mean(-1),
            (ens - onehot).square().sum(-1).mean(-1),
            0.0 - ens.gather(-1, y.expand(len(chunk), n)[..., None]).squeeze(-1).clamp_min(NLL_EPS).log().mean(-1),
        ], dim=1))
    values = torch.cat(values)
    return {"accuracy": values[:, 0], "brier": values[:, 1], "nll": values[:, 2]}


def ensemble_size(setting: str) -> int:
    """K, the ensemble size of the tier of the registered setting ``setting`` (:data:`DRY_RUN_ENSEMBLE` at
    most in a dry run)."""
    spec = settings.get(setting)
    return min(ENSEMBLE_SIZE[spec.tier], DRY_RUN_ENSEMBLE) if spec.dry_run else ENSEMBLE_SIZE[spec.tier]
