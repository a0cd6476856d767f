"""Pure tensor metrics on weights and predictions.

Direction rule for names (as in scikit-learn): ``*_similarity`` is higher for more alike inputs,
``*_distance`` lower; ``disagreement`` is a fraction of examples.

Weight-space metrics work on flat vectors from :func:`weight_vector`, which selects the parameter
subset: ``"weights"`` (conv and dense kernels only; the default, as in the W&B reproduction) or
``"all"`` (every trainable tensor, biases and normalisation scales included, as in [Fort]).
Normalisation running statistics are buffers, not parameters, and are never included.
"""

from __future__ import annotations

import torch

SUBSETS = ("weights", "all")
# state_dict entries that are buffers of normalisation layers, not parameters.
_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def weight_vector(state: dict[str, torch.Tensor], subset: str = "weights") -> torch.Tensor:
    """Flatten a state dict's parameters into one float64 vector, in the dict's order.

    Parameters
    ----------
    state : dict of str to torch.Tensor
        A model's ``state_dict()`` (e.g. one epoch of ``Run.weights``).
    subset : {"weights", "all"}
        "weights": tensors with 2 or more dimensions (conv and dense kernels);
        "all": every floating-point parameter (kernels, biases, normalisation scales and shifts).

    Returns
    -------
    torch.Tensor, shape (D,), float64
    """
    if subset not in SUBSETS:
        raise ValueError(f"subset={subset!r} is invalid: expected one of {SUBSETS}")
    parts = [
        t.reshape(-1) for name, t in state.items()
        if t.is_floating_point() and not name.endswith(_BUFFER_SUFFIXES) and (subset == "all" or t.ndim >= 2)
    ]
    if not parts:
        raise ValueError(f"the state dict has no parameters in subset {subset!r}; keys: {list(state)[:8]}")
    return torch.cat(parts).double()


def pairwise_cosine(thetas: torch.Tensor) -> torch.Tensor:
    """Cosine similarity between every pair of rows, as one Gram product.

    Parameters
    ----------
    thetas : torch.Tensor, shape (K, D)
        K flattened weight vectors.

    Returns
    -------
    torch.Tensor, shape (K, K), float64, entries in [-1, 1], ones on the diagonal
    """
    if thetas.ndim != 2:
        raise ValueError(f"thetas must have shape (K, D); got shape {tuple(thetas.shape)}")
    x = thetas.double()
    norms = x.norm(dim=1)
    if not torch.isfinite(x).all():
        raise ValueError("thetas contain NaN or infinite values")
    if (norms == 0).any():
        raise ValueError(f"cosine is undefined for a zero vector: rows {torch.nonzero(norms == 0).flatten().tolist()}")
    unit = x / norms[:, None]
    return (unit @ unit.T).clamp(-1.0, 1.0)


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine of the angle between two flat vectors: a.b / (|a| |b|).

    Parameters
    ----------
    a, b : torch.Tensor, shape (D,)

    Returns
    -------
    float in [-1, 1]
    """
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"expected two vectors of the same shape (D,); got {tuple(a.shape)} and {tuple(b.shape)}")
    return pairwise_cosine(torch.stack([a, b]))[0, 1].item()
