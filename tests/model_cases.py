"""Models for the tests of harness.symmetry, harness.matching and harness.interpolation.

Models are drawn over architectures (mlp, small_cnn, medium_cnn at reduced widths, resnet20 with
every normalisation), widths, seeds and permutations. Every 1-D tensor (biases, normalisation
scales and shifts, BatchNorm running statistics) is set to random values first: at Glorot
initialisation they are constant (0 or 1), and permuting a constant vector tests nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st
from torch import nn

from harness import models
from harness.settings import ModelSpec

# Input (channels, side) per architecture: the MLP on digits-sized images; the CNNs at sizes that
# leave 2x2 pixels after the last block, so the head's inputs move in blocks of 4; ResNet20 on
# small images (global pooling makes the size irrelevant to the symmetry).
INPUTS = {"mlp": (1, 8), "small_cnn": (3, 16), "medium_cnn": (3, 32), "resnet20": (3, 8)}
LAYERS = {"small_cnn": 3, "medium_cnn": 4, "resnet20": 3}
# ResNet20 widths: gcd(8, C) GroupNorm groups of 1 (4, 8), 2 (16) and 3 (12) channels.
RESNET_WIDTHS = (4, 8, 12, 16)
KINDS = ("mlp", "small_cnn", "medium_cnn", "resnet20-batch", "resnet20-group", "resnet20-layer",
         "resnet20-none")
N_EXAMPLES = 4  # inputs per output comparison
NUM_CLASSES = 10


@dataclass(frozen=True)
class Case:
    name: str
    widths: tuple[int, ...]
    norm: str
    seed: int


# Fixed widths for the example-based tests: small, more than one unit per group everywhere.
SMALL_WIDTHS = {"mlp": (8, 8), "small_cnn": (8, 8, 8), "medium_cnn": (8, 8, 8, 8), "resnet20": (8, 8, 8)}


def case_of(kind: str, seed: int = 0, widths: tuple[int, ...] | None = None) -> Case:
    """The Case for a KINDS entry ("resnet20-group" -> resnet20 with GroupNorm)."""
    name, _, norm = kind.partition("-")
    return Case(name, widths or SMALL_WIDTHS[name], norm or "none", seed)


def make_model(case: Case) -> nn.Module:
    """The case's model in eval mode, with random 1-D tensors (positive running variances)."""
    torch.manual_seed(case.seed)
    channels, side = INPUTS[case.name]
    model = models.build(ModelSpec(case.name, case.widths, norm=case.norm), (channels, side, side), NUM_CLASSES)
    gen = torch.Generator().manual_seed(case.seed)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if tensor.is_floating_point() and tensor.ndim == 1:
                values = torch.rand(tensor.shape, generator=gen) + 0.5 if key.endswith("running_var") \
                    else torch.randn(tensor.shape, generator=gen)
                tensor.copy_(values)
    return model.eval()


def make_inputs(case: Case, n: int = N_EXAMPLES) -> torch.Tensor:
    channels, side = INPUTS[case.name]
    return torch.randn(n, channels, side, side, generator=torch.Generator().manual_seed(case.seed + 1))


@st.composite
def cases(draw, kinds=KINDS, widths=(1, 2, 3, 5, 8, 16), resnet_widths=RESNET_WIDTHS) -> Case:
    kind = draw(st.sampled_from(kinds))
    name = kind.partition("-")[0]
    n_layers = draw(st.integers(1, 3)) if name == "mlp" else LAYERS[name]
    choices = resnet_widths if name == "resnet20" else widths
    layer_widths = tuple(draw(st.lists(st.sampled_from(choices), min_size=n_layers, max_size=n_layers)))
    return case_of(kind, draw(st.integers(0, 2**16)), layer_widths)


def state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)

