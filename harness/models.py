"""The architectures the claims are tested on; every model maps NCHW float images to logits.

(Over 400 lines on purpose: four architectures, their initialisations and the one check that two
models share an architecture, which every caller of :func:`build` relies on alike.)

All models take input of shape (N, C, H, W) and return unnormalised logits of shape
(N, num_classes). Parameter names are stable (stored runs are keyed by them) and
``state_dict()`` lists them from input to output.

MLP
    ``flatten -> hidden.i = (linear -> relu [-> dropout]) -> head``. The smoke setting on the
    8x8 digits uses widths (64, 64): 64*64+64 + 64*64+64 + 64*10+10 = 8,970 parameters.

OfficialCNN (``small_cnn`` and ``medium_cnn``)
    The layout of the paper's official Keras code: every block is a 3x3 'same' convolution with
    bias -> dropout -> 2x2 max-pool -> ReLU, except that the *last* block has no ReLU (conv ->
    dropout -> max-pool), then flatten -> dense to the classes. The order (dropout and pooling
    before the non-linearity, no ReLU before the dense layer) differs from the textbook CNN and
    is kept on purpose: the claims are about these networks. Each block halves the image.
    MediumCNN (64, 128, 256, 256) on 3x32x32 with 10 classes -> 2x2x256 -> dense: 971,146
    parameters, the count of the official model. SmallCNN (16, 32, 32) on 3x32x32 -> 4x4x32 ->
    dense: 19,466 parameters; on the 3x16x16 smoke data -> 2x2x32: 15,626.
    Deviation: Keras flattens NHWC, we flatten NCHW. That is a fixed permutation of the dense
    layer's inputs, so the function class and the Glorot bounds are the same.

ResNet20 (``resnet20``)
    ResNet v1 for CIFAR with basic blocks (He et al. 2016, section 4.2): a 3x3 stem, three stages
    of 3 basic blocks of widths (16, 32, 64) with stride 2 at the first block of stages 2 and 3,
    global average pooling, dense. A basic block is conv3x3 -> norm -> ReLU -> conv3x3 -> norm,
    plus a shortcut (identity, or 1x1 conv with stride + norm where the shape changes), then
    ReLU. With normalisation, 272,474 parameters for 10 classes; with ``norm="none"`` the convs
    get biases instead and the count is 271,690.

    The normalisation matters for the weight-space analyses:

    - ``"batch"`` (BatchNorm2d, the default of the original ResNet): each sample's output depends
      on the rest of its batch in train mode, and eval mode uses running statistics that belong
      to the exact weights they were collected with. After weights are perturbed, interpolated
      or permuted (subspace sampling, weight matching) the running statistics must be
      recomputed on training data before evaluating, and ``torch.func.vmap`` over models cannot
      update running statistics in place.
    - ``"group"`` (GroupNorm with ``gcd(8, C)`` groups, i.e. 8 groups for every ResNet20 width)
      and ``"layer"`` (GroupNorm(1, C): normalises over C, H and W of each sample) have no
      running statistics and act per sample, so they behave identically in train and eval mode,
      survive weight interpolation and permutation unchanged, and vmap cleanly. Eight groups
      rather than GroupNorm's usual 32 because a 16-channel layer cannot be cut into 32 groups,
      and 1-channel groups (instance norm) would remove each channel's per-image mean and scale,
      information the classifier uses.
    - ``"none"``: Identity, with biases on the convs instead.

:func:`build` turns a :class:`~harness.settings.ModelSpec` into a model and applies
:func:`glorot_init_` (Glorot-uniform weights, zero biases: the official Keras default) when
``spec.init == "glorot"``; ``"torch"`` keeps PyTorch's default initialisation.

Examples
--------
>>> from harness import models
>>> from harness.settings import ModelSpec
>>> net = models.build(ModelSpec("medium_cnn", (64, 128, 256, 256), dropout=0.1), 3, 32, 10)
>>> models.count_parameters(net)
971146
>>> list(net.state_dict())[:2]
['blocks.0.conv.weight', 'blocks.0.conv.bias']
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from harness.settings import NORMS, ModelSpec
from harness.validation import check_int

# Modules glorot_init_ knows; any other module owning parameters is an error, not a silent skip.
_NORM_LAYERS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)

# GroupNorm groups for norm="group": the largest power of two <= this that divides the channels.
_MAX_GROUPS = 8


# ----------------------------------------------------------------------------------------------
# Validation


def _check_widths(name: str, widths: object, length: int | None = None) -> None:
    ok = isinstance(widths, tuple) and len(widths) > 0 and all(
        isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths
    )
    if not ok:
        raise ValueError(f"{name}: widths={widths!r} is invalid: expected a non-empty tuple of positive ints")
    if length is not None and len(widths) != length:
        raise ValueError(f"{name}: widths={widths!r} is invalid: expected {length} widths")


def _check_dropout(name: str, dropout: object) -> None:
    if not (isinstance(dropout, (int, float)) and not isinstance(dropout, bool) and 0.0 <= dropout < 1.0):
        raise ValueError(f"{name}: dropout={dropout!r} is invalid: expected a float in [0, 1)")


# ----------------------------------------------------------------------------------------------
# MLP


class MLP(nn.Sequential):
    """Fully connected ReLU network on flattened images; see :func:`mlp`."""

    def __init__(self, in_features: int, widths: tuple[int, ...], num_classes: int, dropout: float):
        hidden = []
        fan_in = in_features
        for width in widths:
            layers = OrderedDict(linear=nn.Linear(fan_in, width), relu=nn.ReLU())
            if dropout > 0:
                layers["dropout"] = nn.Dropout(dropout)
            hidden.append(nn.Sequential(layers))
            fan_in = width
        super().__init__(OrderedDict(
            flatten=nn.Flatten(),
            hidden=nn.Sequential(*hidden),
            head=nn.Linear(fan_in, num_classes),
        ))


def mlp(in_features: int, widths: tuple[int, ...], num_classes: int, dropout: float = 0.0) -> nn.Module:
    """Multi-layer perceptron: Linear -> ReLU (-> Dropout) per hidden width, then Linear.

    Parameters
    ----------
    in_features : int
        C * H * W of the input images; the model flattens (N, C, H, W) itself.
    widths : tuple of int
        Hidden units per layer, input to output.
    num_classes : int
    dropout : float
        Dropout probability after each hidden ReLU; 0 adds no dropout layers.

    Returns
    -------
    nn.Module
        Maps (N, C, H, W) or (N, in_features) float tensors to logits of shape (N, num_classes).
        Parameters: ``hidden.<i>.linear.{weight,bias}``, ``head.{weight,bias}``.
    """
    check_int("mlp: in_features", in_features, 1)
    _check_widths("mlp", widths)
    check_int("mlp: num_classes", num_classes, 1)
    _check_dropout("mlp", dropout)
    return MLP(in_features, widths, num_classes, dropout)


# ----------------------------------------------------------------------------------------------
# Official CNN (SmallCNN, MediumCNN)


class OfficialCNN(nn.Sequential):
    """The paper's Keras CNN: (conv -> dropout -> max-pool -> ReLU) blocks, no ReLU after the last.

    See :func:`small_cnn`.
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int, widths: tuple[int, ...],
                 dropout: float):
        blocks = []
        channels = in_channels
        for i, width in enumerate(widths):
            layers = OrderedDict(
                conv=nn.Conv2d(channels, width, kernel_size=3, padding="same", bias=True),
                dropout=nn.Dropout(dropout),
                pool=nn.MaxPool2d(2),
            )
            # The official model feeds the last max-pooled conv output to the dense layer directly.
            if i < len(widths) - 1:
                layers["relu"] = nn.ReLU()
            blocks.append(nn.Sequential(layers))
            channels = width
        side = image_size // 2 ** len(widths)
        super().__init__(OrderedDict(
            blocks=nn.Sequential(*blocks),
            flatten=nn.Flatten(),
            head=nn.Linear(channels * side * side, num_classes),
        ))


