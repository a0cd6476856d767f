"""Diversity of predictions: how often, and where, models disagree.

Disagreement of predicted labels (two models, or every pair of K at once), disagreement relative
to a model's own errors, the overlap of their errors, the Jensen-Shannon diversity of an
ensemble's probabilities, and the reference curves of the diversity-accuracy plane ([Fort]
Fig. 5). All are registered metrics (directions, properties and ranges in :mod:`harness.metrics`,
whose conventions they follow): predictions are integer labels (N,) or probabilities (N, C),
probabilities become labels by argmax, ties going to the lowest class index.
"""

from __future__ import annotations

import numpy as np
import torch

from harness.validation import as_probs, as_tensor, check_int, check_labels, check_probs, check_shape

__all__ = [
    "disagreement",
    "diversity_bounds",
    "diversity_lower_model",
    "diversity_upper_model",
    "error_jaccard",
    "js_diversity",
    "normalized_diversity",
    "pairwise_disagreement",
]


# ----------------------------------------------------------------------------------------------
# Predicted labels


def _predictions(named: dict[str, object], labels: object = None) -> tuple[torch.Tensor, ...]:
    """Predicted labels of each named prediction (labels (N,) or probabilities (N, C)), and the
    true labels last when given; checks that all have N examples and agree on the classes."""
    out, classes = {}, {}
    for name, x in named.items():
        t = as_tensor(x, name)
        check_shape(t, name, "(N,) labels or (N, C) probabilities", (1, 2))
        if t.ndim == 2:
            check_probs(t, name)
            classes[name] = t.shape[1]
            t = t.argmax(1)
        out[name] = t
    if len(set(classes.values())) > 1:
        raise ValueError(f"probabilities must have the same number of classes; got {classes}")
    num_classes = next(iter(classes.values()), None)
    if labels is not None:
        out["labels"] = as_tensor(labels, "labels")
        check_shape(out["labels"], "labels", "(N,)", (1,))
    for name, t in out.items():
        check_labels(t, name, num_classes)
    lengths = {name: len(t) for name, t in out.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"all inputs must have the same number of examples N; got {lengths}")
    return tuple(t.long() for t in out.values())


