"""Pure tensor metrics on weights and predictions.

Direction rule for names (as in scikit-learn): ``*_similarity`` is higher for more alike inputs,
``*_distance`` lower; ``disagreement`` is a fraction of examples (0 = identical predictions).
Metrics whose names carry no suffix state their direction in :data:`METRIC_PROPERTIES`
("similarity" or "dissimilarity").

Weight-space metrics work on flat vectors from :func:`weight_vector` (one model or state dict) or
:func:`run_weight_vectors` (a run's checkpoints), which select the parameter subset:
``"weights"`` (conv and dense kernels only; the default, as in the W&B reproduction) or ``"all"``
(every trainable tensor, biases and normalisation scales included, as in [Fort]).
Normalisation running statistics are buffers, not parameters, and are never included.

=========================== ================================================ ============= ==============
metric                      definition                                       direction     source
=========================== ================================================ ============= ==============
cosine_similarity           a.b / (|a| |b|)                                  similarity    [Fort] Fig. 2a
pairwise_cosine             (K, K) matrix of cosine_similarity               similarity    [Fort] Fig. 3
disagreement                mean_n 1[argmax a_n != argmax b_n]               dissimilarity [Fort] Fig. 2b
pairwise_disagreement       (K, K) matrix of disagreement                    dissimilarity [Fort] Fig. 3
normalized_diversity        disagreement(pred, ref) / (1 - acc(pred))        dissimilarity [Fort] Fig. 5
diversity_lower_model       (a_r - a) / (a_r + (a_r - 1)/(C - 1))            reference     [Fort] code
diversity_upper_model       a_r(1-a) + a(1-a_r) + (1-a_r)(1-a)(C-2)/(C-1)    reference     [Fort] code
diversity_bounds            (|a - a_r|, min(1, 2 - a - a_r))                 hard bounds   CLAIMS.md
brier_score                 mean_n sum_c (p_nc - 1[c = y_n])^2               lower better  [Fort] code
nll                         mean_n -log max(p_n,y_n, NLL_EPS)                lower better  [Fort] Sec. 5
expected_calibration_error  sum_b |B_b|/N |acc_b - conf_b|, 15 bins (0, 1]   lower better  Guo et al. 2017
js_diversity                mean_n H(mean_m p_mn) - mean_m H(p_mn), nats     dissimilarity [Fort] code
linear_cka                  |Y'X|_F^2 / (|X'X|_F |Y'Y|_F), centred columns   similarity    Kornblith 2019
error_jaccard               |E_a & E_b| / |E_a | E_b|, E = misclassified     similarity    [WB]
=========================== ================================================ ============= ==============

Conventions
-----------
- Inputs may be torch tensors or numpy arrays; computations run on the input's device.
  Scalars are returned as Python floats, matrices as float64 torch tensors. The diversity-plane
  curves (:func:`diversity_lower_model`, :func:`diversity_upper_model`, :func:`diversity_bounds`)
  take accuracies as floats or numpy arrays and return floats or float64 numpy arrays, for plotting.
- Predictions are either integer labels (N,) or probabilities (N, C); probabilities become labels
  by argmax, ties going to the lowest class index (torch and numpy agree on this).
- Probabilities must be finite, non-negative and sum to 1 within :data:`PROB_TOLERANCE` per row:
  softmax outputs in float32 pass, logits do not.
- Every metric's mathematical properties (symmetry, range, invariances, the value of identical
  inputs) are listed in :data:`METRIC_PROPERTIES`, in the vocabulary :data:`PROPERTY_VOCABULARY`,
  with ranges in :data:`METRIC_BOUNDS`; the unit tests check each property generically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from harness.training import Run

__all__ = [
    "ECE_BINS",
    "METRIC_BOUNDS",
    "METRIC_PROPERTIES",
    "NLL_EPS",
    "PROB_TOLERANCE",
    "PROPERTY_VOCABULARY",
    "SUBSETS",
    "as_labels",
    "as_probs",
    "brier_score",
    "cosine_similarity",
    "disagreement",
    "diversity_bounds",
    "diversity_lower_model",
    "diversity_upper_model",
    "error_jaccard",
    "expected_calibration_error",
    "js_diversity",
    "linear_cka",
    "nll",
    "normalized_diversity",
    "pairwise_cosine",
    "parameter_names",
    "pairwise_disagreement",
    "run_weight_vectors",
    "weight_vector",
]

SUBSETS = ("weights", "all")
# Rows of a probability matrix may miss 1 by this much: float32 softmax outputs of 1,000 classes
# are off by well under 1e-4, while logits or unnormalised scores are off by far more.
PROB_TOLERANCE = 1e-3
# -log(0) is infinite; NLL clamps p_y at the smallest normal float32, the smallest probability a
# float32 softmax returns without underflow. Per-example NLL is therefore at most ~87.3 nats.
NLL_EPS = float(torch.finfo(torch.float32).tiny)
# Coordinates per block of pairwise_cosine's Gram product. Converting to float64 and multiplying
# block by block keeps each block in cache instead of writing a float64 copy of all K x D values:
# for 40 x 1e6 on 2 CPU cores, blocks of 2^14 to 2^16 take ~55 ms, one whole product ~110 ms.
# The larger end of that range means fewer parallel regions, which suffer less on shared cores.
_GRAM_BLOCK = 1 << 16
ECE_BINS = 15  # equal-width bins, as in Guo et al. 2017 and the uncertainty-baselines code
# state_dict entries that are buffers of normalisation layers, not parameters.
_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


# ----------------------------------------------------------------------------------------------
# Input validation: every public function converts and checks its inputs with these helpers, so
# that a bad input fails with a message naming the argument, what was expected and what came.


def _as_tensor(x: object, name: str) -> torch.Tensor:
    """A tensor view of a torch tensor or numpy array of numbers (no copy where possible)."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise ValueError(f"{name} must hold real numbers; got a numpy array of dtype {x.dtype}")
        # torch.from_numpy warns on read-only arrays (it would share their memory): copy those.
        x = torch.from_numpy(x if x.flags.writeable else x.copy())
    elif not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray; got {type(x).__name__}")
    if x.is_complex():
        raise ValueError(f"{name} must hold real numbers; got dtype {x.dtype}")
    return x.detach()


