"""Linear interpolation between two models: loss and accuracy along the segment, and its barriers.

The loss barrier between two solutions theta_a and theta_b is the largest excess of the loss on
the straight line (1 - t) theta_a + t theta_b over the chord between the endpoints' losses
(:func:`interpolation_barrier`). Aligning model_b's hidden units onto model_a's first
(:mod:`harness.matching`) gives the barrier after weight matching.

BatchNorm
---------
Running statistics are *not* weights: they belong to the exact weights they were collected
with. An interpolated or perturbed network's activation statistics are not the interpolation of
the endpoints' statistics (the variance of a mixture is not the mixture of variances), so
:func:`interpolation_barrier` recomputes them on training data at every point
(:func:`recompute_batchnorm_stats_`); so must anyone evaluating perturbed BatchNorm weights
(:func:`harness.subspace.predict_states` does).

Examples
--------
>>> import copy
>>> import torch
>>> from harness import interpolation, models
>>> from harness.data import Split
>>> net = models.mlp(64, (32,), 10)
>>> data = Split(torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,)))
>>> curve = interpolation.interpolation_barrier(net, copy.deepcopy(net), data, n_points=5)
>>> curve.t.tolist(), curve.loss_barrier
([0.0, 0.25, 0.5, 0.75, 1.0], 0.0)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from itertools import chain

import torch
import torch.nn.functional as F
from torch import nn

from harness.models import check_same_architecture
from harness.training import eval_batch_size, inference_layout
from harness.validation import check_int

_BATCHNORM = nn.modules.batchnorm._BatchNorm

# The statistics of a perturbed or interpolated BatchNorm network are recomputed on a fixed random
# subset of BATCHNORM_IMAGES training images (BATCHNORM_SEED; all of them when there are fewer):
# at paper scale the whole split is a forward pass over 49.5k images per sampled model, three
# times the compute of training the tier's ten ResNets. The size is the smallest of 512 * 2^k whose
# statistics change a sample's test predictions by at most BATCHNORM_TOLERANCE from those of the
# whole split, measured by `python -m reports.batchnorm` on a ResNet20 (README, "BatchNorm
# statistics"): on a synthetic32 ResNet20 and its random and diagonal-Gaussian samples, subsets of
# 512 / 1,024 / 2,048 / 4,096 images changed at most 2.3% / 1.5% / 0.88% / 0.52% of the test
# predictions (mean of 2 subsets, worst model), at ~1/12 of the whole split's cost at 2,048.
BATCHNORM_IMAGES = 2048
BATCHNORM_SEED = 0
BATCHNORM_TOLERANCE = 0.01  # fraction of test points; 1% of 10,000 is ~2 binomial s.e. of accuracy


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


def batchnorm_inputs(x: torch.Tensor, n: int | None = None, seed: int = BATCHNORM_SEED) -> torch.Tensor:
    """The training inputs BatchNorm statistics are recomputed on: a fixed random subset of ``x``.

    Parameters
    ----------
    x : torch.Tensor, shape (N, C, H, W)
        The training split's inputs.
    n : int, optional
        Images kept (default :data:`BATCHNORM_IMAGES`); ``x`` itself when ``N <= n``.
    seed : int
        Seed of the permutation the first ``n`` images are taken from: every sample, run and
        session uses the same subset.

    Returns
    -------
    torch.Tensor, shape (min(n, N), C, H, W), on ``x``'s device
    """
    n = check_int("n", BATCHNORM_IMAGES if n is None else n, 1)
    if len(x) <= n:
        return x
    keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[keep.to(x.device)]


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
    x = inference_layout(x)
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                model(x[start:start + batch_size].to(device))
    finally:  # a forward pass that raises must not leave the layers in train mode without momentum
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        model.train(was_training)
    return model


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` in eval mode, accumulated in float64."""
    model.eval()
    device = _device(model)
    x, batch_size = inference_layout(x), eval_batch_size(model)
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
    are *recomputed on* :func:`batchnorm_inputs` *of ``bn_data`` at every t, endpoints included* (see
    :func:`recompute_batchnorm_stats_` and the module docstring): interpolating the stored
    statistics would evaluate the interpolated weights with statistics that belong to no
    network, and recomputing at the endpoints too keeps every point of the curve comparable.
    Without BatchNorm the endpoints reproduce each model's own eval loss exactly.

    Parameters
    ----------
    model_a, model_b : nn.Module
        Two models of the same architecture, on the same device; neither is modified. Align them
        first (``symmetry.permute(model_b, matching.weight_matching(model_a, model_b))``) for the
        aligned barrier.
    data : harness.data.Split or object with .x, .y
        x : torch.Tensor, shape (N, C, H, W), float; y : torch.Tensor, shape (N,), int64.
    n_points : int
        Points on the segment, >= 2.
    bn_data : harness.data.Split, object with .x, or torch.Tensor of shape (M, C, H, W)
        Training inputs to recompute BatchNorm statistics on; required when the models have
        BatchNorm, unused otherwise.
    batch_size : int
        Examples per forward pass of the BatchNorm statistics (evaluation takes
        :func:`harness.training.eval_batch_size`: a batch's statistics are averaged, so their size
        is part of what is computed; the evaluation's is not).

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
    n_points = check_int("n_points", n_points, 2)  # both endpoints
    batch_size = check_int("batch_size", batch_size, 1)
    check_same_architecture(model_a, model_b)
    x, y = _as_examples(data, "data")
    has_batchnorm = any(isinstance(m, _BATCHNORM) for m in model_a.modules())
    if has_batchnorm:
        if bn_data is None:
            raise ValueError(
                "the models have BatchNorm: pass bn_data (training inputs, e.g. data.train) to recompute "
                "the running statistics at each point of the interpolation"
            )
        bn_x = batchnorm_inputs(_as_inputs(bn_data, "bn_data"))

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
        loss[i], accuracy[i] = _evaluate(work, x, y)

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