def disagreement(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Fraction of examples whose predicted labels differ.

    Parameters
    ----------
    a, b : torch.Tensor or numpy.ndarray, shape (N,) int labels or (N, C) probabilities
        Probabilities are reduced by argmax; the two may use different forms.

    Returns
    -------
    float in [0, 1]
    """
    la, lb = _predictions({"a": a, "b": b})
    return (la != lb).sum().item() / len(la)


def pairwise_disagreement(preds: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Disagreement between every pair of K predictions, as one matrix product.

    With one-hot encodings O of shape (K, N*C), agreement = O O' / N counts, for every pair at
    once, the examples where both predict the same class.

    Parameters
    ----------
    preds : torch.Tensor or numpy.ndarray, shape (K, N) int labels or (K, N, C) probabilities
        Memory: K*N*C float32 values for the one-hot matrix (labels use C = max label + 1).

    Returns
    -------
    torch.Tensor, shape (K, K), float64, entries in [0, 1], zeros on the diagonal
    """
    t = as_tensor(preds, "preds")
    check_shape(t, "preds", "(K, N) labels or (K, N, C) probabilities", (2, 3))
    if t.ndim == 3:
        check_probs(t, "preds")
        labels, num_classes = t.argmax(-1), t.shape[-1]
    else:
        check_labels(t, "preds", None)
        labels, num_classes = t.long(), int(t.max().item()) + 1
    k, n = labels.shape
    # float32 products of 0/1 entries sum exactly while the counts stay below 2^24.
    dtype = torch.float32 if n < 2**24 else torch.float64
    onehot = torch.zeros(k, n, num_classes, dtype=dtype, device=labels.device)
    onehot.scatter_(2, labels.unsqueeze(-1), 1.0)
    onehot = onehot.reshape(k, n * num_classes)
    agree = (onehot @ onehot.T).double()
    return (n - agree) / n


def normalized_diversity(pred: torch.Tensor | np.ndarray, ref: torch.Tensor | np.ndarray,
                         labels: torch.Tensor | np.ndarray) -> float:
    """Disagreement with a reference, divided by the prediction's own error rate.

    d(pred, ref) / (1 - acc(pred)), the y-axis of [Fort] Fig. 5 as the official code computes it
    (the sample's error rate, not the reference's). Not symmetric in (pred, ref).

    Parameters
    ----------
    pred, ref : torch.Tensor or numpy.ndarray, shape (N,) int labels or (N, C) probabilities
    labels : torch.Tensor or numpy.ndarray, shape (N,), int
        True classes.

    Returns
    -------
    float >= 0; 1 when ``ref`` disagrees with ``pred`` exactly as often as ``pred`` errs
    """
    lp, lr, y = _predictions({"pred": pred, "ref": ref}, labels)
    errors = (lp != y).sum().item()
    if errors == 0:
        raise ValueError("normalized_diversity divides by the error rate 1 - acc(pred), which is 0: "
                         "pred classifies every example correctly (acc = 1)")
    return (lp != lr).sum().item() / errors


def error_jaccard(pred_a: torch.Tensor | np.ndarray, pred_b: torch.Tensor | np.ndarray,
                  labels: torch.Tensor | np.ndarray) -> float:
    """Jaccard overlap of the sets of misclassified examples.

    |E_a & E_b| / |E_a | E_b| with E = {n : argmax pred_n != labels_n}. When neither prediction
    makes an error the two error sets are equal (both empty) and the value is 1, so identical
    predictions always give 1.

    Parameters
    ----------
    pred_a, pred_b : torch.Tensor or numpy.ndarray, shape (N,) int labels or (N, C) probabilities
    labels : torch.Tensor or numpy.ndarray, shape (N,), int

    Returns
    -------
    float in [0, 1]
    """
    la, lb, y = _predictions({"pred_a": pred_a, "pred_b": pred_b}, labels)
    err_a, err_b = la != y, lb != y
    union = (err_a | err_b).sum().item()
    return 1.0 if union == 0 else (err_a & err_b).sum().item() / union


# ----------------------------------------------------------------------------------------------
# Probabilities of an ensemble's members


def js_diversity(probs: torch.Tensor | np.ndarray) -> float:
    """The "Jensen-Shannon" diversity of an ensemble: H(mean_m p_m) - mean_m H(p_m), in nats.

    Averaged over examples. This is the official code's quantity (the generalised JS divergence
    with equal weights, i.e. the mutual information between the member index and the label). It
    is 0 when all members agree and at most log(min(M, C)). Deviation: the official code computes
    entropies as -sum p log(p + 1e-5); here 0 log 0 = 0 exactly.

    Parameters
    ----------
    probs : torch.Tensor or numpy.ndarray, shape (M, N, C)
        Probabilities of M members on the same N examples.

    Returns
    -------
    float >= 0
    """
    p = as_probs(probs, "probs", "(M, N, C)")
    mean = p.mean(0)
    entropy_of_mean = -torch.special.xlogy(mean, mean).sum(-1)
    mean_entropy = -torch.special.xlogy(p, p).sum(-1).mean(0)
    # Jensen's inequality makes each example's term >= 0; clamp the rounding error of equal members.
    return (entropy_of_mean - mean_entropy).clamp_min(0).mean().item()


# ----------------------------------------------------------------------------------------------
# The diversity-accuracy plane ([Fort] Fig. 5). The curves give raw disagreement d; the plane
# plots d / (1 - a).


def _accuracies(a: object, name: str) -> np.ndarray:
    v = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a)
    if v.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be accuracies (real numbers); got dtype {v.dtype}")
    v = v.astype(np.float64)
    if not np.isfinite(v).all() or (v < 0).any() or (v > 1).any():
        raise ValueError(f"{name} must be accuracies in [0, 1]; got values from {v.min():.4g} to {v.max():.4g}")
    return v