def _check_shape(t: torch.Tensor, name: str, expected: str, ndims: tuple[int, ...]) -> None:
    if t.ndim not in ndims:
        raise ValueError(f"{name} must have shape {expected}; got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty: expected shape {expected} with every size >= 1; got {tuple(t.shape)}")


def _check_finite(t: torch.Tensor, name: str) -> None:
    if t.is_floating_point() and not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).sum().item()
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); expected finite numbers")


def _check_probs(t: torch.Tensor, name: str) -> None:
    """Finite, non-negative, rows (last axis) summing to 1 within PROB_TOLERANCE."""
    if t.dtype == torch.bool:
        raise ValueError(f"{name} must be probabilities (floats); got dtype bool")
    # Two passes over the data (row sums, minimum): NaN and inf propagate into the row sums, so
    # only a non-finite sum calls for the slower element-wise check that counts them.
    sums = t.sum(-1, dtype=torch.promote_types(t.dtype, torch.float32))
    if not torch.isfinite(sums).all():
        _check_finite(t, name)
    if t.amin() < 0:
        raise ValueError(f"{name} must be probabilities; found a negative entry ({t.min().item():.4g})")
    off = (sums - 1).abs() > PROB_TOLERANCE
    if off.any():
        row = tuple(int(i) for i in torch.nonzero(off)[0])
        raise ValueError(f"{name} must be probabilities whose rows sum to 1 (tolerance {PROB_TOLERANCE:g}); "
                         f"row {row[0] if len(row) == 1 else row} sums to {sums[row].item():.6g} "
                         f"(pass softmax outputs, not logits)")


def _check_labels(t: torch.Tensor, name: str, num_classes: int | None) -> None:
    if t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(f"{name} must be integer class labels; got dtype {t.dtype}")
    low, high = t.min().item(), t.max().item()
    if low < 0 or (num_classes is not None and high >= num_classes):
        allowed = "[0, C)" if num_classes is None else f"[0, {num_classes})"
        raise ValueError(f"{name} must be class labels in {allowed}; got values from {low} to {high}")


def as_probs(x: object, name: str, shape: str = "(N, C)") -> torch.Tensor:
    """Validated probabilities with shape ``shape`` ("(N, C)" or "(M, N, C)"), as float64."""
    t = _as_tensor(x, name)
    _check_shape(t, name, shape, (len(shape.split(",")),))
    _check_probs(t, name)
    return t.double()


