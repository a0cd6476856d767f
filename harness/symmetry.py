"""Neuron-permutation symmetry: permutation specs, permuted models, weight matching, barriers.

The symmetry
------------
Hidden units can be relabelled without changing the function a network computes. For a hidden
layer ``h = relu(W1 x + b1)`` feeding ``y = W2 h + b2``, any permutation matrix ``P`` gives
``relu(P W1 x + P b1) = P h`` (the non-linearity acts elementwise) and ``(W2 P^T)(P h) = W2 h``:
permuting the rows of ``W1`` and ``b1`` and the columns of ``W2`` together leaves ``y`` unchanged,
while the weight vector moves to a different point of weight space (claim P1). The same holds for
the output channels of a convolution (rows of its kernel, its bias, the input channels of the next
kernel): dropout, max-pooling and ReLU act per channel and commute with the relabelling.

Conventions
-----------
A *unit group* is a set of hidden units that is relabelled as one, with every (state-dict entry,
axis) it acts on (:class:`UnitGroup`, :class:`Axis`). A permutation is a dict mapping each group's
name to an int64 tensor ``p`` of shape (n,): unit ``i`` of the permuted model is unit ``p[i]`` of
the original, i.e. every axis is ``index_select``-ed with ``p``. :func:`permutation_spec` derives
the groups from a model's module structure:

MLP (``hidden.<i>.linear``)
    One group per hidden layer: rows of its weight and bias, columns of the next layer's weight.
OfficialCNN (``blocks.<i>.conv``, small_cnn and medium_cnn)
    One group per conv: kernel dim 0 and bias, next kernel dim 1. The last conv feeds the dense
    head through an NCHW flatten, so each channel owns H*W *consecutive* input features of the
    head and they move as a block (``Axis.repeat = H*W``).
ResNet20 (residual constraint)
    A block computes ``relu(norm2(conv2(...)) + shortcut(x))``. The sum is only equivariant if
    both summands are permuted alike, and an identity shortcut passes the input's permutation
    through unchanged, so every tensor on one residual stream shares one permutation: the stem
    conv and norm and every block's conv2/norm2 output in stage 1 (``stages.0.residual``); in
    stages 2 and 3 the 1x1 shortcut conv starts a new stream that every conv2/norm2 of the stage
    joins (``stages.<s>.residual``). The stream's consumers (each block's conv1 and shortcut conv
    inputs, finally the head's inputs) take the permutation on their input axis. Only a block's
    inner channels (conv1 out, norm1, conv2 in) are free: ``stages.<s>.<b>.inner``.

Normalisation layers
--------------------
BatchNorm normalises each channel on its own, so its weight, bias, running_mean and running_var
move with their channels and the permuted model's eval-mode output equals the original's (P1),
and a planted permutation is recovered together with the statistics (P2): no re-estimate is
needed. Running statistics are *not* weights, though: they belong to the exact weights they
were collected with. An interpolated or perturbed network's activation statistics are not the
interpolation of the endpoints' statistics (the variance of a mixture is not the mixture of
variances), so :func:`interpolation_barrier` recomputes them on training data at every point
(:func:`recompute_batchnorm_stats_`); so must anyone evaluating perturbed BatchNorm weights.

GroupNorm(G, C) normalises each of G contiguous blocks of C/G channels with shared statistics.
A channel permutation preserves the function only if it maps every block onto a block: whole
blocks may be exchanged and channels permuted within blocks, nothing else. ``UnitGroup.norm_groups``
records G; :func:`random_permutation` draws from exactly that set, :func:`weight_matching` solves
its assignment problem over exactly that set (exactly, see :func:`match_weights`), and
:func:`permute` rejects anything else. ``norm="layer"`` is GroupNorm(1, C): any permutation.

Examples
--------
>>> import torch
>>> from harness import models, symmetry
>>> net = models.mlp(64, (32, 32), 10)
>>> spec = symmetry.permutation_spec(net)
>>> [group.name for group in spec.unit_groups]
['hidden.0.linear', 'hidden.1.linear']
>>> perm = symmetry.random_permutation(spec, torch.Generator().manual_seed(0))
>>> twin = symmetry.permute(net, perm)
>>> x = torch.randn(4, 64)
>>> torch.allclose(net(x), twin(x), atol=1e-6)
True
>>> aligned = symmetry.permute(twin, symmetry.weight_matching(net, twin))
>>> all(torch.equal(v, aligned.state_dict()[k]) for k, v in net.state_dict().items())
True
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from harness.models import MLP, OfficialCNN, ResNet20

# Modules whose per-channel tensors a unit group moves; any other module on a unit's path is an
# error in permutation_spec, not a silent omission that would break P1.
_CHANNEL_MODULES = (nn.Linear, nn.Conv2d, nn.BatchNorm2d, nn.GroupNorm, nn.Identity)
_BATCHNORM = nn.modules.batchnorm._BatchNorm


class WeightMatchingWarning(RuntimeWarning):
    """Weight matching stopped at ``max_iter`` sweeps while its objective was still improving."""


# ----------------------------------------------------------------------------------------------
# Permutation specs


@dataclass(frozen=True)
class Axis:
    """One axis of one state-dict entry that a unit group permutes.

    Attributes
    ----------
    key : str
        State-dict name, e.g. ``"blocks.0.conv.weight"`` or ``"stem.norm.running_var"``.
    dim : int
        The tensor axis that indexes the group's units.
    repeat : int
        Consecutive entries along ``dim`` per unit: 1, except for a dense layer after an NCHW
        flatten, where each channel owns H*W consecutive input features.
    """

    key: str
    dim: int
    repeat: int = 1


@dataclass(frozen=True)
class UnitGroup:
    """Hidden units that one permutation relabels, and every axis it acts on.

    Attributes
    ----------
    name : str
        Derived from the module names: the producing layer (``"blocks.0.conv"``), a residual
        stream (``"stages.1.residual"``) or a block's inner channels (``"stages.1.0.inner"``).
    size : int
        Units n in the group; permutations of it have shape (n,).
    axes : tuple of Axis
    norm_groups : int
        G of the GroupNorm layers on these channels (1 otherwise): the units form G contiguous
        blocks of n / G, and an admissible permutation maps every block onto a block.
    """

    name: str
    size: int
    axes: tuple[Axis, ...]
    norm_groups: int = 1

    @property
    def block_size(self) -> int:
        """Units per GroupNorm block (``size`` when ``norm_groups`` is 1)."""
        return self.size // self.norm_groups


@dataclass(frozen=True)
class PermutationSpec:
    """The permutation symmetry of one architecture: its unit groups, input to output.

    Attributes
    ----------
    architecture : str
        Class name of the model the spec was derived from.
    unit_groups : tuple of UnitGroup
    """

    architecture: str
    unit_groups: tuple[UnitGroup, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Group names, the keys of a permutation dict."""
        return tuple(group.name for group in self.unit_groups)


