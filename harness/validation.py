"""Argument checks shared by the harness: integers, and tensors of numbers, probabilities and labels.

Every public function converts and checks its inputs with these helpers, so that a bad input fails
with a message naming the argument, what was expected and what came:
``"n_bins=0 is invalid: expected an int >= 1"``, ``"probs must have shape (N, C); got shape (2,)"``.

Conventions (those of :mod:`harness.metrics`):

- Tensor inputs may be torch tensors or numpy arrays; the checks run on the input's device.
- Probabilities must be finite, non-negative and sum to 1 within :data:`PROB_TOLERANCE` per row
  (last axis): softmax outputs in float32 pass, logits do not.
- Labels are integers in [0, C).

Examples
--------
>>> from harness.validation import check_int
>>> check_int("n_points", 11, 2)
11
>>> check_int("n_points", 1, 2)
Traceback (most recent call last):
ValueError: n_points=1 is invalid: expected an int >= 2
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "PROB_TOLERANCE",
    "as_labels",
    "as_probs",
    "as_tensor",
    "check_finite",
    "check_int",
    "check_labels",
    "check_probs",
    "check_shape",
]

# torch is imported by the functions that check tensors, not here: the reports' command lines
# (reports.compare, reports.render) reach this module for check_int alone and start without it.

# Rows of a probability matrix may miss 1 by this much: float32 softmax outputs of 1,000 classes
# are off by well under 1e-4, while logits or unnormalised scores are off by far more.
PROB_TOLERANCE = 1e-3


def check_int(name: str, value: object, low: int) -> int:
    """``value`` as a Python int, or ValueError unless it is an integer >= ``low``.

    Python and numpy integers pass; bools do not (``True`` is an int to Python, never a count
    here), nor do floats, even integral ones.

    Parameters
    ----------
    name : str
        The argument's name as the message shows it, e.g. ``"max_iter"`` or ``"SeedSchedule.first"``.
    value : object
    low : int
        Smallest admissible value.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        ``"{name}={value!r} is invalid: expected an int >= {low}"``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r} is invalid: expected an int >= {low}")
    return int(value)


def as_tensor(x: object, name: str) -> torch.Tensor:
    """A tensor view of a torch tensor or numpy array of real numbers (no copy where possible)."""
    import torch

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


def check_shape(t: torch.Tensor, name: str, expected: str, ndims: tuple[int, ...]) -> None:
    """ValueError unless ``t`` has one of ``ndims`` dimensions and no empty axis; ``expected``
    describes the shape for the message, e.g. ``"(N, C)"``."""
    if t.ndim not in ndims:
        raise ValueError(f"{name} must have shape {expected}; got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty: expected shape {expected} with every size >= 1; got {tuple(t.shape)}")


def check_finite(t: torch.Tensor, name: str) -> None:
    """ValueError counting the NaN and infinite entries of a floating-point ``t``, if any."""
    import torch

    if t.is_floating_point() and not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).sum().item()
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); expected finite numbers")


def check_probs(t: torch.Tensor, name: str) -> None:
    """Finite, non-negative, rows (last axis) summing to 1 within PROB_TOLERANCE."""
    import torch

    if t.dtype == torch.bool:
        raise ValueError(f"{name} must be probabilities (floats); got dtype bool")
    # Two passes over the data (row sums, minimum): NaN and inf propagate into the row sums, so
    # only a non-finite sum calls for the slower element-wise check that counts them.
    sums = t.sum(-1, dtype=torch.promote_types(t.dtype, torch.float32))
    if not torch.isfinite(sums).all():
        check_finite(t, name)
    if t.amin() < 0:
        raise ValueError(f"{name} must be probabilities; found a negative entry ({t.min().item():.4g})")
    off = (sums - 1).abs() > PROB_TOLERANCE
    if off.any():
        row = tuple(int(i) for i in torch.nonzero(off)[0])
        raise ValueError(f"{name} must be probabilities whose rows sum to 1 (tolerance {PROB_TOLERANCE:g}); "
                         f"row {row[0] if len(row) == 1 else row} sums to {sums[row].item():.6g} "
                         f"(pass softmax outputs, not logits)")


def check_labels(t: torch.Tensor, name: str, num_classes: int | None) -> None:
    """ValueError unless ``t`` holds integer class labels in [0, num_classes) ([0, C) when None)."""
    import torch

    if t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(f"{name} must be integer class labels; got dtype {t.dtype}")
    low, high = t.min().item(), t.max().item()
    if low < 0 or (num_classes is not None and high >= num_classes):
        allowed = "[0, C)" if num_classes is None else f"[0, {num_classes})"
        raise ValueError(f"{name} must be class labels in {allowed}; got values from {low} to {high}")


def as_probs(x: object, name: str, shape: str = "(N, C)") -> torch.Tensor:
    """Validated probabilities with shape ``shape`` ("(N, C)" or "(M, N, C)"), as float64."""
    t = as_tensor(x, name)
    check_shape(t, name, shape, (len(shape.split(",")),))
    check_probs(t, name)
    return t.double()


def as_labels(x: object, name: str, num_classes: int | None = None) -> torch.Tensor:
    """Validated integer labels of shape (N,), in [0, num_classes) when that is given, as int64."""
    t = as_tensor(x, name)
    check_shape(t, name, "(N,)", (1,))
    check_labels(t, name, num_classes)
    return t.long()