def small_cnn(in_channels: int, image_size: int, num_classes: int, widths: tuple[int, ...] = (16, 32, 32),
              dropout: float = 0.1) -> nn.Module:
    """The official CNN layout with SmallCNN defaults; :func:`medium_cnn` is the same with others.

    Each block is a 3x3 'same' convolution with bias -> Dropout(dropout) -> MaxPool2d(2) -> ReLU;
    the last block has no ReLU. Then flatten -> Linear(num_classes).

    Parameters
    ----------
    in_channels : int
    image_size : int
        Side H = W of the square input; every block halves it, so it must be divisible by
        ``2 ** len(widths)``.
    num_classes : int
    widths : tuple of int
        Output channels per conv block, input to output.
    dropout : float
        Dropout probability after each conv (official: 0.1). Dropout layers are present even at
        0 so that the structure does not depend on the value.

    Returns
    -------
    nn.Module
        Maps (N, in_channels, image_size, image_size) to logits (N, num_classes). Parameters:
        ``blocks.<i>.conv.{weight,bias}``, ``head.{weight,bias}``.

    Raises
    ------
    ValueError
        For a non-positive size, bad widths or dropout, or an image size that the blocks cannot
        halve ``len(widths)`` times.
    """
    check_int("small_cnn/medium_cnn: in_channels", in_channels, 1)
    check_int("small_cnn/medium_cnn: image_size", image_size, 1)
    check_int("small_cnn/medium_cnn: num_classes", num_classes, 1)
    _check_widths("small_cnn/medium_cnn", widths)
    _check_dropout("small_cnn/medium_cnn", dropout)
    divisor = 2 ** len(widths)
    if image_size % divisor:
        raise ValueError(
            f"small_cnn/medium_cnn: image_size={image_size} is invalid for widths={widths}: each of the "
            f"{len(widths)} conv blocks halves the image, so image_size must be divisible by {divisor}"
        )
    return OfficialCNN(in_channels, image_size, num_classes, widths, dropout)


