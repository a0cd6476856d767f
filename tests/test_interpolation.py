"""Tests of harness.interpolation: the loss and accuracy barriers on the segment between two models,
and BatchNorm statistics recomputed along it.

Models come from model_cases.py.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from harness import interpolation
from harness.data import Split
from model_cases import INPUTS, NUM_CLASSES, Case, case_of, make_model


# ----------------------------------------------------------------------------------------------
# Interpolation barrier


def labelled(case: Case, n: int = 64) -> Split:
    gen = torch.Generator().manual_seed(case.seed + 2)
    channels, side = INPUTS[case.name]
    x = torch.randn(n, channels, side, side, generator=gen)
    return Split(x, torch.randint(0, NUM_CLASSES, (n,), generator=gen))


def own_loss(model: nn.Module, data: Split) -> tuple[float, float]:
    with torch.no_grad():
        logits = model.eval()(data.x).double()
    loss = torch.nn.functional.cross_entropy(logits, data.y).item()
    return loss, (logits.argmax(1) == data.y).double().mean().item()


@pytest.mark.parametrize("kind", ["mlp", "small_cnn", "resnet20-group"])
def test_interpolation_endpoints_are_the_models_own_loss(kind):
    a, b = make_model(case_of(kind, 0)), make_model(case_of(kind, 1))
    data = labelled(case_of(kind))
    curve = interpolation.interpolation_barrier(a, b, data, n_points=5)
    assert curve.t.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    for index, model in ((0, a), (-1, b)):
        loss, accuracy = own_loss(model, data)
        assert curve.loss[index].item() == pytest.approx(loss, rel=1e-6)
        # Exact: lerp is exact at t = 0 and 1, so these are the same weights through the same
        # forward pass (one batch of 64 either way); only the loss's reduction differs.
        assert curve.accuracy[index].item() == accuracy
    assert torch.isfinite(curve.loss).all() and ((curve.accuracy >= 0) & (curve.accuracy <= 1)).all()
    chord = (1 - curve.t) * curve.loss[0] + curve.t * curve.loss[-1]
    assert curve.loss_barrier == pytest.approx((curve.loss - chord).max().item()) and curve.loss_barrier >= 0
    assert 0 <= curve.accuracy_barrier <= 1


@pytest.mark.parametrize("kind", ["mlp", "resnet20-batch"])
def test_barrier_between_a_model_and_itself_is_zero(kind):
    case = case_of(kind)
    model = make_model(case)
    data = labelled(case)
    curve = interpolation.interpolation_barrier(model, copy.deepcopy(model), data, n_points=4, bn_data=data.x)
    # Exact by construction, on any CPU: lerp(w, w, t) == w bitwise, so every point evaluates the
    # same weights (and recomputes the same BatchNorm statistics) by the same kernels, giving one
    # loss value; and the chord is lerp(loss, loss, t) == loss, so loss - chord is exactly 0.
    # (With the chord (1 - t) * loss + t * loss this was 4.4e-16 for losses that round badly.)
    assert torch.unique(curve.loss).numel() == 1 and torch.unique(curve.accuracy).numel() == 1
    assert curve.loss_barrier == 0.0 and curve.accuracy_barrier == 0.0


def test_barrier_at_a_known_midpoint():
    """b = a with the head negated: at t = 1/2 the head is exactly zero, the logits are uniform and
    the loss is log(classes); argmax of equal logits is class 0."""
    case = Case("mlp", (16,), "none", 0)
    a = make_model(case)
    b = copy.deepcopy(a)
    with torch.no_grad():
        b.head.weight.neg_()
        b.head.bias.neg_()
    data = labelled(case)
    curve = interpolation.interpolation_barrier(a, b, data, n_points=3)
    assert curve.loss[1].item() == pytest.approx(math.log(NUM_CLASSES), rel=1e-12)
    assert curve.accuracy[1].item() == (data.y == 0).double().mean().item()
    chord = (curve.loss[0] + curve.loss[2]).item() / 2
    assert curve.loss_barrier == pytest.approx(max(0.0, math.log(NUM_CLASSES) - chord), rel=1e-12)


def test_batchnorm_statistics_are_recomputed_at_every_point():
    case = case_of("resnet20-batch")
    a, b = make_model(case), make_model(case_of("resnet20-batch", 1))  # random running stats
    data, train = labelled(case), labelled(case_of("resnet20-batch", 7), n=32)
    with pytest.raises(ValueError, match=r"the models have BatchNorm: pass bn_data"):
        interpolation.interpolation_barrier(a, b, data)
    curve = interpolation.interpolation_barrier(a, b, data, n_points=3, bn_data=train, batch_size=len(train))

    # The endpoint is model_a evaluated with statistics re-estimated on `train`, not its own.
    refit = interpolation.recompute_batchnorm_stats_(copy.deepcopy(a), train.x, batch_size=len(train))
    assert curve.loss[0].item() == pytest.approx(own_loss(refit, data)[0], rel=1e-6)
    assert curve.loss[0].item() != pytest.approx(own_loss(a, data)[0], rel=1e-3)
    # One batch of all of `train` gives its exact moments (unbiased variance, as BatchNorm keeps).
    with torch.no_grad():
        pre = a.stem.conv(train.x)
    torch.testing.assert_close(refit.stem.norm.running_mean, pre.mean((0, 2, 3)))
    torch.testing.assert_close(refit.stem.norm.running_var, pre.var((0, 2, 3), unbiased=True))
    assert not refit.training and refit.stem.norm.momentum == a.stem.norm.momentum


@pytest.mark.parametrize("kwargs, message", [
    ({"n_points": 1}, r"n_points=1 is invalid: expected an int >= 2"),
    ({"data": Split(torch.randn(4, 64), torch.zeros(4))}, r"data.y must be an int64 tensor of shape \(4,\)"),
    ({"data": Split(torch.randn(4, 64), torch.full((4,), 10))}, r"labels must lie in 0..9 for this model; got 10..10"),
    ({"data": torch.randn(4, 64)}, r"data.y must be an int64 tensor"),
])
def test_interpolation_validates_its_inputs(kwargs, message):
    a, b = make_model(case_of("mlp", 0)), make_model(case_of("mlp", 1))
    call = {"data": Split(torch.randn(4, 64), torch.zeros(4, dtype=torch.int64)), **kwargs}
    with pytest.raises(ValueError, match=message):
        interpolation.interpolation_barrier(a, b, **call)


def test_a_failing_forward_pass_leaves_the_batchnorm_layers_as_they_were():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=0.3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    model.eval()
    with pytest.raises(RuntimeError):
        interpolation.recompute_batchnorm_stats_(model, torch.randn(5, 1, 8, 8))  # 1 channel, not 3
    assert model[1].momentum == 0.3 and not model.training and not model[1].training


def test_batchnorm_inputs_are_a_fixed_subset_of_distinct_training_rows():
    x = torch.arange(50.0).reshape(50, 1, 1, 1)
    subset = interpolation.batchnorm_inputs(x, n=20)
    assert subset.shape == (20, 1, 1, 1) and len(subset.flatten().unique()) == 20
    assert torch.equal(subset, interpolation.batchnorm_inputs(x, n=20))  # every call: the same images
    assert not torch.equal(subset, interpolation.batchnorm_inputs(x, n=20, seed=1))
    assert interpolation.batchnorm_inputs(x, n=50) is x  # no more images than asked: all of them
    assert interpolation.BATCHNORM_IMAGES >= 512


def test_barrier_statistics_come_from_the_batchnorm_subset(monkeypatch):
    case = case_of("resnet20")
    model, data = make_model(case), labelled(case, 40)
    monkeypatch.setattr(interpolation, "BATCHNORM_IMAGES", 10)
    curve = interpolation.interpolation_barrier(model, copy.deepcopy(model), data, n_points=2, bn_data=data)
    on_subset = interpolation.recompute_batchnorm_stats_(copy.deepcopy(model), interpolation.batchnorm_inputs(data.x))
    loss = nn.functional.cross_entropy(on_subset.eval()(data.x).double(), data.y).item()
    assert curve.loss[0].item() == pytest.approx(loss, rel=1e-5)