@dataclass
class _Draft:
    """A unit group while :class:`_SpecBuilder` collects its axes."""

    name: str
    size: int
    axes: list[Axis] = field(default_factory=list)
    norm_groups: set[int] = field(default_factory=set)


class _SpecBuilder:
    """Collects unit groups from modules, naming tensors by the model's own module names."""

    def __init__(self, model: nn.Module):
        self._model = model
        self._module_names = {id(module): name for name, module in model.named_modules()}
        self._drafts: list[_Draft] = []

    def name(self, module: nn.Module) -> str:
        return self._module_names[id(module)]

    def group(self, name: str, size: int) -> _Draft:
        draft = _Draft(name, size)
        self._drafts.append(draft)
        return draft

    def outputs(self, draft: _Draft, module: nn.Module) -> None:
        """The group indexes dim 0 of every per-channel tensor of ``module`` (kernel rows, bias,
        normalisation affine parameters and running statistics)."""
        self._check_type(module)
        if isinstance(module, nn.GroupNorm):
            draft.norm_groups.add(module.num_groups)
        prefix = self.name(module)
        for key, tensor in chain(module.named_parameters(recurse=False), module.named_buffers(recurse=False)):
            if not tensor.is_floating_point():
                continue  # num_batches_tracked: a counter, not per channel
            self._check_size(draft, f"{prefix}.{key}", tensor, 0, 1)
            draft.axes.append(Axis(f"{prefix}.{key}", 0))

    def inputs(self, draft: _Draft, module: nn.Linear | nn.Conv2d, repeat: int = 1) -> None:
        """The group indexes the input axis (dim 1) of ``module``'s kernel."""
        self._check_type(module)
        key = f"{self.name(module)}.weight"
        self._check_size(draft, key, module.weight, 1, repeat)
        draft.axes.append(Axis(key, 1, repeat))

    def build(self) -> PermutationSpec:
        groups = []
        for draft in self._drafts:
            if len(draft.norm_groups) > 1:
                raise ValueError(
                    f"unit group {draft.name!r} passes through GroupNorm layers with different group "
                    f"counts {sorted(draft.norm_groups)}; no channel permutation is admissible for all"
                )
            groups.append(UnitGroup(draft.name, draft.size, tuple(draft.axes), max(draft.norm_groups, default=1)))
        names = [group.name for group in groups]
        if len(set(names)) != len(names):
            raise ValueError(f"{type(self._model).__name__}: duplicate unit group names {names}")
        return PermutationSpec(type(self._model).__name__, tuple(groups))

    def _check_type(self, module: nn.Module) -> None:
        if not isinstance(module, _CHANNEL_MODULES):
            raise TypeError(
                f"permutation_spec: module {self.name(module)!r} of type {type(module).__name__} is on a "
                f"permuted path but has no permutation rule; known: {[m.__name__ for m in _CHANNEL_MODULES]}"
            )

    @staticmethod
    def _check_size(draft: _Draft, key: str, tensor: torch.Tensor, dim: int, repeat: int) -> None:
        # A structural surprise (a layer added to models.py) must fail here, not give a wrong spec.
        if tensor.ndim <= dim or tensor.shape[dim] != draft.size * repeat:
            raise ValueError(
                f"permutation_spec: {key} has shape {tuple(tensor.shape)}, expected {draft.size * repeat} "
                f"entries on dim {dim} for unit group {draft.name!r} of {draft.size} units"
            )