def as_labels(x: object, name: str, num_classes: int | None = None) -> torch.Tensor:
    """Validated integer labels of shape (N,), in [0, num_classes) when that is given."""
    t = _as_tensor(x, name)
    _check_shape(t, name, "(N,)", (1,))
    _check_labels(t, name, num_classes)
    return t.long()


def _predictions(named: dict[str, object], labels: object = None) -> tuple[torch.Tensor, ...]:
    """Predicted labels of each named prediction (labels (N,) or probabilities (N, C)), and the
    true labels last when given; checks that all have N examples and agree on the classes."""
    out, classes = {}, {}
    for name, x in named.items():
        t = _as_tensor(x, name)
        _check_shape(t, name, "(N,) labels or (N, C) probabilities", (1, 2))
        if t.ndim == 2:
            _check_probs(t, name)
            classes[name] = t.shape[1]
            t = t.argmax(1)
        out[name] = t
    if len(set(classes.values())) > 1:
        raise ValueError(f"probabilities must have the same number of classes; got {classes}")
    num_classes = next(iter(classes.values()), None)
    if labels is not None:
        out["labels"] = _as_tensor(labels, "labels")
        _check_shape(out["labels"], "labels", "(N,)", (1,))
    for name, t in out.items():
        _check_labels(t, name, num_classes)
    lengths = {name: len(t) for name, t in out.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"all inputs must have the same number of examples N; got {lengths}")
    return tuple(t.long() for t in out.values())


def _features(x: object, name: str) -> torch.Tensor:
    t = _as_tensor(x, name)
    _check_shape(t, name, "(N, P)", (2,))
    _check_finite(t, name)
    return t.double()


# ----------------------------------------------------------------------------------------------
# Weight space


def parameter_names(state: Mapping[str, torch.Tensor], subset: str = "weights") -> list[str]:
    """Names of the state dict's entries in ``subset``, in ``state_dict`` order (see :func:`weight_vector`).

    Normalisation running statistics and counters are buffers, never parameters.
    """
    return [name for name, t in state.items()
            if t.is_floating_point() and not name.endswith(_BUFFER_SUFFIXES) and (subset == "all" or t.ndim >= 2)]


def weight_vector(state: Mapping[str, torch.Tensor] | torch.nn.Module, subset: str = "weights") -> torch.Tensor:
    """Flatten a model's parameters into one float64 vector, in ``state_dict`` order.

    Parameters
    ----------
    state : dict of str to torch.Tensor, or torch.nn.Module
        A model's ``state_dict()`` (e.g. one epoch of ``Run.weights``), or the model itself (its
        ``state_dict()`` is used).
    subset : {"weights", "all"}
        "weights": tensors with 2 or more dimensions (conv and dense kernels);
        "all": every floating-point parameter (kernels, biases, normalisation scales and shifts).

    Returns
    -------
    torch.Tensor, shape (D,), float64
    """
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a state dict or an nn.Module; got {type(state).__name__}")
    if subset not in SUBSETS:
        raise ValueError(f"subset={subset!r} is invalid: expected one of {SUBSETS}")
    parts = [state[name].detach().reshape(-1) for name in parameter_names(state, subset)]
    if not parts:
        raise ValueError(f"the state dict has no parameters in subset {subset!r}; keys: {list(state)[:8]}")
    return torch.cat(parts).double()


def run_weight_vectors(run: Run, subset: str = "weights", epochs: tuple[int, ...] | None = None) -> torch.Tensor:
    """A run's saved checkpoints as rows of flat weight vectors.

    Parameters
    ----------
    run : harness.training.Run
    subset : {"weights", "all"}
        As in :func:`weight_vector`.
    epochs : sequence of int, optional
        Which saved epochs, in this order; all of ``run.epochs`` (increasing) by default.

    Returns
    -------
    torch.Tensor, shape (K, D), float64
        Row k is ``weight_vector(run.weights[epochs[k]], subset)``; feed it to
        :func:`pairwise_cosine`.
    """
    epochs = run.epochs if epochs is None else tuple(epochs)
    if not epochs:
        raise ValueError(f"epochs is empty; run seed={run.seed} saved epochs {run.epochs}")
    missing = [e for e in epochs if e not in run.weights]
    if missing:
        raise ValueError(f"run seed={run.seed} has no saved weights for epoch(s) {missing}; "
                         f"saved epochs: {run.epochs}")
    return torch.stack([weight_vector(run.weights[e], subset) for e in epochs])


