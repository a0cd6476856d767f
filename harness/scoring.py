"""Scores of probabilistic predictions against the true labels: Brier, NLL, calibration error.

All three are losses (lower is better, 0 for one-hot probabilities on the true labels) and
registered metrics (properties and ranges in :mod:`harness.metrics`, whose conventions they
follow). ``brier_score`` is an alias of :func:`brier_score_loss`, the name that follows the
direction rule.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from harness.validation import as_labels, as_probs, check_int

__all__ = [
    "ECE_BINS",
    "NLL_EPS",
    "brier_score",
    "brier_score_loss",
    "expected_calibration_error",
    "nll",
]

# -log(0) is infinite; NLL clamps p_y at the smallest normal float32, the smallest probability a
# float32 softmax returns without underflow. Per-example NLL is therefore at most ~87.3 nats.
NLL_EPS = float(torch.finfo(torch.float32).tiny)
ECE_BINS = 15  # equal-width bins, as in Guo et al. 2017 and the uncertainty-baselines code


def _probs_and_labels(probs: object, labels: object) -> tuple[torch.Tensor, torch.Tensor]:
    p = as_probs(probs, "probs")
    y = as_labels(labels, "labels", p.shape[1])
    if len(y) != len(p):
        raise ValueError(f"probs and labels must have the same number of examples; got {len(p)} and {len(y)}")
    return p, y


def brier_score_loss(probs: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> float:
    """Multi-class Brier score: mean over examples of sum_c (p_c - 1[c = y])^2.

    Not divided by the number of classes (as in the official code); in [0, 2], 0 for a confident
    correct prediction and 1 - 1/C for the uniform prediction. scikit-learn's
    ``brier_score_loss(labels, probs)`` (1.9) gives the same value for C >= 3 classes and half of
    it for C = 2 (its default ``scale_by_half="auto"``).

    Parameters
    ----------
    probs : torch.Tensor or numpy.ndarray, shape (N, C)
    labels : torch.Tensor or numpy.ndarray, shape (N,), int in [0, C)

    Returns
    -------
    float in [0, 2]
    """
    p, y = _probs_and_labels(probs, labels)
    return (p - F.one_hot(y, p.shape[1]).double()).square().sum(1).mean().item()


# scikit-learn's name: a *_score is higher for better predictions, a *_loss lower (the direction
# rule of harness.metrics). The short name stays for code written before the rename.
brier_score = brier_score_loss


def nll(probs: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> float:
    """Negative log-likelihood (cross-entropy) in nats: mean over examples of -log p_y.

    p_y is clamped at :data:`NLL_EPS` (the smallest normal float32) so that a probability that
    underflowed to 0 gives a large finite loss (~87.3) instead of infinity.

    Parameters
    ----------
    probs : torch.Tensor or numpy.ndarray, shape (N, C)
    labels : torch.Tensor or numpy.ndarray, shape (N,), int in [0, C)

    Returns
    -------
    float >= 0
    """
    p, y = _probs_and_labels(probs, labels)
    return 0.0 - p.gather(1, y[:, None]).clamp_min(NLL_EPS).log().mean().item()  # 0.0 - x: never -0.0


def expected_calibration_error(probs: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray,
                               n_bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top-1 confidence, with equal-width bins.

    ECE = sum_b |B_b| / N * |acc(B_b) - conf(B_b)|, where B_b holds the examples whose confidence
    max_c p_c falls in bin b = (b / n_bins, (b + 1) / n_bins] (right-closed, so a confidence of
    exactly 1 belongs to the last bin), acc is the fraction of them classified correctly and conf
    their mean confidence (Guo et al. 2017).

    Parameters
    ----------
    probs : torch.Tensor or numpy.ndarray, shape (N, C)
    labels : torch.Tensor or numpy.ndarray, shape (N,), int in [0, C)
    n_bins : int >= 1

    Returns
    -------
    float in [0, 1]
    """
    n_bins = check_int("n_bins", n_bins, 1)
    p, y = _probs_and_labels(probs, labels)
    # amax + argmax rather than Tensor.max(dim): the same values, but the method returning a named
    # tuple has a fixed cost of ~7 ms per call in the torch 2.13 CPU build.
    conf, pred = p.amax(1), p.argmax(1)
    # Edges k / n_bins (exact divisions); bucketize with right=False gives edges[i-1] < c <= edges[i].
    inner_edges = torch.arange(1, n_bins, dtype=torch.float64, device=p.device) / n_bins
    bins = torch.bucketize(conf, inner_edges, right=False)
    # |B| (acc_B - conf_B) = sum over the bin of (correct - confidence): one scatter-add.
    gaps = torch.zeros(n_bins, dtype=torch.float64, device=p.device).index_add_(0, bins, (pred == y).double() - conf)
    return gaps.abs().sum().item() / len(y)
