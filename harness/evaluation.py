"""Predictions of many weight vectors of one architecture: sampled models, window checkpoints, averages.

:func:`predict_states` evaluates K flat weight vectors (or state dicts) of a run's architecture in
eval mode and returns their softmax outputs, shape (K, N, classes). Two methods compute the same
thing:

``"looped"`` (the reference)
    One model is loaded with each state in turn; for models with BatchNorm its statistics are
    recomputed on a fixed training subset (:func:`harness.interpolation.recompute_batchnorm_stats_`
    on :func:`harness.interpolation.batchnorm_inputs`) before it predicts.
``"batched"``
    Chunks of :data:`MODELS_PER_CHUNK` states are evaluated at once with ``torch.func``: the
    stacked parameters are mapped over with ``vmap`` of ``functional_call`` and the inputs are
    shared (``in_dims=None``). For BatchNorm models every BatchNorm layer is swapped for a
    :class:`_BatchNormProbe` that reads the statistics of its input, so one vmapped forward pass
    per statistics batch gives every model its own statistics, computed exactly as the looped
    path does (same batches, train-mode normalisation inside each batch, unbiased variances
    averaged over the batches with equal weight); a second vmapped pass then predicts with them.

The two agree to float rounding (different convolution kernels), not bitwise. ``"auto"`` (the
default) is ``"batched"`` for the built-in architectures on CUDA and for those without convolutions
(the MLP) on the CPU, where vmapped convolutions ran slower than the loop; it is ``"looped"`` for
user factories, whose modules ``vmap`` may not support, and for BatchNorm layers without running
statistics.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from harness.interpolation import batchnorm_inputs, recompute_batchnorm_stats_
from harness.settings import Setting
from harness.training import Run, eval_batch_size, model_at, predict_proba
from harness.weightspace import parameter_names

__all__ = ["BATCHNORM_BATCH", "METHODS", "MODELS_PER_CHUNK", "ROWS_PER_PASS", "predict_states"]

METHODS = ("auto", "batched", "looped")
_BATCHNORM = nn.modules.batchnorm._BatchNorm
# Images per forward pass when BatchNorm statistics are recomputed. The statistics depend on it (each
# batch is normalised by its own moments before the next layer sees it), so both methods use it.
BATCHNORM_BATCH = 1024
# Memory bound of one vmapped forward pass: activations grow with models x images, so the models
# per chunk times the images per pass is held at ROWS_PER_PASS model-image rows. The statistics pass
# needs whole BATCHNORM_BATCH-image batches, so a chunk holds ROWS_PER_PASS // BATCHNORM_BATCH = 8
# models: a ResNet20's widest activation (16 x 32 x 32 float32, 64 KiB a row) then takes 512 MiB,
# a few of which are alive at once.
ROWS_PER_PASS = 8192
MODELS_PER_CHUNK = ROWS_PER_PASS // BATCHNORM_BATCH
# Whether "auto" batches convolutional models on the CPU: it does not, as there the vmapped
# convolutions (grouped convolutions) and max-pools (a copy to move the model dimension) ran slower
# than the looped path (8 sampled models, 1,000 16x16 images, 2,048 BatchNorm images, one thread
# of the 2-core development machine: SmallCNN 0.41 s looped against 1.6 s batched; ResNet20 with
# BatchNorm 20 s against 140 s, with GroupNorm 12 s against 30 s), while an MLP ran ~5x faster
# batched. On CUDA the batched path replaces K small launches per layer with one.
_CPU_BATCHES_CONVOLUTIONS = False


# ----------------------------------------------------------------------------------------------
# Stacked states


def stack_states(states: torch.Tensor | Sequence[Mapping[str, torch.Tensor]],
                 template: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """K states as stacked tensors (mapped over) and the template's tensors they share.

    Parameters
    ----------
    states : torch.Tensor, shape (K, D), or sequence of K state dicts
        Flat vectors in the order of ``harness.weightspace.weight_vector(state, "all")`` (every
        floating-point parameter; :func:`harness.subspace.flatten`), or complete state dicts.
    template : dict of str to torch.Tensor
        A state dict of the architecture (the run's final epoch): names, shapes, dtypes, buffers.

    Returns
    -------
    stacked : dict of str to torch.Tensor, shape (K, *shape) each
        Flat vectors: every parameter. State dicts: every floating-point entry (buffers included).
    shared : dict of str to torch.Tensor
        The template's remaining entries (buffers of flat vectors; integer counters).
    """
    if isinstance(states, torch.Tensor):
        if states.ndim != 2:
            raise ValueError(f"states must be flat vectors (K, D) or a list of state dicts; got shape "
                             f"{tuple(states.shape)}")
        names = parameter_names(template, "all")
        sizes = [template[k].numel() for k in names]
        if states.shape[1] != sum(sizes):
            raise ValueError(f"states have {states.shape[1]} values each but the template has {sum(sizes)} "
                             "parameters")
        parts = torch.split(states, sizes, dim=1)
        stacked = {k: p.reshape(len(states), *template[k].shape).to(template[k].dtype)
                   for k, p in zip(names, parts, strict=True)}
    else:
        states = list(states)
        names = [k for k, t in template.items() if t.is_floating_point()]
        stacked = {k: torch.stack([s[k].to(template[k].dtype) for s in states]) for k in names} if states else {}
    if len(states) == 0:
        raise ValueError("states is empty: expected at least one weight vector")
    shared = {k: t for k, t in template.items() if k not in stacked}
    return stacked, shared


def state_at(stacked: Mapping[str, torch.Tensor], shared: Mapping[str, torch.Tensor],
             i: int) -> dict[str, torch.Tensor]:
    """The ``i``-th state dict of :func:`stack_states`' output (the looped path loads these)."""
    return {**shared, **{k: t[i] for k, t in stacked.items()}}


# ----------------------------------------------------------------------------------------------
# BatchNorm under vmap


class _BatchNormProbe(nn.Module):
    """A BatchNorm layer (any input rank) for ``vmap``: no in-place running-statistics update.

    With ``sink`` a dict, it normalises by the batch's own moments (train mode) and stores
    ``(mean, unbiased variance)`` of its input, shape (C,) each, under its ``name``; with ``sink``
    None it normalises by ``running_mean`` / ``running_var`` (eval mode). Parameter and buffer names
    are those of the layer it replaces, so ``functional_call`` takes the same state dict.
    """

    def __init__(self, layer: nn.modules.batchnorm._BatchNorm, name: str):
        super().__init__()
        self.name, self.eps, self.sink = name, layer.eps, None
        self.weight, self.bias = layer.weight, layer.bias
        for key, buffer in layer.named_buffers(recurse=False):
            self.register_buffer(key, buffer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, ...) -> (N, C, ...)."""
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if self.sink is not None:
            dims = [0, *range(2, x.ndim)]
            mean, var = x.mean(dims), x.var(dims, correction=0)
            count = x.numel() // x.shape[1]
            self.sink[self.name] = (mean, var * count / max(count - 1, 1))
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + self.eps)
        if self.weight is not None:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        return out


def _batchnorm_layers(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, _BATCHNORM)]


def _with_probes(model: nn.Module) -> tuple[nn.Module, list[_BatchNormProbe]]:
    """A copy of ``model`` whose BatchNorm layers are :class:`_BatchNormProbe`, and the probes."""
    model = copy.deepcopy(model)
    probes = []
    for name in _batchnorm_layers(model):
        parent, _, child = name.rpartition(".")
        probe = _BatchNormProbe(model.get_submodule(name), name)
        setattr(model.get_submodule(parent) if parent else model, child, probe)
        probes.append(probe)
    return model.eval(), probes


def _batch_statistics(model: nn.Module, probes: Sequence[_BatchNormProbe], stacked: dict, shared: dict,
                      x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every probe's statistics for each of the M stacked states on one batch ``x``.

    Returns ``{"<layer>.running_mean": (M, C), "<layer>.running_var": (M, C), ...}``.
    """
    def one(state: dict, x: torch.Tensor) -> list[torch.Tensor]:
        sink: dict = {}
        for probe in probes:
            probe.sink = sink
        try:
            functional_call(model, (state, shared), (x,))
        finally:  # the probes must not keep batched tensors, nor stay in statistics mode
            for probe in probes:
                probe.sink = None
        return [t for probe in probes for t in sink[probe.name]]

    values = vmap(one, in_dims=(0, None))(stacked, x)
    keys = [f"{p.name}.{k}" for p in probes for k in ("running_mean", "running_var")]
    return dict(zip(keys, values, strict=True))


def recompute_batchnorm_stats(model: nn.Module, probes: Sequence[_BatchNormProbe], stacked: dict,
                              shared: dict, train_x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every stacked state's BatchNorm running statistics on ``train_x``, as the looped path's.

    ``recompute_batchnorm_stats_`` with ``momentum=None`` averages each batch's mean and unbiased
    variance with equal weight over the :data:`BATCHNORM_BATCH`-image batches; so does this.

    Parameters
    ----------
    model, probes
        From :func:`_with_probes`.
    stacked, shared : dict of str to torch.Tensor
        From :func:`stack_states` (M stacked states), on the model's device.
    train_x : torch.Tensor, shape (B, C, H, W)
        :func:`harness.interpolation.batchnorm_inputs` of the training split.

    Returns
    -------
    dict of str to torch.Tensor
        ``running_mean`` and ``running_var`` of every BatchNorm layer, shape (M, C) each.
    """
    batches = [train_x[i:i + BATCHNORM_BATCH] for i in range(0, len(train_x), BATCHNORM_BATCH)]
    total: dict[str, torch.Tensor] = {}
    for batch in batches:
        for key, value in _batch_statistics(model, probes, stacked, shared, batch).items():
            total[key] = total[key] + value if key in total else value
    return {key: value / len(batches) for key, value in total.items()}


# ----------------------------------------------------------------------------------------------
# The two methods


def _predict_batched(model: nn.Module, stacked: dict, shared: dict, x: torch.Tensor, batch_size: int,
                     train_x: torch.Tensor | None) -> torch.Tensor:
    """Softmax outputs (K, N, classes) of the K stacked states, MODELS_PER_CHUNK at a time."""
    has_bn = bool(_batchnorm_layers(model))
    if has_bn:
        model, probes = _with_probes(model)
    device = next(model.parameters()).device
    k = len(next(iter(stacked.values())))
    shared = {key: t.to(device) for key, t in shared.items()}
    out = []
    for start in range(0, k, MODELS_PER_CHUNK):
        chunk = {key: t[start:start + MODELS_PER_CHUNK].to(device) for key, t in stacked.items()}
        if has_bn:
            stats = recompute_batchnorm_stats(model, probes, chunk, shared, train_x)
            chunk = {**chunk, **stats}
            common = {key: t for key, t in shared.items() if key not in stats}
        else:
            common = shared

        def forward(state: dict, x: torch.Tensor) -> torch.Tensor:
            return functional_call(model, (state, common), (x,))

        logits = torch.cat([vmap(forward, in_dims=(0, None))(chunk, x[i:i + batch_size]).float().cpu()
                            for i in range(0, len(x), batch_size)], dim=1)
        out.append(F.softmax(logits, dim=-1))
    return torch.cat(out)


def _predict_looped(model: nn.Module, stacked: dict, shared: dict, x: torch.Tensor, batch_size: int,
                    train_x: torch.Tensor | None) -> torch.Tensor:
    """The reference: softmax outputs (K, N, classes), one state loaded into ``model`` at a time."""
    has_bn = bool(_batchnorm_layers(model))
    out = []
    for i in range(len(next(iter(stacked.values())))):
        model.load_state_dict(state_at(stacked, shared, i))
        if has_bn:
            recompute_batchnorm_stats_(model, train_x, BATCHNORM_BATCH)
        out.append(predict_proba(model, x, batch_size))
    return torch.stack(out)


def _batchable(setting: Setting, model: nn.Module, device: torch.device) -> bool:
    """Whether ``"auto"`` batches: a built-in architecture whose BatchNorm layers keep running
    statistics, on CUDA, or on the CPU without convolutions (see :data:`_CPU_BATCHES_CONVOLUTIONS`)."""
    plain = all(m.track_running_stats for m in model.modules() if isinstance(m, _BATCHNORM))
    convolutional = any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
    fast = device.type == "cuda" or _CPU_BATCHES_CONVOLUTIONS or not convolutional
    return setting.model.factory is None and plain and fast


@torch.no_grad()
def predict_states(setting: Setting, run: Run, states: torch.Tensor | Sequence[Mapping[str, torch.Tensor]],
                   x: torch.Tensor, batch_size: int | None = None, train_x: torch.Tensor | None = None,
                   device: torch.device | str = "cpu", method: str = "auto") -> torch.Tensor:
    """Softmax probabilities of many weight vectors of ``run``'s architecture, in eval mode.

    For models with BatchNorm the running statistics of every state are recomputed on a fixed
    subset of ``train_x`` (:func:`harness.interpolation.batchnorm_inputs`): the statistics of the
    unperturbed centre would not describe the perturbed network.

    Parameters
    ----------
    setting : Setting
        The run's setting.
    run : Run
        Gives the architecture and the buffers of flat states (its final epoch).
    states : torch.Tensor, shape (K, D), or sequence of K state dicts
        Flat vectors as the samplers of :mod:`harness.subspace` return, or complete state dicts.
    x : torch.Tensor, shape (N, C, H, W)
        Inputs, e.g. ``harness.data.load(setting.dataset).test.x``.
    batch_size : int, optional
        Images per forward pass and model (default: :func:`harness.training.eval_batch_size` for
        the looped path; ``ROWS_PER_PASS // MODELS_PER_CHUNK`` for the batched one).
    train_x : torch.Tensor, shape (M, C, H, W), optional
        Training inputs; required when the model has BatchNorm layers.
    device : torch.device or str
        Where the forward passes run (inputs are moved there once).
    method : {"auto", "batched", "looped"}
        See the module docstring; all give the same predictions up to float rounding.

    Returns
    -------
    torch.Tensor, shape (K, N, classes), float32, on the CPU
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid: expected one of {METHODS}")
    device = torch.device(device)
    model = model_at(setting, run, run.epochs[-1]).to(device)
    stacked, shared = stack_states(states, run.weights[run.epochs[-1]])
    if _batchnorm_layers(model) and train_x is None:
        raise ValueError(f"{setting.name} has BatchNorm layers: pass train_x to recompute their statistics")
    x = x.to(device)
    train_x = None if train_x is None else batchnorm_inputs(train_x).to(device)
    if method == "looped" or (method == "auto" and not _batchable(setting, model, device)):
        return _predict_looped(model, stacked, shared, x, batch_size or eval_batch_size(model), train_x)
    # The default layout, not harness.training.inference_layout's channels-last: under vmap
    # channels-last GroupNorm raises (torch 2.13: "NYI: querying is_contiguous inside of vmap"),
    # adaptive average pooling falls back to a slow per-model loop, and it made the vmapped
    # SmallCNN only 0-10% faster on the CPU (8 models, 1,000 16x16 images, one thread: 0.78-1.0 s
    # either way, within the noise of a shared machine).
    batch_size = batch_size or ROWS_PER_PASS // MODELS_PER_CHUNK
    return _predict_batched(model, stacked, shared, x.contiguous(), batch_size,
                            None if train_x is None else train_x.contiguous())