def _mlp_spec(model: MLP, spec: _SpecBuilder) -> None:
    layers = [block.linear for block in model.hidden]
    for layer, consumer in zip(layers, layers[1:] + [model.head], strict=True):
        group = spec.group(spec.name(layer), layer.out_features)
        spec.outputs(group, layer)
        spec.inputs(group, consumer)


def _cnn_spec(model: OfficialCNN, spec: _SpecBuilder) -> None:
    convs = [block.conv for block in model.blocks]
    for i, conv in enumerate(convs):
        group = spec.group(spec.name(conv), conv.out_channels)
        spec.outputs(group, conv)
        if i + 1 < len(convs):
            spec.inputs(group, convs[i + 1])
        else:
            # Flatten of (N, C, H, W): channel c owns head inputs c*H*W ... (c+1)*H*W - 1.
            if model.head.in_features % conv.out_channels:
                raise ValueError(
                    f"permutation_spec: head.in_features={model.head.in_features} is not a multiple of the "
                    f"last conv's {conv.out_channels} channels; cannot map the flatten to channels"
                )
            spec.inputs(group, model.head, repeat=model.head.in_features // conv.out_channels)


def _resnet_spec(model: ResNet20, spec: _SpecBuilder) -> None:
    # Walk the residual stream from input to output: an identity shortcut keeps the current
    # stream (and its permutation), a projection shortcut consumes it and starts a new one.
    stream = spec.group(f"{spec.name(model.stages[0])}.residual", model.stem.conv.out_channels)
    spec.outputs(stream, model.stem.conv)
    spec.outputs(stream, model.stem.norm)
    for stage in model.stages:
        for block in stage:
            spec.inputs(stream, block.conv1)
            inner = spec.group(f"{spec.name(block)}.inner", block.conv1.out_channels)
            spec.outputs(inner, block.conv1)
            spec.outputs(inner, block.norm1)
            spec.inputs(inner, block.conv2)
            if not isinstance(block.shortcut, nn.Identity):
                spec.inputs(stream, block.shortcut.conv)
                stream = spec.group(f"{spec.name(stage)}.residual", block.shortcut.conv.out_channels)
                spec.outputs(stream, block.shortcut.conv)
                spec.outputs(stream, block.shortcut.norm)
            spec.outputs(stream, block.conv2)
            spec.outputs(stream, block.norm2)
    spec.inputs(stream, model.head)


_SPEC_RULES = ((ResNet20, _resnet_spec), (OfficialCNN, _cnn_spec), (MLP, _mlp_spec))


def permutation_spec(model: nn.Module) -> PermutationSpec:
    """The unit groups of ``model`` and the axes each permutes, derived from its modules.

    Parameters
    ----------
    model : nn.Module
        An :class:`~harness.models.MLP`, :class:`~harness.models.OfficialCNN` (small_cnn,
        medium_cnn) or :class:`~harness.models.ResNet20` of any widths and normalisation.

    Returns
    -------
    PermutationSpec
        See the module docstring for the groups of each architecture.

    Raises
    ------
    TypeError
        For a model of another type, or a module on a permuted path that has no rule.
    ValueError
        If a tensor's shape does not match its unit group (a structural change in models.py),
        or GroupNorm layers with different group counts share a unit group.
    """
    for cls, rule in _SPEC_RULES:
        if isinstance(model, cls):
            builder = _SpecBuilder(model)
            rule(model, builder)
            return builder.build()
    raise TypeError(
        f"permutation_spec: no permutation rule for a {type(model).__name__}; "
        f"known: {[cls.__name__ for cls, _ in _SPEC_RULES]}"
    )


# ----------------------------------------------------------------------------------------------
# Permutations


def identity_permutation(spec: PermutationSpec) -> dict[str, torch.Tensor]:
    """The permutation that changes nothing: ``arange(n)`` for every unit group."""
    return {group.name: torch.arange(group.size) for group in spec.unit_groups}


def random_permutation(spec: PermutationSpec, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A uniformly random admissible permutation of every unit group.

    Parameters
    ----------
    spec : PermutationSpec
    generator : torch.Generator
        Source of randomness (seed it for reproducible draws).

    Returns
    -------
    dict of str to torch.Tensor
        Group name -> int64 tensor of shape (n,). For a group with ``norm_groups`` G > 1 the
        draw is uniform over the admissible set: a random order of the G blocks, then a random
        order within each block.
    """
    if not isinstance(spec, PermutationSpec):
        raise TypeError(f"spec must be a PermutationSpec; got a {type(spec).__name__}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator; got a {type(generator).__name__}")
    perm = {}
    for group in spec.unit_groups:
        k = group.block_size
        blocks = torch.randperm(group.norm_groups, generator=generator)
        perm[group.name] = torch.cat([int(b) * k + torch.randperm(k, generator=generator) for b in blocks])
    return perm


def check_permutation(spec: PermutationSpec, perm: dict[str, torch.Tensor]) -> None:
    """Raise ValueError unless ``perm`` is an admissible permutation for ``spec``.

    Admissible: exactly the spec's group names as keys; for each, a 1-D integer tensor of shape
    (n,) whose sorted values are ``arange(n)`` and which maps every GroupNorm block onto a block.
    """
    if not isinstance(perm, dict) or set(perm) != set(spec.names):
        got = sorted(perm) if isinstance(perm, dict) else type(perm).__name__
        raise ValueError(f"permutation for {spec.architecture} must have the keys {list(spec.names)}; got {got}")
    for group in spec.unit_groups:
        p = perm[group.name]
        if not isinstance(p, torch.Tensor) or p.dtype != torch.int64 or p.shape != (group.size,):
            desc = f"{p.dtype} tensor of shape {tuple(p.shape)}" if isinstance(p, torch.Tensor) else type(p).__name__
            raise ValueError(
                f"permutation[{group.name!r}] must be an int64 tensor of shape ({group.size},); got a {desc}"
            )
        if not torch.equal(p.sort().values.cpu(), torch.arange(group.size, dtype=p.dtype)):
            raise ValueError(f"permutation[{group.name!r}] is not a permutation of 0..{group.size - 1}")
        blocks = p.cpu().reshape(group.norm_groups, group.block_size) // group.block_size
        if (blocks != blocks[:, :1]).any():
            raise ValueError(
                f"permutation[{group.name!r}] mixes GroupNorm groups: its {group.size} channels form "
                f"{group.norm_groups} groups of {group.block_size}, and each group must map onto one group"
            )


def _take(tensor: torch.Tensor, axis: Axis, index: torch.Tensor) -> torch.Tensor:
    """``tensor`` with the units on ``axis`` reordered by ``index`` (unit i <- unit index[i])."""
    index = index.to(tensor.device)
    if axis.repeat == 1:
        return tensor.index_select(axis.dim, index)
    shape = tensor.shape
    units = shape[:axis.dim] + (len(index), axis.repeat) + shape[axis.dim + 1:]
    return tensor.reshape(units).index_select(axis.dim, index).reshape(shape)


def permute(model: nn.Module, perm: dict[str, torch.Tensor]) -> nn.Module:
    """A copy of ``model`` with its hidden units relabelled by ``perm``.

    Parameters
    ----------
    model : nn.Module
        Any model :func:`permutation_spec` knows; it is not modified.
    perm : dict of str to torch.Tensor
        Group name -> int64 tensor p of shape (n,): unit i of the result is unit p[i] of
        ``model``. Must be admissible (:func:`check_permutation`).

    Returns
    -------
    nn.Module
        A deep copy (same mode, device and dtype) whose parameters and BatchNorm running
        statistics are permuted; it computes the same function as ``model`` in eval mode, up to
        float rounding (summation order changes).
    """
    spec = permutation_spec(model)
    check_permutation(spec, perm)
    state = model.state_dict()
    for group in spec.unit_groups:
        for axis in group.axes:
            state[axis.key] = _take(state[axis.key], axis, perm[group.name])
    out = copy.deepcopy(model)
    out.load_state_dict(state)
    return out


# ----------------------------------------------------------------------------------------------
# Validation shared by matching and interpolation


def _check_same_architecture(model_a: nn.Module, model_b: nn.Module) -> None:
    """ValueError naming the first difference between two models' architectures, or a
    non-finite weight (a diverged run)."""
    if type(model_a) is not type(model_b):
        raise ValueError(
            f"model_a is a {type(model_a).__name__} and model_b a {type(model_b).__name__}: "
            f"expected two models of the same architecture"
        )
    modules_a, modules_b = dict(model_a.named_modules()), dict(model_b.named_modules())
    if list(modules_a) != list(modules_b):
        only = sorted(set(modules_a) ^ set(modules_b)) or ["(same names, different order)"]
        raise ValueError(f"model_a and model_b have different modules: {only[:4]}")
    for name, a in modules_a.items():
        b = modules_b[name]
        # Dropout is off in eval mode, where everything here is evaluated: runs that differ only
        # in their dropout rate are comparable. Anything else (sizes, GroupNorm groups) is not.
        same = type(a) is type(b) and (isinstance(a, nn.Dropout) or a.extra_repr() == b.extra_repr())
        if not same:
            raise ValueError(
                f"model_a and model_b differ at module {name or '(root)'!r}: {type(a).__name__}({a.extra_repr()}) "
                f"vs {type(b).__name__}({b.extra_repr()}); "
                f"expected two models of the same architecture"
            )
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    for key, a in state_a.items():
        b = state_b[key]
        if a.shape != b.shape:
            raise ValueError(f"{key} has shape {tuple(a.shape)} in model_a and {tuple(b.shape)} in model_b")
        for which, t in (("model_a", a), ("model_b", b)):
            if t.is_floating_point() and not torch.isfinite(t).all():
                raise ValueError(f"{which}: {key} has NaN or infinite values (a diverged run?)")


# ----------------------------------------------------------------------------------------------
# Weight matching


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
    weights, and are carried along by :func:`permute`.

    Parameters
    ----------
    model_a, model_b : nn.Module
        Two models of the same architecture (:func:`permutation_spec` must know it).
    max_iter : int
        Maximum number of sweeps over all unit groups.
    seed : int
        Seed of the group visiting order.

    Returns
    -------
    WeightMatching
        ``.perm`` aligns model_b onto model_a: ``permute(model_b, result.perm)``.

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
    if not isinstance(max_iter, int) or isinstance(max_iter, bool) or max_iter < 1:
        raise ValueError(f"max_iter={max_iter!r} is invalid: expected a positive int")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r} is invalid: expected a non-negative int")
    _check_same_architecture(model_a, model_b)
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
                        b = _take(b, other_axis, torch.from_numpy(perm[other]))
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


# ----------------------------------------------------------------------------------------------
# Linear interpolation


@dataclass(frozen=True)
class Interpolation:
    """Loss and accuracy along the segment (1 - t) theta_a + t theta_b.

    Attributes
    ----------
    t : torch.Tensor, shape (n_points,), float64
        ``linspace(0, 1, n_points)``.
    loss : torch.Tensor, shape (n_points,), float64
        Mean cross-entropy (nats) at each t.
    accuracy : torch.Tensor, shape (n_points,), float64
        Top-1 accuracy in [0, 1] at each t.
    loss_barrier : float
        ``max_t loss(t) - ((1 - t) loss(0) + t loss(1))``; >= 0 (the endpoints give 0).
    accuracy_barrier : float
        ``max_t ((1 - t) acc(0) + t acc(1)) - acc(t)``: the largest accuracy *drop* below the
        chord, in [0, 1], so that larger is worse for both barriers.
    """

    t: torch.Tensor
    loss: torch.Tensor
    accuracy: torch.Tensor
    loss_barrier: float
    accuracy_barrier: float


def _as_inputs(data: object, name: str) -> torch.Tensor:
    x = data if isinstance(data, torch.Tensor) else getattr(data, "x", None)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim < 2 or len(x) == 0:
        raise ValueError(
            f"{name} must be a non-empty float tensor of shape (N, C, H, W), or have one as .x "
            f"(a harness.data.Split); got {type(data).__name__}"
            + (f" with x of dtype {x.dtype} and shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else "")
        )
    return x


def _as_examples(data: object, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = _as_inputs(data, name)
    y = getattr(data, "y", None)
    if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.shape != (len(x),):
        desc = f"a {y.dtype} tensor of shape {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{name}.y must be an int64 tensor of shape ({len(x)},) matching {name}.x; got {desc}")
    return x, y


def _device(model: nn.Module) -> torch.device:
    return next(chain(model.parameters(), model.buffers())).device


def recompute_batchnorm_stats_(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> nn.Module:
    """Re-estimate every BatchNorm layer's running statistics on ``x``, in place; return model.

    Running statistics are reset, then averaged over the batches of ``x`` with equal weight
    (``momentum=None``, PyTorch's cumulative average) in train mode for the BatchNorm layers
    only: dropout and every other module stay in eval mode, so the statistics are those of the
    deterministic network that eval mode evaluates. Models without BatchNorm are returned
    unchanged. The model's train/eval mode and the layers' momentum are restored afterwards.

    Parameters
    ----------
    model : nn.Module
    x : torch.Tensor, shape (N, C, H, W)
        Training inputs (never test data: the statistics are part of the model).
    batch_size : int
        Examples per forward pass; one batch of all of ``x`` gives the exact moments.
    """
    layers = [m for m in model.modules() if isinstance(m, _BATCHNORM)]
    if not layers:
        return model
    was_training = model.training
    momenta = [layer.momentum for layer in layers]
    model.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
        layer.train()
    device = _device(model)
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            model(x[start:start + batch_size].to(device))
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum
    model.train(was_training)
    return model


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` in eval mode, accumulated in float64."""
    model.eval()
    device = _device(model)
    loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(x[start:start + batch_size].to(device)).double()
            target = y[start:start + batch_size].to(device)
            if start == 0 and (y.min() < 0 or y.max() >= logits.shape[1]):
                raise ValueError(f"labels must lie in 0..{logits.shape[1] - 1} for this model; got "
                                 f"{y.min().item()}..{y.max().item()}")
            loss += F.cross_entropy(logits, target, reduction="sum").item()
            correct += (logits.argmax(dim=1) == target).sum().item()
    return loss / len(x), correct / len(x)


def interpolation_barrier(model_a: nn.Module, model_b: nn.Module, data: object, n_points: int = 11, *,
                          bn_data: object = None, batch_size: int = 1024) -> Interpolation:
    """Loss and accuracy on the straight line between two models, and its barriers.

    Evaluates the model with weights ``(1 - t) theta_a + t theta_b`` (``torch.lerp``: exact at
    t = 0 and t = 1, and exact everywhere when the two models are equal) for t in
    ``linspace(0, 1, n_points)``, in eval mode. For a model with BatchNorm the running statistics
    are *recomputed on ``bn_data`` at every t, endpoints included* (see
    :func:`recompute_batchnorm_stats_` and the module docstring): interpolating the stored
    statistics would evaluate the interpolated weights with statistics that belong to no
    network, and recomputing at the endpoints too keeps every point of the curve comparable.
    Without BatchNorm the endpoints reproduce each model's own eval loss exactly.

    Parameters
    ----------
    model_a, model_b : nn.Module
        Two models of the same architecture, on the same device; neither is modified. Align them
        first (``permute(model_b, weight_matching(model_a, model_b))``) for the aligned barrier.
    data : harness.data.Split or object with .x, .y
        x : torch.Tensor, shape (N, C, H, W), float; y : torch.Tensor, shape (N,), int64.
    n_points : int
        Points on the segment, >= 2.
    bn_data : harness.data.Split, object with .x, or torch.Tensor of shape (M, C, H, W)
        Training inputs to recompute BatchNorm statistics on; required when the models have
        BatchNorm, unused otherwise.
    batch_size : int
        Examples per forward pass (for both evaluation and statistics).

    Returns
    -------
    Interpolation

    Raises
    ------
    ValueError
        For models of different architectures (naming the first difference) or with non-finite
        weights, malformed data, labels outside the model's classes, ``n_points < 2``, or a
        BatchNorm model without ``bn_data``.
    """
    if not isinstance(n_points, int) or isinstance(n_points, bool) or n_points < 2:
        raise ValueError(f"n_points={n_points!r} is invalid: expected an int >= 2 (both endpoints)")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} is invalid: expected a positive int")
    _check_same_architecture(model_a, model_b)
    x, y = _as_examples(data, "data")
    has_batchnorm = any(isinstance(m, _BATCHNORM) for m in model_a.modules())
    if has_batchnorm:
        if bn_data is None:
            raise ValueError(
                "the models have BatchNorm: pass bn_data (training inputs, e.g. data.train) to recompute "
                "the running statistics at each point of the interpolation"
            )
        bn_x = _as_inputs(bn_data, "bn_data")

    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    work = copy.deepcopy(model_a)
    t = torch.linspace(0.0, 1.0, n_points, dtype=torch.float64)
    loss = torch.empty(n_points, dtype=torch.float64)
    accuracy = torch.empty(n_points, dtype=torch.float64)
    for i, ti in enumerate(t.tolist()):
        # Integer buffers (num_batches_tracked) are counters, not weights: keep model_a's.
        work.load_state_dict({
            key: torch.lerp(a, state_b[key], ti) if a.is_floating_point() else a for key, a in state_a.items()
        })
        if has_batchnorm:
            recompute_batchnorm_stats_(work, bn_x, batch_size)
        loss[i], accuracy[i] = _evaluate(work, x, y, batch_size)

    # The chords by torch.lerp, as the weights: exact at both ends and, when the two ends are
    # equal, exactly that constant. (1 - t) * v + t * v can miss v by an ulp (3.7356568258199236
    # at t = 2/3 gives 4.4e-16 less), which gave a model and itself a barrier of 4.4e-16 on CPUs
    # whose kernels happen to produce such a loss.
    loss_chord = torch.lerp(loss[0], loss[-1], t)
    accuracy_chord = torch.lerp(accuracy[0], accuracy[-1], t)
    return Interpolation(
        t=t, loss=loss, accuracy=accuracy,
        loss_barrier=(loss - loss_chord).max().item(),
        accuracy_barrier=(accuracy_chord - accuracy).max().item(),
    )
