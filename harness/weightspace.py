"""Weight-space geometry: models and checkpoints as flat weight vectors, and their cosines.

Weight-space metrics work on flat vectors from :func:`weight_vector` (one model or state dict) or
:func:`run_weight_vectors` (a run's checkpoints), which select the parameter subset:
``"weights"`` (conv and dense kernels only; the default, as in the W&B reproduction) or ``"all"``
(every trainable tensor, biases and normalisation scales included, as in [Fort]).
Normalisation running statistics are buffers, not parameters, and are never included.

:func:`cosine_similarity` and :func:`pairwise_cosine` are registered metrics (directions,
properties and ranges in :mod:`harness.metrics`, whose conventions they follow).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import torch

from harness.validation import as_tensor, check_shape

if TYPE_CHECKING:
    from harness.training import Run

__all__ = [
    "SUBSETS",
    "cosine_similarity",
    "pairwise_cosine",
    "parameter_names",
    "run_weight_vectors",
    "weight_vector",
]

SUBSETS = ("weights", "all")
# state_dict entries that are buffers of normalisation layers, not parameters.
_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")
# Coordinates per block of pairwise_cosine's Gram product. Converting to float64 and multiplying
# block by block keeps each block in cache instead of writing a float64 copy of all K x D values:
# for 40 x 1e6 on 2 CPU cores, blocks of 2^14 to 2^16 take ~55 ms, one whole product ~110 ms.
# The larger end of that range means fewer parallel regions, which suffer less on shared cores.
_GRAM_BLOCK = 1 << 16


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
    x = as_tensor(thetas, "thetas")
    check_shape(x, "thetas", "(K, D)", (2,))
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
    # the diagonal gives exactly 1, and integer vectors give exact fractions (docs/claims.md, P1).
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
    a, b = as_tensor(a, "a"), as_tensor(b, "b")
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"expected two vectors of the same shape (D,); got {tuple(a.shape)} and {tuple(b.shape)}")
    return pairwise_cosine(torch.stack([a.double(), b.double()]))[0, 1].item()