def pairwise_cosine(thetas: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Cosine similarity between every pair of rows, from one float64 Gram matrix X X'.

    The Gram matrix is accumulated over blocks of coordinates (:data:`_GRAM_BLOCK`), so a float32
    stack of 40 x 1e6 needs no float64 copy. Rows of a run: :func:`run_weight_vectors`.

    Parameters
    ----------
    thetas : torch.Tensor or numpy.ndarray, shape (K, D)
        K flattened weight vectors, none of them zero.

    Returns
    -------
    torch.Tensor, shape (K, K), float64, entries in [-1, 1], exactly 1 on the diagonal
    """
    x = _as_tensor(thetas, "thetas")
    _check_shape(x, "thetas", "(K, D)", (2,))
    k, d = x.shape
    # Float64 Gram matrix accumulated over blocks of coordinates (see _GRAM_BLOCK): float64 keeps
    # 1 - cos accurate for near-identical checkpoints, where float32 sums of 1e6 terms would not.
    gram = torch.zeros(k, k, dtype=torch.float64, device=x.device)
    for start in range(0, d, _GRAM_BLOCK):
        block = x[:, start:start + _GRAM_BLOCK].double()
        gram.addmm_(block, block.T)
    sq_norms = gram.diagonal()
    # A squared norm is finite iff its row is (NaN and inf propagate): no separate pass over x.
    if not torch.isfinite(sq_norms).all():
        rows = torch.nonzero(~torch.isfinite(sq_norms)).flatten().tolist()
        raise ValueError(f"thetas rows {rows} contain NaN or infinite values (or norms beyond the float64 range)")
    if (sq_norms == 0).any():
        rows = torch.nonzero(sq_norms == 0).flatten().tolist()
        raise ValueError(f"cosine is undefined for a zero vector: rows {rows} (or |entries| < 1e-154, whose "
                         f"squares underflow)")
    # G_ij / sqrt(G_ii G_jj) rather than normalising rows first: sqrt(G_ii^2) == G_ii exactly, so
    # the diagonal gives exactly 1, and integer vectors give exact fractions (CLAIMS.md P1).
    return (gram / (sq_norms[:, None] * sq_norms[None, :]).sqrt()).clamp(-1.0, 1.0)


def cosine_similarity(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Cosine of the angle between two flat vectors: a.b / (|a| |b|).

    Parameters
    ----------
    a, b : torch.Tensor or numpy.ndarray, shape (D,)
        Non-zero vectors of the same length.

    Returns
    -------
    float in [-1, 1]
    """
    a, b = _as_tensor(a, "a"), _as_tensor(b, "b")
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"expected two vectors of the same shape (D,); got {tuple(a.shape)} and {tuple(b.shape)}")
    return pairwise_cosine(torch.stack([a.double(), b.double()]))[0, 1].item()


def linear_cka(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, debiased: bool = False) -> float:
    """Linear centred kernel alignment between two representations of the same examples.

    CKA = ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F) on column-centred X and Y (Kornblith et al. 2019).
    It is invariant to orthogonal transforms and isotropic scaling of either representation.
    ``debiased=True`` replaces each HSIC term by the unbiased estimator of Song et al. (2012)
    on the linear Gram matrices (Nguyen et al. 2021), computed here in feature space; it needs
    N >= 4 examples and lies in [-1, 1] (it can be slightly negative for unrelated features).

    Parameters
    ----------
    x : torch.Tensor or numpy.ndarray, shape (N, P)
    y : torch.Tensor or numpy.ndarray, shape (N, Q)
        Rows are the same N examples; features need not match (P != Q is fine).
    debiased : bool

    Returns
    -------
    float in [0, 1] ([-1, 1] when debiased); 1 when Y is X up to rotation and scale.
    """
    x, y = _features(x, "x"), _features(y, "y")
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"x and y must describe the same examples; got N={n} and N={y.shape[0]}")
    if debiased and n < 4:
        raise ValueError(f"debiased CKA needs N >= 4 examples (its estimator divides by N - 3); got N={n}")
    x, y = _centre(x, "x"), _centre(y, "y")
    xy, xx, yy = _cross_energy(x, y), _cross_energy(x, x), _cross_energy(y, y)
    if debiased:
        sq_x, sq_y = x.square().sum(1), y.square().sum(1)
        xy, xx, yy = _unbiased(xy, sq_x, sq_y), _unbiased(xx, sq_x, sq_x), _unbiased(yy, sq_y, sq_y)
        if xx <= 0 or yy <= 0:
            raise ValueError("debiased CKA is undefined: the unbiased HSIC of x or y with itself is not "
                             "positive (too few examples with distinct features)")
    value = (xy / (xx * yy).sqrt()).item()
    low = -1.0 if debiased else 0.0
    return min(1.0, max(low, value))  # rounding can step past the Cauchy-Schwarz limit by an ulp


