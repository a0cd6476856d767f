"""Temperatures on a model's logits: the calibrating one, and its mirror with the same calibration error.

A temperature T divides the logits, ``softmax(z / T)``: every argmax stays, so accuracy and the
disagreement with any other model are unchanged, while the confidences, and with them the
expected calibration error (ECE), move. The ECE of a typical network is U-shaped in T around
its calibrating temperature T* (Guo et al. 2017 fit T* by minimising the NLL on held-out data):
an overconfident network (T* > 1) at T = 1 has a twin on the other side of T*, underconfident by
as much, with the same ECE, the same accuracy and the same predictions, but logit gaps scaled by
1 / T. :func:`mirror_temperature` finds that twin's T on a grid. It is the A3 claim's model
"trained differently" that accuracy, churn and ECE cannot tell from its seed
(claims/test_seed_variability.py).
"""

from __future__ import annotations

import numpy as np
import torch

from harness.scoring import expected_calibration_error, nll

__all__ = ["TEMPERATURES", "calibrating_temperature", "mirror_temperature"]

# Log-spaced from 1/8 to 8 with 1 in the middle: 97 points, 4.4% apart.
TEMPERATURES = tuple(float(t) for t in np.exp(np.linspace(np.log(1 / 8), np.log(8), 97)))


def _logits(logits: object) -> torch.Tensor:
    z = torch.as_tensor(logits, dtype=torch.float64)
    if z.ndim != 2 or z.shape[1] < 2 or not torch.isfinite(z).all():
        raise ValueError(f"logits must be finite with shape (N, C), C >= 2; got shape {tuple(z.shape)}")
    return z


def _grid(temperatures: object) -> np.ndarray:
    grid = np.asarray(temperatures, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 2 or not np.all(grid > 0) or np.any(np.diff(grid) <= 0):
        raise ValueError(f"temperatures must be an increasing 1-D grid of positive values; got {temperatures!r}")
    return grid


def calibrating_temperature(logits: object, labels: object, temperatures=TEMPERATURES) -> float:
    """The grid temperature of least NLL (temperature scaling, Guo et al. 2017).

    Parameters
    ----------
    logits : torch.Tensor or array_like, shape (N, C)
    labels : torch.Tensor or array_like, shape (N,), int in [0, C)
    temperatures : sequence of float, increasing, positive

    Returns
    -------
    float
    """
    z, grid = _logits(logits), _grid(temperatures)
    losses = [nll(torch.softmax(z / t, dim=1), labels) for t in grid]
    return float(grid[int(np.argmin(losses))])


def mirror_temperature(logits: object, labels: object, temperatures=TEMPERATURES) -> float | None:
    """The temperature beyond the calibrating one whose ECE is the ECE at T = 1.

    With T* = :func:`calibrating_temperature`, the grid is walked away from T* on the side away
    from 1 (upward for T* >= 1) until ECE(T) first reaches ECE(1); of that temperature and the
    one before it, the one whose ECE is closer to ECE(1) (so the twin's ECE is not biased above
    its model's). None when no grid temperature reaches it: an underconfident model whose ECE
    exceeds its error rate (the ECE as T -> 0) has no twin, nor has one whose T* is the grid's end. A model already calibrated at T = 1
    gets a neighbouring grid temperature, a twin hardly different from itself.

    Parameters
    ----------
    logits : torch.Tensor or array_like, shape (N, C)
        The logits of the data the twin is judged on.
    labels : torch.Tensor or array_like, shape (N,), int in [0, C)
    temperatures : sequence of float, increasing, positive

    Returns
    -------
    float or None
    """
    z, grid = _logits(logits), _grid(temperatures)
    t_star = calibrating_temperature(z, labels, grid)
    target = expected_calibration_error(torch.softmax(z, dim=1), labels)
    beyond = grid[grid > t_star] if t_star >= 1 else grid[grid < t_star][::-1]
    gaps = []
    for t in beyond:
        gaps.append(expected_calibration_error(torch.softmax(z / t, dim=1), labels) - target)
        if gaps[-1] >= 0:
            closer = len(gaps) == 1 or gaps[-1] <= -gaps[-2]
            return float(t if closer else beyond[len(gaps) - 2])
    return None