def medium_cnn(in_channels: int, image_size: int, num_classes: int,
               widths: tuple[int, ...] = (64, 128, 256, 256), dropout: float = 0.1) -> nn.Module:
    """The official CNN with MediumCNN defaults (971,146 parameters on 3x32x32, 10 classes).

    Same parameters, returns and errors as :func:`small_cnn`.
    """
    return small_cnn(in_channels, image_size, num_classes, widths=widths, dropout=dropout)


# ----------------------------------------------------------------------------------------------
# ResNet20 v1


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(_MAX_GROUPS, channels), channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def _conv_norm(in_channels: int, out_channels: int, kernel_size: int, stride: int, norm: str) -> OrderedDict:
    # A bias right before a normalisation is cancelled by its mean subtraction; keep it only
    # when there is no normalisation.
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                     bias=norm == "none")
    return OrderedDict(conv=conv, norm=_norm(norm, out_channels))


class BasicBlock(nn.Module):
    """ResNet v1 basic block: relu(norm2(conv2(relu(norm1(conv1(x))))) + shortcut(x)).

    Parameters
    ----------
    in_channels, out_channels : int
    stride : int
        Stride of the first conv (and of the 1x1 shortcut conv when the shape changes).
    norm : {"batch", "group", "layer", "none"}
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str):
        super().__init__()
        first = _conv_norm(in_channels, out_channels, 3, stride, norm)
        second = _conv_norm(out_channels, out_channels, 3, 1, norm)
        self.conv1, self.norm1 = first["conv"], first["norm"]
        self.relu1 = nn.ReLU()
        self.conv2, self.norm2 = second["conv"], second["norm"]
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(_conv_norm(in_channels, out_channels, 1, stride, norm))
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) -> (N, out_channels, H / stride, W / stride)."""
        out = self.norm2(self.conv2(self.relu1(self.norm1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class ResNet20(nn.Sequential):
    """ResNet20 v1 for CIFAR; see :func:`resnet20`."""

    # Basic blocks per stage: 6n + 2 layers with n = 3 gives ResNet20.
    BLOCKS_PER_STAGE = 3

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...], norm: str):
        stem = nn.Sequential(OrderedDict(**_conv_norm(in_channels, widths[0], 3, 1, norm), relu=nn.ReLU()))
        stages = []
        channels = widths[0]
        for s, width in enumerate(widths):
            blocks = []
            for b in range(self.BLOCKS_PER_STAGE):
                stride = 2 if s > 0 and b == 0 else 1
                blocks.append(BasicBlock(channels, width, stride, norm))
                channels = width
            stages.append(nn.Sequential(*blocks))
        super().__init__(OrderedDict(
            stem=stem,
            stages=nn.Sequential(*stages),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            head=nn.Linear(channels, num_classes),
        ))


def resnet20(in_channels: int, num_classes: int, widths: tuple[int, ...] = (16, 32, 64),
             norm: str = "batch") -> nn.Module:
    """Basic-block ResNet v1 with 20 layers (He et al. 2016, CIFAR variant).

    Parameters
    ----------
    in_channels : int
    num_classes : int
    widths : tuple of 3 ints
        Channels of the three stages (and of the stem: ``widths[0]``).
    norm : {"batch", "group", "layer", "none"}
        BatchNorm2d; GroupNorm with gcd(8, C) groups; GroupNorm(1, C) (layer norm over C, H, W);
        or no normalisation (convs then have biases). See the module docstring for why the
        choice matters for weight matching, interpolation and vmap.

    Returns
    -------
    nn.Module
        Maps (N, in_channels, H, W) to logits (N, num_classes) for any H, W >= 1 (global average
        pooling). 272,474 parameters for (16, 32, 64), 3 input channels, 10 classes, with
        normalisation; 271,690 without. Parameters: ``stem.{conv,norm}.*``,
        ``stages.<s>.<b>.{conv1,norm1,conv2,norm2}.*``, ``stages.<s>.0.shortcut.{conv,norm}.*``
        (s = 1, 2), ``head.*``.
    """
    check_int("resnet20: in_channels", in_channels, 1)
    check_int("resnet20: num_classes", num_classes, 1)
    _check_widths("resnet20", widths, length=3)
    if norm not in NORMS:
        raise ValueError(f"resnet20: norm={norm!r} is invalid: expected one of {NORMS}")
    return ResNet20(in_channels, num_classes, widths, norm)


# ----------------------------------------------------------------------------------------------
# Initialisation, counting, dispatch


def glorot_init_(model: nn.Module) -> nn.Module:
    """Re-initialise ``model`` in place the way Keras does by default, and return it.

    Conv and Linear weights: Glorot (Xavier) uniform, U(-b, b) with b = sqrt(6 / (fan_in +
    fan_out)), fan = channels * kernel area; biases: zero. Normalisation layers: weight 1, bias 0,
    running statistics reset.

    Raises
    ------
    TypeError
        If a module that owns parameters is of a kind this function does not know, rather than
        leaving it silently at another initialisation.
    """
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, _NORM_LAYERS):
            module.reset_parameters()
        elif any(True for _ in module.parameters(recurse=False)):
            raise TypeError(
                f"glorot_init_: module {name!r} of type {type(module).__name__} has parameters but is not "
                f"a Conv2d, Linear or normalisation layer; add a rule for it"
            )
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build(spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The model a :class:`~harness.settings.ModelSpec` describes, initialised as it says.

    Uses the global torch RNG: seed it (the run's ``init_seed``) before calling.

    Parameters
    ----------
    spec : ModelSpec
        A built-in architecture, or a factory (:func:`harness.plugins.build_model`).
    input_shape : tuple of int
        (C, H, W) of one input; the built-in CNNs and ResNet take square images (H = W).
    num_classes : int

    Returns
    -------
    nn.Module
        In train mode, on the CPU, float32, mapping (N, *input_shape) to logits (N, num_classes).

    Raises
    ------
    ValueError
        For a spec that is not a ModelSpec, sizes the architecture cannot take (see the
        builders), or a factory that does not import, returns no module or the wrong output.
    """
    if not isinstance(spec, ModelSpec):
        raise ValueError(f"build: spec={spec!r} is invalid: expected a harness.settings.ModelSpec")
    if spec.factory is not None:
        from harness.plugins import build_model

        model = build_model(spec.factory, dict(spec.kwargs), tuple(input_shape), num_classes)
        if spec.init == "torch":
            return model
        try:
            return glorot_init_(model)
        except TypeError as exc:
            raise ValueError(f"{exc}; or keep the factory's own initialisation: ModelSpec(init='torch')") from exc
    if not (isinstance(input_shape, tuple) and len(input_shape) == 3 and input_shape[1] == input_shape[2]):
        raise ValueError(f"build: input_shape={input_shape!r} is invalid: {spec.name} takes square images (C, S, S)")
    in_channels = check_int("build: in_channels", input_shape[0], 1)
    image_size = check_int("build: image_size", input_shape[1], 1)
    if spec.name == "mlp":
        model = mlp(in_channels * image_size * image_size, spec.widths, num_classes, spec.dropout)
    elif spec.name in ("small_cnn", "medium_cnn"):
        model = small_cnn(in_channels, image_size, num_classes, widths=spec.widths, dropout=spec.dropout)
    elif spec.name == "resnet20":
        model = resnet20(in_channels, num_classes, widths=spec.widths, norm=spec.norm)
    else:  # ModelSpec validates the name; this guards a name added there but not here.
        raise ValueError(f"ModelSpec.name={spec.name!r} is invalid: build knows mlp, small_cnn, medium_cnn, resnet20")
    if spec.init == "glorot":
        glorot_init_(model)
    return model


# ----------------------------------------------------------------------------------------------
# Comparing two models


def check_same_architecture(model_a: nn.Module, model_b: nn.Module) -> None:
    """ValueError unless two models can be compared weight for weight: the same architecture
    (the message names the first difference) and finite weights (a NaN or inf is a diverged run).

    Models that differ only in their dropout rates pass. Used by :mod:`harness.matching` and
    :mod:`harness.interpolation`.
    """
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