# A column whose centred values are this small relative to its raw values is constant up to the
# rounding error of its mean (~1e-16 relative), not a signal.
_VARIANCE_RTOL = 1e-12


def _centre(x: torch.Tensor, name: str) -> torch.Tensor:
    """Column-centred x, divided by its largest entry: CKA is scale invariant, and the scaling keeps
    the fourth powers in the HSIC terms from underflowing or overflowing."""
    centred = x - x.mean(0)
    if centred.norm() <= _VARIANCE_RTOL * x.norm():
        raise ValueError(f"CKA is undefined: {name} has no variance across examples (every column is constant)")
    return centred / centred.abs().max()


def _cross_energy(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||Y'X||_F^2 = <XX', YY'>_F = tr(KL), via the smaller product (P x Q features or N x N Gram)."""
    n, p, q = x.shape[0], x.shape[1], y.shape[1]
    if n * n < p * q:
        return ((x @ x.T) * (y @ y.T)).sum()
    return (y.T @ x).square().sum()


def _unbiased(cross: torch.Tensor, sq_x: torch.Tensor, sq_y: torch.Tensor) -> torch.Tensor:
    """N(N-3) x the unbiased HSIC of Song et al. (2012) for centred linear features.

    With K = XX', L = YY' and d = diag(K), e = diag(L): tr(KL) - N/(N-2) d.e + tr(K) tr(L) /
    ((N-1)(N-2)); the factor N(N-3) cancels in CKA's ratio.
    """
    n = len(sq_x)
    return cross - n / (n - 2) * (sq_x @ sq_y) + sq_x.sum() * sq_y.sum() / ((n - 1) * (n - 2))


# ----------------------------------------------------------------------------------------------
# Function space: predictions


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
    t = _as_tensor(preds, "preds")
    _check_shape(t, "preds", "(K, N) labels or (K, N, C) probabilities", (2, 3))
    if t.ndim == 3:
        _check_probs(t, "preds")
        labels, num_classes = t.argmax(-1), t.shape[-1]
    else:
        _check_labels(t, "preds", None)
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
# Function space: the diversity-accuracy plane ([Fort] Fig. 5). The curves give raw disagreement
# d; the plane plots d / (1 - a).


def _accuracies(a: object, name: str) -> np.ndarray:
    v = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a)
    if v.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be accuracies (real numbers); got dtype {v.dtype}")
    v = v.astype(np.float64)
    if not np.isfinite(v).all() or (v < 0).any() or (v > 1).any():
        raise ValueError(f"{name} must be accuracies in [0, 1]; got values from {v.min():.4g} to {v.max():.4g}")
    return v


def _num_classes(num_classes: object) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes={num_classes!r} is invalid: expected an int >= 2")
    return int(num_classes)


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
    a, a_ref, c = _accuracies(a, "a"), _accuracies(a_ref, "a_ref"), _num_classes(num_classes)
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
    a, a_ref, c = _accuracies(a, "a"), _accuracies(a_ref, "a_ref"), _num_classes(num_classes)
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


# ----------------------------------------------------------------------------------------------
# Function space: quality and uncertainty of probabilities


def _probs_and_labels(probs: object, labels: object) -> tuple[torch.Tensor, torch.Tensor]:
    p = as_probs(probs, "probs")
    y = as_labels(labels, "labels", p.shape[1])
    if len(y) != len(p):
        raise ValueError(f"probs and labels must have the same number of examples; got {len(p)} and {len(y)}")
    return p, y


