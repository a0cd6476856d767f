"""Linear centred kernel alignment (CKA): how alike two representations of the same examples are.

:func:`linear_cka` is a registered metric (direction, properties and range in
:mod:`harness.metrics`, whose conventions it follows).
"""

from __future__ import annotations

import numpy as np
import torch

from harness.validation import as_tensor, check_finite, check_shape

__all__ = ["linear_cka"]


def _features(x: object, name: str) -> torch.Tensor:
    """Validated finite features of shape (N, P), as float64."""
    t = as_tensor(x, name)
    check_shape(t, name, "(N, P)", (2,))
    check_finite(t, name)
    return t.double()


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
