"""Tests of harness.models: shapes, parameter counts, the official CNN layout, init and errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from harness import models, settings
from harness.settings import ModelSpec

# The official MediumCNN (Keras model summary of the paper's code): 3x32x32 input, 10 classes.
MEDIUM_CNN_PARAMS = 971_146
# ResNet20 v1 with (16, 32, 64) and 10 classes, the "0.27M" of He et al. 2016, table 6: with a
# normalisation layer after every conv, and with biases on the convs instead (784 = channels of
# the 21 normalised convs, each trading 2 affine parameters for 1 bias).
RESNET20_PARAMS = 272_474
RESNET20_PARAMS_NO_NORM = RESNET20_PARAMS - 784
RESNET20_RANGE = (260_000, 280_000)
# Relative tolerance of the empirical Glorot variance; layers tested have >= 10^4 weights, where
# the relative standard error of a uniform's sample variance is 0.89 / sqrt(n) <= 0.9%.
VARIANCE_RTOL = 0.05
MIN_WEIGHTS_FOR_VARIANCE = 10_000

SMALL = (16, 32, 32)
MEDIUM = (64, 128, 256, 256)
RESNET = (16, 32, 64)


def _cnn_params(in_channels: int, image_size: int, widths: tuple[int, ...], num_classes: int) -> int:
    """Independent count for the official CNN: 3x3 convs with bias, then a dense layer."""
    total, channels = 0, in_channels
    for width in widths:
        total += 9 * channels * width + width
        channels = width
    side = image_size // 2 ** len(widths)
    return total + channels * side * side * num_classes + num_classes


# (builder call, input shape) for every size the project uses.
SHAPE_CASES = {
    "digits-mlp": (lambda: models.mlp(64, (64, 64), 10), (1, 8, 8)),
    "synthetic16-small_cnn": (lambda: models.small_cnn(3, 16, 10, SMALL), (3, 16, 16)),
    "cifar-small_cnn": (lambda: models.small_cnn(3, 32, 10), (3, 32, 32)),
    "cifar-medium_cnn": (lambda: models.medium_cnn(3, 32, 10), (3, 32, 32)),
    "cifar100-medium_cnn": (lambda: models.medium_cnn(3, 32, 100), (3, 32, 32)),
    **{f"cifar-resnet20-{norm}": ((lambda norm=norm: models.resnet20(3, 10, RESNET, norm)), (3, 32, 32))
       for norm in settings.NORMS},
}


@pytest.mark.parametrize("case", list(SHAPE_CASES))
def test_output_shape_and_finite(case):
    make, shape = SHAPE_CASES[case]
    torch.manual_seed(0)
    model = make()
    num_classes = model.head.out_features
    out = model(torch.randn(5, *shape))
    assert out.shape == (5, num_classes)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", settings.names())
def test_build_every_registered_setting(name):
    setting = settings.get(name)
    data = setting.dataset
    torch.manual_seed(0)
    model = models.build(setting.model, data.input_shape, data.num_classes)
    out = model.eval()(torch.randn(2, *data.input_shape))
    assert out.shape == (2, data.num_classes)


def test_build_dispatches_every_model_name():
    specs = {
        "mlp": ModelSpec("mlp", (8,)),
        "small_cnn": ModelSpec("small_cnn", SMALL, dropout=0.1),
        "medium_cnn": ModelSpec("medium_cnn", MEDIUM, dropout=0.1),
        "resnet20": ModelSpec("resnet20", RESNET, norm="layer"),
    }
    assert set(specs) == set(settings.MODELS)
    kinds = {name: type(models.build(spec, (3, 32, 32), 10)) for name, spec in specs.items()}
    assert kinds == {"mlp": models.MLP, "small_cnn": models.OfficialCNN, "medium_cnn": models.OfficialCNN,
                     "resnet20": models.ResNet20}


# ----------------------------------------------------------------------------------------------
# Parameter counts


def test_medium_cnn_matches_official_parameter_count():
    model = models.medium_cnn(3, 32, 10)
    assert models.count_parameters(model) == MEDIUM_CNN_PARAMS
    assert _cnn_params(3, 32, MEDIUM, 10) == MEDIUM_CNN_PARAMS


@pytest.mark.parametrize("in_channels, image_size, widths", [(3, 32, SMALL), (3, 16, SMALL), (1, 8, (4, 8))])
def test_cnn_parameter_count_matches_formula(in_channels, image_size, widths):
    model = models.small_cnn(in_channels, image_size, 10, widths)
    assert models.count_parameters(model) == _cnn_params(in_channels, image_size, widths, 10)


@pytest.mark.parametrize("norm", settings.NORMS)
def test_resnet20_parameter_count(norm):
    count = models.count_parameters(models.resnet20(3, 10, RESNET, norm))
    assert count == (RESNET20_PARAMS_NO_NORM if norm == "none" else RESNET20_PARAMS)
    assert RESNET20_RANGE[0] <= count <= RESNET20_RANGE[1]


def test_mlp_parameter_count():
    # 64 -> 64 -> 64 -> 10, weights plus biases.
    assert models.count_parameters(models.mlp(64, (64, 64), 10)) == 64 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10


def test_count_parameters_skips_frozen_parameters_and_buffers():
    model = models.resnet20(3, 10, RESNET, "batch")
    model.head.weight.requires_grad_(False)
    assert models.count_parameters(model) == RESNET20_PARAMS - 64 * 10


# ----------------------------------------------------------------------------------------------
# Structure


def test_official_cnn_layer_order():
    model = models.medium_cnn(3, 32, 10)
    assert [name for name, _ in model.named_children()] == ["blocks", "flatten", "head"]
    blocks = list(model.blocks)
    assert len(blocks) == len(MEDIUM)
    inner = [nn.Conv2d, nn.Dropout, nn.MaxPool2d, nn.ReLU]
    for i, block in enumerate(blocks):
        expected = inner if i < len(blocks) - 1 else inner[:-1]  # no ReLU after the last conv
        assert [type(m) for m in block] == expected, f"block {i}"
        conv, dropout, pool = block.conv, block.dropout, block.pool
        assert conv.kernel_size == (3, 3) and conv.padding == "same" and conv.bias is not None
        assert conv.out_channels == MEDIUM[i]
        assert dropout.p == pytest.approx(0.1)
        assert pool.kernel_size == 2
    assert isinstance(model.head, nn.Linear) and model.head.in_features == 2 * 2 * 256
    assert not any(isinstance(m, nn.ReLU) for m in blocks[-1].modules())


def test_official_cnn_features_reach_the_head_without_relu():
    # Behavioural counterpart of the structural test: the features fed to the dense layer take
    # negative values, which a final ReLU would have removed.
    torch.manual_seed(0)
    model = models.small_cnn(3, 16, 10).eval()
    features = model.flatten(model.blocks(torch.randn(8, 3, 16, 16)))
    assert features.shape == (8, 2 * 2 * 32)
    assert (features < 0).any()


def test_state_dict_names_are_stable_and_input_to_output():
    cnn_keys = list(models.small_cnn(3, 32, 10).state_dict())
    assert cnn_keys == [f"blocks.{i}.conv.{p}" for i in range(3) for p in ("weight", "bias")] + [
        "head.weight", "head.bias"]
    mlp_keys = list(models.mlp(64, (64, 64), 10, dropout=0.2).state_dict())
    assert mlp_keys == ["hidden.0.linear.weight", "hidden.0.linear.bias", "hidden.1.linear.weight",
                        "hidden.1.linear.bias", "head.weight", "head.bias"]
    res_keys = list(models.resnet20(3, 10, RESNET, "layer").state_dict())
    assert res_keys[:3] == ["stem.conv.weight", "stem.norm.weight", "stem.norm.bias"]
    assert res_keys[3:9] == [f"stages.0.0.{m}.{p}" for m, p in [
        ("conv1", "weight"), ("norm1", "weight"), ("norm1", "bias"),
        ("conv2", "weight"), ("norm2", "weight"), ("norm2", "bias")]]
    assert "stages.1.0.shortcut.conv.weight" in res_keys and "stages.2.0.shortcut.norm.bias" in res_keys
    assert not any(k.startswith("stages.0.0.shortcut") for k in res_keys)  # identity shortcut
    assert res_keys[-2:] == ["head.weight", "head.bias"]


def test_resnet20_layout_and_norms():
    model = models.resnet20(3, 10, RESNET, "group")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 3 * 3 * 2 + 2  # stem, 9 blocks of 2, 2 projection shortcuts
    assert sum(c.kernel_size == (3, 3) for c in convs) == 19  # + the head: 20 weighted layers
    assert [s[0].conv1.stride for s in model.stages] == [(1, 1), (2, 2), (2, 2)]
    assert all(c.bias is None for c in convs)
    groups = {m.num_channels: m.num_groups for m in model.modules() if isinstance(m, nn.GroupNorm)}
    assert groups == {16: 8, 32: 8, 64: 8}
    layer = models.resnet20(3, 10, RESNET, "layer")
    assert {m.num_groups for m in layer.modules() if isinstance(m, nn.GroupNorm)} == {1}
    batch = models.resnet20(3, 10, RESNET, "batch")
    assert sum(isinstance(m, nn.BatchNorm2d) for m in batch.modules()) == len(convs)
    plain = models.resnet20(3, 10, RESNET, "none")
    assert all(m.bias is not None for m in plain.modules() if isinstance(m, nn.Conv2d))
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in plain.modules())
    # Spatial sizes 32 -> 32 -> 16 -> 8 through the stages.
    x = model.stem(torch.randn(2, 3, 32, 32))
    sides = []
    for stage in model.stages:
        x = stage(x)
        sides.append(tuple(x.shape[1:]))
    assert sides == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]


@pytest.mark.parametrize("norm, batch_independent", [("batch", False), ("group", True), ("layer", True),
                                                     ("none", True)])
def test_resnet20_norm_batch_dependence_in_train_mode(norm, batch_independent):
    # Why GroupNorm/LayerNorm suit vmap and weight matching: a sample's output does not depend
    # on the other samples of its batch; with BatchNorm in train mode it does.
    torch.manual_seed(0)
    model = models.resnet20(3, 10, RESNET, norm).train()
    x = torch.randn(4, 3, 16, 16)
    alone = model(x[:2])
    together = model(torch.cat([x[:2], 5 * x[2:] + 3]))[:2]
    assert torch.allclose(alone, together, atol=1e-5) == batch_independent


def test_resnet20_layer_norm_vmaps_over_stacked_models():
    torch.manual_seed(0)
    nets = [models.resnet20(3, 10, RESNET, "layer") for _ in range(2)]
    params = {k: torch.stack([dict(n.named_parameters())[k] for n in nets]) for k, _ in nets[0].named_parameters()}
    x = torch.randn(3, 3, 8, 8)
    stacked = torch.func.vmap(lambda p: torch.func.functional_call(nets[0], p, (x,)))(params)
    assert torch.allclose(stacked, torch.stack([n(x) for n in nets]), atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Initialisation


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _fans(layer: nn.Module) -> tuple[int, int]:
    weight = layer.weight
    receptive = weight[0, 0].numel() if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


@pytest.mark.parametrize("name", ["mlp", "medium_cnn", "resnet20"])
def test_glorot_init_bounds_variance_and_zero_biases(name):
    spec = {"mlp": ModelSpec("mlp", (256, 256)), "medium_cnn": ModelSpec("medium_cnn", MEDIUM, dropout=0.1),
            "resnet20": ModelSpec("resnet20", RESNET, norm="batch")}[name]
    torch.manual_seed(0)
    model = models.build(spec, (3, 32, 32), 10)
    checked_variance = 0
    for layer in _weighted_layers(model):
        fan_in, fan_out = _fans(layer)
        bound = math.sqrt(6 / (fan_in + fan_out))
        w = layer.weight.detach().double()
        assert w.abs().max() <= bound
        if w.numel() >= MIN_WEIGHTS_FOR_VARIANCE:
            assert w.var().item() == pytest.approx(2 / (fan_in + fan_out), rel=VARIANCE_RTOL)
            checked_variance += 1
        if layer.bias is not None:
            assert torch.count_nonzero(layer.bias) == 0
    assert checked_variance >= 1


def test_glorot_init_resets_norm_layers_and_returns_model():
    model = models.resnet20(3, 10, RESNET, "batch")
    model.train()(torch.randn(4, 3, 8, 8) * 3 + 1)  # moves the running statistics
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        nn.init.uniform_(m.weight)
        nn.init.uniform_(m.bias)
    assert models.glorot_init_(model) is model
    for m in norms:
        assert torch.equal(m.weight, torch.ones_like(m.weight))
        assert torch.equal(m.bias, torch.zeros_like(m.bias))
        assert torch.equal(m.running_mean, torch.zeros_like(m.running_mean))
        assert torch.equal(m.running_var, torch.ones_like(m.running_var))


def test_glorot_init_rejects_unknown_parameterised_modules():
    model = nn.Sequential(nn.Embedding(4, 3), nn.Linear(3, 2))
    with pytest.raises(TypeError, match=r"module '0' of type Embedding has parameters"):
        models.glorot_init_(model)


def test_torch_init_keeps_pytorch_default():
    torch.manual_seed(0)
    model = models.build(ModelSpec("small_cnn", SMALL, dropout=0.1, init="torch"), (3, 32, 32), 10)
    # PyTorch's default draws biases from U(-1/sqrt(fan_in), 1/sqrt(fan_in)); Glorot zeroes them.
    assert all(torch.count_nonzero(layer.bias) > 0 for layer in _weighted_layers(model))
    fan_in, fan_out = _fans(model.head)
    # Default weights are U(-1/sqrt(fan_in), ...), tighter than Glorot's for this dense layer.
    assert model.head.weight.abs().max() <= 1 / math.sqrt(fan_in) < math.sqrt(6 / (fan_in + fan_out))


@pytest.mark.parametrize("spec", [ModelSpec("small_cnn", SMALL, dropout=0.1),
                                  ModelSpec("resnet20", RESNET, norm="batch"),
                                  ModelSpec("mlp", (32,), init="torch")])
def test_same_seed_same_weights_other_seed_other_weights(spec):
    def weights(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return models.build(spec, (3, 16, 16), 10).state_dict()

    first, again, other = weights(7), weights(7), weights(8)
    assert list(first) == list(again)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())


# ----------------------------------------------------------------------------------------------
# Dropout and modes


@pytest.mark.parametrize("make, shape", [
    (lambda: models.small_cnn(3, 16, 10, dropout=0.5), (3, 16, 16)),
    (lambda: models.mlp(64, (64, 64), 10, dropout=0.5), (1, 8, 8)),
], ids=["small_cnn", "mlp"])
def test_eval_mode_is_deterministic_and_train_mode_is_not(make, shape):
    torch.manual_seed(0)
    model = make()
    x = torch.randn(4, *shape)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_mlp_without_dropout_has_no_dropout_layers():
    assert not any(isinstance(m, nn.Dropout) for m in models.mlp(64, (64,), 10).modules())
    assert sum(isinstance(m, nn.Dropout) for m in models.mlp(64, (64, 64), 10, dropout=0.1).modules()) == 2


# ----------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("call, match", [
    (lambda: models.small_cnn(3, 20, 10), r"image_size=20 is invalid for widths=\(16, 32, 32\).*divisible by 8"),
    (lambda: models.medium_cnn(3, 8, 10), r"image_size=8 is invalid for widths=\(64, 128, 256, 256\).*by 16"),
    (lambda: models.small_cnn(3, 0, 10), r"image_size=0 is invalid: expected an int >= 1"),
    (lambda: models.small_cnn(3, 32, 10, widths=()), r"widths=\(\) is invalid: expected a non-empty tuple"),
    (lambda: models.small_cnn(3, 32, 10, widths=(16, 0)), r"widths=\(16, 0\) is invalid"),
    (lambda: models.small_cnn(3, 32, 10, widths=[16, 32]), r"widths=\[16, 32\] is invalid"),
    (lambda: models.small_cnn(3, 32, 10, dropout=1.0), r"dropout=1.0 is invalid: expected a float in \[0, 1\)"),
    (lambda: models.mlp(64, (64, 64.0), 10), r"mlp: widths=\(64, 64.0\) is invalid"),
    (lambda: models.mlp(64, (64,), 0), r"num_classes=0 is invalid: expected an int >= 1"),
    (lambda: models.resnet20(3, 10, (16, 32)), r"resnet20: widths=\(16, 32\) is invalid: expected 3 widths"),
    (lambda: models.resnet20(3, 10, norm="instance"), r"norm='instance' is invalid: expected one of"),
    (lambda: models.resnet20(True, 10), r"in_channels=True is invalid"),
    (lambda: models.build("mlp", (1, 8, 8), 10), r"spec='mlp' is invalid: expected a harness.settings.ModelSpec"),
    (lambda: models.build(ModelSpec("medium_cnn", MEDIUM, dropout=0.1), (1, 8, 8), 10),
     r"image_size=8 is invalid for widths=\(64, 128, 256, 256\)"),
], ids=["cnn-size-not-divisible", "medium-size-too-small", "size-zero", "widths-empty", "widths-zero",
        "widths-list", "dropout-one", "mlp-float-width", "classes-zero", "resnet-two-widths",
        "resnet-bad-norm", "bool-channels", "build-not-a-spec",
        "build-medium-on-digits"])
def test_bad_arguments_raise_with_message(call, match):
    with pytest.raises(ValueError, match=match):
        call()
