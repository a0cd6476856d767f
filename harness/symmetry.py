"""Neuron-permutation symmetry: permutation specs and permuted models.

(Just over 400 lines: one permutation spec per architecture, and permuting by it; weight matching
and interpolation live in :mod:`harness.matching` and :mod:`harness.interpolation`.)

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
move with their channels and the permuted model's eval-mode output equals the original's (P1).

GroupNorm(G, C) normalises each of G contiguous blocks of C/G channels with shared statistics.
A channel permutation preserves the function only if it maps every block onto a block: whole
blocks may be exchanged and channels permuted within blocks, nothing else. ``UnitGroup.norm_groups``
records G; :func:`random_permutation` draws from exactly that set, :func:`permute` rejects anything
else, and :func:`harness.matching.weight_matching` searches exactly that set.
``norm="layer"`` is GroupNorm(1, C): any permutation.

Weight matching (aligning one model's units onto another's) is :mod:`harness.matching`.

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
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from itertools import chain

import torch
from torch import nn

from harness.models import MLP, OfficialCNN, ResNet20

# Modules whose per-channel tensors a unit group moves; any other module on a unit's path is an
# error in permutation_spec, not a silent omission that would break P1.
_CHANNEL_MODULES = (nn.Linear, nn.Conv2d, nn.BatchNorm2d, nn.GroupNorm, nn.Identity)


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


def has_permutation_spec(model: nn.Module) -> bool:
    """Whether :func:`permutation_spec` knows ``model``'s architecture (a factory's model: no)."""
    return isinstance(model, tuple(cls for cls, _ in _SPEC_RULES))


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


def take_units(tensor: torch.Tensor, axis: Axis, index: torch.Tensor) -> torch.Tensor:
    """``tensor`` with the units on ``axis`` reordered: unit i of the result is unit ``index[i]``.

    Used by :func:`permute` and by weight matching (:mod:`harness.matching`).

    Parameters
    ----------
    tensor : torch.Tensor
        A state-dict entry with n * ``axis.repeat`` entries on dim ``axis.dim``.
    axis : Axis
        Which dim indexes the units, and how many consecutive entries each unit owns.
    index : torch.Tensor, shape (n,), int64

    Returns
    -------
    torch.Tensor, the shape of ``tensor``
    """
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
            state[axis.key] = take_units(state[axis.key], axis, perm[group.name])
    out = copy.deepcopy(model)
    out.load_state_dict(state)
    return out