def _scalar_or_array(v: np.ndarray) -> float | np.ndarray:
    return float(v) if v.ndim == 0 else v


def diversity_lower_model(a: float | np.ndarray, a_ref: float | np.ndarray, num_classes: int) -> float | np.ndarray:
    """The "perturbed reference" model of [Fort] Fig. 5: disagreement of a degraded reference.

    d_low(a) = (a_ref - a) / (a_ref + (a_ref - 1) / (C - 1)), from the official code. It describes
    a reference whose predictions are replaced by random labels on a growing fraction of inputs:
    0 at a = a_ref, (C - 1) / C at chance (a = 1/C). A reference model, not a bound; it is meant
    for 1/C <= a <= a_ref (outside, it is negative or above 1). Plot d_low / (1 - a).

    Parameters
    ----------
    a : float or numpy.ndarray
        Accuracy of the sample(s), in [0, 1].
    a_ref : float or numpy.ndarray
        Accuracy of the reference, in (1/C, 1]; broadcast against ``a``.
    num_classes : int >= 2

    Returns
    -------
    float, or numpy.ndarray of the broadcast shape, float64: the raw disagreement d
    """
    a, a_ref, c = _accuracies(a, "a"), _accuracies(a_ref, "a_ref"), check_int("num_classes", num_classes, 2)
    if (a_ref <= 1 / c).any():
        raise ValueError(f"a_ref must beat chance (> 1/C = {1 / c:.4g}) for the lower model; got {a_ref.min():.4g}")
    return _scalar_or_array((a_ref - a) / (a_ref + (a_ref - 1) / (c - 1)))


def diversity_upper_model(a: float | np.ndarray, a_ref: float | np.ndarray, num_classes: int) -> float | np.ndarray:
    """The "independent errors" model of [Fort] Fig. 5: disagreement of an independent classifier.

    d_up(a) = a_ref (1 - a) + a (1 - a_ref) + (1 - a_ref)(1 - a)(C - 2)/(C - 1), from the official
    code: the chance that two classifiers differ when each is right independently (with
    probabilities a and a_ref) and otherwise picks a wrong class uniformly. Symmetric in
    (a, a_ref). A reference model, not a bound. Plot d_up / (1 - a).

    Parameters
    ----------
    a, a_ref : float or numpy.ndarray
        Accuracies in [0, 1]; broadcast against each other.
    num_classes : int >= 2

    Returns
    -------
    float, or numpy.ndarray of the broadcast shape, float64: the raw disagreement d in [0, 1]
    """
    a, a_ref, c = _accuracies(a, "a"), _accuracies(a_ref, "a_ref"), check_int("num_classes", num_classes, 2)
    return _scalar_or_array(a_ref * (1 - a) + a * (1 - a_ref) + (1 - a_ref) * (1 - a) * (c - 2) / (c - 1))


def diversity_bounds(a: float | np.ndarray, a_ref: float | np.ndarray) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Hard bounds on the disagreement of two classifiers with accuracies a and a_ref.

    |a - a_ref| <= d (where exactly one is right they differ) and d <= min(1, 2 - a - a_ref)
    (they agree at least where both are right). Any pair of predictions satisfies them.

    Parameters
    ----------
    a, a_ref : float or numpy.ndarray
        Accuracies in [0, 1]; broadcast against each other.

    Returns
    -------
    (low, high) : floats, or numpy.ndarrays of the broadcast shape, float64
    """
    a, a_ref = _accuracies(a, "a"), _accuracies(a_ref, "a_ref")
    return _scalar_or_array(np.abs(a - a_ref)), _scalar_or_array(np.minimum(1.0, 2.0 - a - a_ref))