def brier_score(probs: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> float:
    """Multi-class Brier score: mean over examples of sum_c (p_c - 1[c = y])^2.

    Not divided by the number of classes (as in the official code); in [0, 2], 0 for a confident
    correct prediction and 1 - 1/C for the uniform prediction.

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
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins={n_bins!r} is invalid: expected an int >= 1")
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
# The property registry: what each metric guarantees, in a fixed vocabulary, so that the unit
# tests can check every property of every metric generically (tests/test_metrics.py).

PROPERTY_VOCABULARY: dict[str, str] = {
    "symmetric": "the compared inputs can swap: f(a, b, ...) = f(b, a, ...); for a (K, K) pairwise "
                 "matrix M = M'; for an ensemble (M, N, C), any order of the members",
    "bounded": "both ends of METRIC_BOUNDS[name] are finite",
    "nonnegative": "the lower end of METRIC_BOUNDS[name] is 0",
    "similarity": "higher means more alike; identical inputs give the upper end of METRIC_BOUNDS",
    "dissimilarity": "lower means more alike; identical inputs give the lower end of METRIC_BOUNDS",
    "identity_extreme": "identical inputs (or identical members, or identical rows of a stack) give "
                        "the extreme value that 'similarity'/'dissimilarity' names, and independent "
                        "random inputs do not",
    "example_order_invariant": "permuting the examples (the N axis) of every input the same way "
                               "leaves the value unchanged",
    "class_permutation_invariant": "renaming the classes (permuting the C axis and mapping labels) "
                                   "the same way in every input leaves the value unchanged (up to "
                                   "argmax ties)",
    "scale_invariant": "multiplying any vector or feature input by a positive scalar leaves the "
                       "value unchanged",
    "orthogonal_invariant": "multiplying each feature matrix on the right by its own orthogonal "
                            "matrix leaves the value unchanged",
    "translation_invariant": "adding a constant vector to every example's features leaves the "
                             "value unchanged",
    "perfect_is_zero": "one-hot probabilities on the true labels give 0",
    "pairwise": "returns the (K, K) matrix whose (i, j) entry is the two-input metric of rows i and j",
    "elementwise": "accepts arrays and acts element by element, as a loop over scalars would",
}


def _props(names: str) -> frozenset[str]:
    return frozenset(names.split())


METRIC_PROPERTIES: dict[str, frozenset[str]] = {
    "cosine_similarity": _props("symmetric bounded similarity identity_extreme scale_invariant"),
    "pairwise_cosine": _props("pairwise symmetric bounded similarity identity_extreme scale_invariant"),
    "disagreement": _props("symmetric bounded nonnegative dissimilarity identity_extreme "
                           "example_order_invariant class_permutation_invariant"),
    "pairwise_disagreement": _props("pairwise symmetric bounded nonnegative dissimilarity identity_extreme "
                                    "example_order_invariant class_permutation_invariant"),
    "normalized_diversity": _props("nonnegative dissimilarity identity_extreme "
                                   "example_order_invariant class_permutation_invariant"),
    "error_jaccard": _props("symmetric bounded nonnegative similarity identity_extreme "
                            "example_order_invariant class_permutation_invariant"),
    "diversity_lower_model": _props("bounded nonnegative elementwise"),
    "diversity_upper_model": _props("symmetric bounded nonnegative elementwise"),
    "diversity_bounds": _props("symmetric bounded nonnegative elementwise"),
    "brier_score": _props("bounded nonnegative perfect_is_zero example_order_invariant class_permutation_invariant"),
    "nll": _props("nonnegative perfect_is_zero example_order_invariant class_permutation_invariant"),
    "expected_calibration_error": _props("bounded nonnegative perfect_is_zero "
                                         "example_order_invariant class_permutation_invariant"),
    "js_diversity": _props("symmetric nonnegative dissimilarity identity_extreme "
                           "example_order_invariant class_permutation_invariant"),
    "linear_cka": _props("symmetric bounded nonnegative similarity identity_extreme example_order_invariant "
                         "scale_invariant orthogonal_invariant translation_invariant"),
}

# The range of each metric's values with its default arguments (math.inf where unbounded). The
# lower model's range holds on its domain 1/C <= a <= a_ref; debiased CKA lies in [-1, 1].
METRIC_BOUNDS: dict[str, tuple[float, float]] = {
    "cosine_similarity": (-1.0, 1.0),
    "pairwise_cosine": (-1.0, 1.0),
    "disagreement": (0.0, 1.0),
    "pairwise_disagreement": (0.0, 1.0),
    "normalized_diversity": (0.0, math.inf),
    "error_jaccard": (0.0, 1.0),
    "diversity_lower_model": (0.0, 1.0),
    "diversity_upper_model": (0.0, 1.0),
    "diversity_bounds": (0.0, 1.0),
    "brier_score": (0.0, 2.0),
    "nll": (0.0, math.inf),
    "expected_calibration_error": (0.0, 1.0),
    "js_diversity": (0.0, math.inf),
    "linear_cka": (0.0, 1.0),
}
