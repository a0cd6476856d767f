"""Weight matching: the permutation of one model's hidden units that aligns it onto another's.

Two independently trained networks may compute similar functions with their hidden units in a
different order (:mod:`harness.symmetry`). Weight matching (Ainsworth et al. 2023, Algorithm 1)
searches the admissible permutations of model_b's units for the one that brings its weights
closest to model_a's; ``symmetry.permute(model_b, perm)`` is then model_b aligned onto a. For
channels under GroupNorm(G, C) the search covers exactly the block-respecting permutations
(:class:`~harness.symmetry.UnitGroup`), solved exactly (see :func:`match_weights`).

BatchNorm running statistics are data statistics, not weights: they do not enter the objective,
and :func:`~harness.symmetry.permute` carries them along with their channels, so a planted
permutation is recovered together with its statistics (P2) and no re-estimate is needed.

Examples
--------
>>> import torch
>>> from harness import matching, models, symmetry
>>> net = models.mlp(64, (32, 32), 10)
>>> twin = symmetry.permute(net, symmetry.random_permutation(symmetry.permutation_spec(net),
...                                                          torch.Generator().manual_seed(0)))
>>> aligned = symmetry.permute(twin, matching.weight_matching(net, twin))
>>> all(torch.equal(v, aligned.state_dict()[k]) for k, v in net.state_dict().items())
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from harness.models import check_same_architecture
from harness.symmetry import Axis, identity_permutation, permutation_spec, take_units
from harness.validation import check_int


class WeightMatchingWarning(RuntimeWarning):
    """Weight matching stopped at ``max_iter`` sweeps while its objective was still improving."""


@dataclass(frozen=True)
class WeightMatching:
    """Result of :func:`match_weights`.

    Attributes
    ----------
    perm : dict of str to torch.Tensor
        Group name -> int64 tensor (n,); ``permute(model_b, perm)`` is aligned onto model_a.
    sweeps : int
        Full sweeps over the unit groups, the last one included (it found no improvement when
        ``converged``).
    converged : bool
        False when ``max_iter`` sweeps all still improved the objective.
    """

    perm: dict[str, torch.Tensor]
    sweeps: int
    converged: bool


def _unit_rows(tensor: torch.Tensor, axis: Axis, size: int) -> torch.Tensor:
    """(size, rest): row i holds every entry of ``tensor`` that belongs to unit i on ``axis``."""
    shape = tensor.shape
    units = tensor.reshape(shape[:axis.dim] + (size, axis.repeat) + shape[axis.dim + 1:])
    return units.movedim(axis.dim, 0).reshape(size, -1)


def _assign(similarity: np.ndarray, norm_groups: int) -> np.ndarray:
    """The admissible permutation p maximising sum_i similarity[i, p[i]].

    For GroupNorm blocks the optimum over block-respecting permutations is exact: the best
    within-block assignment for every (target block g, source block h) pair, then the best
    assignment of source blocks to target blocks on those values.
    """
    if norm_groups == 1:
        return linear_sum_assignment(similarity, maximize=True)[1]
    n = similarity.shape[0]
    k = n // norm_groups
    value = np.empty((norm_groups, norm_groups))
    inner = {}
    for g in range(norm_groups):
        for h in range(norm_groups):
            block = similarity[g * k:(g + 1) * k, h * k:(h + 1) * k]
            cols = linear_sum_assignment(block, maximize=True)[1]
            value[g, h] = block[np.arange(k), cols].sum()
            inner[g, h] = cols
    source = linear_sum_assignment(value, maximize=True)[1]
    return np.concatenate([source[g] * k + inner[g, source[g]] for g in range(norm_groups)])


def match_weights(model_a: nn.Module, model_b: nn.Module, max_iter: int = 100, seed: int = 0) -> WeightMatching:
    """Weight matching (Ainsworth et al. 2023, Algorithm 1), with its sweep count.

    Maximises ``sum over parameters of <theta_a, pi(theta_b)>`` over admissible permutations
    ``pi`` of model_b by coordinate descent: visit the unit groups in a random order (seeded),
    and for each solve the linear assignment problem (``scipy.optimize.linear_sum_assignment``)
    on ``S[i, j] = sum over the group's axes of <unit i of a, unit j of b>``, with b's other
    axes permuted by the current permutations of the other groups. A group's permutation is
    replaced only when that strictly raises the objective (up to float rounding), so the
    objective never decreases and the loop stops after the first sweep without improvement.
    For channels under GroupNorm(G, C) with G > 1 the assignment is solved exactly over the
    admissible (block-respecting) permutations: the best within-block assignment for every pair
    of blocks, then the best assignment of blocks on those values.

    Only parameters enter the objective; BatchNorm running statistics are data statistics, not
    weights, and are carried along by :func:`~harness.symmetry.permute`.

    Parameters
    ----------
    model_a, model_b : nn.Module
        Two models of the same architecture (:func:`~harness.symmetry.permutation_spec` must
        know it).
    max_iter : int
        Maximum number of sweeps over all unit groups.
    seed : int
        Seed of the group visiting order.

    Returns
    -------
    WeightMatching
        ``.perm`` aligns model_b onto model_a: ``symmetry.permute(model_b, result.perm)``.

    Raises
    ------
    ValueError
        For models of different architectures (the message names the first difference), non-
        finite weights, or an invalid ``max_iter``/``seed``.

    Warns
    -----
    WeightMatchingWarning
        When ``max_iter`` sweeps were used without converging; the permutation returned is
        still admissible and at least as good as the identity.
    """
    max_iter = check_int("max_iter", max_iter, 1)
    seed = check_int("seed", seed, 0)
    check_same_architecture(model_a, model_b)
    spec = permutation_spec(model_a)
    parameters = {name for name, _ in model_a.named_parameters()}
    state_a = {k: v.detach().double() for k, v in model_a.state_dict().items() if k in parameters}
    state_b = {k: v.detach().double() for k, v in model_b.state_dict().items() if k in parameters}
    # Which groups act on each tensor, so that b's other axes can be permuted by their groups.
    acting: dict[str, list[tuple[str, Axis]]] = {}
    for group in spec.unit_groups:
        for axis in group.axes:
            acting.setdefault(axis.key, []).append((group.name, axis))
    # a's side of every similarity matrix never changes.
    rows_a = {
        (group.name, axis): _unit_rows(state_a[axis.key], axis, group.size)
        for group in spec.unit_groups for axis in group.axes if axis.key in parameters
    }

    perm = {name: p.numpy() for name, p in identity_permutation(spec).items()}
    rng = np.random.default_rng(seed)
    for sweep in range(1, max_iter + 1):
        improved = False
        for index in rng.permutation(len(spec.unit_groups)):
            group = spec.unit_groups[index]
            similarity = torch.zeros(group.size, group.size, dtype=torch.float64)
            for axis in group.axes:
                if axis.key not in parameters:
                    continue
                b = state_b[axis.key]
                for other, other_axis in acting[axis.key]:
                    if other != group.name:
                        b = take_units(b, other_axis, torch.from_numpy(perm[other]))
                similarity += (rows_a[group.name, axis] @ _unit_rows(b, axis, group.size).T).cpu()
            similarity = similarity.numpy()
            old = perm[group.name]
            new = _assign(similarity, group.norm_groups)
            units = np.arange(group.size)
            gain = similarity[units, new].sum() - similarity[units, old].sum()
            # Ties and rounding-level gains keep the old permutation, so the loop terminates.
            if gain > 1e-12 * group.size * np.abs(similarity).max():
                perm[group.name] = new
                improved = True
        if not improved:
            return WeightMatching({k: torch.from_numpy(v).long() for k, v in perm.items()}, sweep, True)
    warnings.warn(
        f"weight matching did not converge in max_iter={max_iter} sweeps over {len(spec.unit_groups)} "
        f"unit groups; returning the best permutation found",
        WeightMatchingWarning, stacklevel=2,
    )
    return WeightMatching({k: torch.from_numpy(v).long() for k, v in perm.items()}, max_iter, False)


def weight_matching(model_a: nn.Module, model_b: nn.Module, max_iter: int = 100,
                    seed: int = 0) -> dict[str, torch.Tensor]:
    """The permutation of model_b's units that aligns it onto model_a (Ainsworth et al., Alg. 1).

    Same parameters, errors and warning as :func:`match_weights`, which also reports the number
    of sweeps.

    Returns
    -------
    dict of str to torch.Tensor
        Group name -> int64 tensor (n,): ``permute(model_b, perm)`` is model_b aligned onto a.
    """
    return match_weights(model_a, model_b, max_iter=max_iter, seed=seed).perm
