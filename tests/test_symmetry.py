"""Property tests of harness.symmetry: claim P1 (CLAIMS.md, "Symmetry"), permutation specs and
permutations.

P1  Permuting hidden units leaves the function unchanged but changes the weight cosine.

Models come from model_cases.py.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from harness import models, symmetry
from harness.settings import ModelSpec
from harness.weightspace import cosine_similarity, weight_vector
from model_cases import KINDS, NUM_CLASSES, Case, case_of, cases, make_inputs, make_model, state_equal

# Permuting units reorders the sums inside matmuls and convolutions, so outputs agree to float32
# rounding, not bitwise: unit roundoff 6e-8, accumulated over sums of <= 10^3 terms and <= 20
# layers stays well below 1e-5 relative to the logits' scale.
OUTPUT_RTOL = 1e-5
# Deviation of cos(theta, pi(theta)) from its fixed-entry part, in units of the self-normalised
# scale sqrt(2 sum_j theta_j^2 pi(theta)_j^2) / |theta|^2 (see _cosine_bound): a sum of symmetric,
# zero-mean products exceeds k such units with probability <= 2 exp(-k^2 / 2) ~ 3e-8 at k = 6.
COSINE_SIGMAS = 6
# A "wide" MLP for the cos ~ 0 check: D = 64*512 + 512*512 + 512*10 = 300,032 kernel entries,
# where the bound above is ~ 6 * sqrt(2 * 9/5 / D) = 0.021 for equal scales (9/5: E[u^4] / E[u^2]^2
# of a uniform); 0.025 with the layers' different Glorot scales. The measured cosine is 3e-4.
WIDE_MLP = (512, 512)
NEAR_ZERO_COSINE = 0.05
# Rounding of the float64 cosine itself (a bound of 0 must admit 1 - 2.2e-16).
FLOAT64_SLACK = 1e-12
# The claim's own example (CLAIMS.md P1): (1, -3, 2, 1) against its permuted twin (-3, 1, 1, 2).
CLAIM_EXAMPLE_COSINE = -2 / 15


def reference_permute(model: nn.Module, spec: symmetry.PermutationSpec, perm: dict) -> nn.Module:
    """Slow reference of symmetry.permute without its admissibility check: split every axis into
    per-unit chunks and concatenate them in the new order."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for group in spec.unit_groups:
        for axis in group.axes:
            chunks = torch.split(state[axis.key], axis.repeat, dim=axis.dim)
            state[axis.key] = torch.cat([chunks[int(i)] for i in perm[group.name]], dim=axis.dim)
    out = copy.deepcopy(model)
    out.load_state_dict(state)
    return out


def assert_same_function(a: nn.Module, b: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        ya, yb = a(x), b(x)
    scale = ya.abs().max().clamp_min(1.0).item()
    torch.testing.assert_close(yb, ya, rtol=OUTPUT_RTOL, atol=OUTPUT_RTOL * scale)


def _cosine_bound(theta: torch.Tensor, moved: torch.Tensor) -> tuple[float, float]:
    """(fixed-entry part m, tolerance) for cos(theta, pi(theta)) with moved = pi(theta).

    cos * |theta|^2 = sum over entries pi leaves in place (theta_j^2) + sum over the others of
    theta_j * theta_pi(j): products of independent zero-mean weights, each pair appearing at most
    twice (2-cycles), so the second sum is within COSINE_SIGMAS * sqrt(2 sum theta_j^2 theta_pi(j)^2).
    """
    norm2 = theta.dot(theta).item()
    fixed = theta == moved
    m = theta[fixed].pow(2).sum().item() / norm2
    spread = math.sqrt(2 * (theta[~fixed] ** 2 * moved[~fixed] ** 2).sum().item()) / norm2
    return m, COSINE_SIGMAS * spread


# ----------------------------------------------------------------------------------------------
# Permutation specs


def test_resnet_residual_streams_share_one_permutation():
    model = make_model(Case("resnet20", (16, 32, 64), "batch", 0))
    spec = symmetry.permutation_spec(model)
    assert spec.names == (
        "stages.0.residual", "stages.0.0.inner", "stages.0.1.inner", "stages.0.2.inner",
        "stages.1.0.inner", "stages.1.residual", "stages.1.1.inner", "stages.1.2.inner",
        "stages.2.0.inner", "stages.2.residual", "stages.2.1.inner", "stages.2.2.inner",
    )
    axes = {g.name: {(a.key, a.dim) for a in g.axes} for g in spec.unit_groups}
    # Stage 1's stream: stem, every block's conv2/norm2 (statistics included), and its consumers.
    assert {("stem.conv.weight", 0), ("stem.norm.running_var", 0), ("stages.0.0.conv2.weight", 0),
            ("stages.0.2.norm2.running_mean", 0), ("stages.0.1.conv1.weight", 1),
            ("stages.1.0.conv1.weight", 1), ("stages.1.0.shortcut.conv.weight", 1)} <= axes["stages.0.residual"]
    # Stage 3's stream starts at the projection shortcut and ends at the head.
    assert {("stages.2.0.shortcut.conv.weight", 0), ("stages.2.0.shortcut.norm.bias", 0),
            ("stages.2.2.conv2.weight", 0), ("head.weight", 1)} <= axes["stages.2.residual"]
    assert axes["stages.1.0.inner"] == {
        ("stages.1.0.conv1.weight", 0), ("stages.1.0.norm1.weight", 0), ("stages.1.0.norm1.bias", 0),
        ("stages.1.0.norm1.running_mean", 0), ("stages.1.0.norm1.running_var", 0), ("stages.1.0.conv2.weight", 1),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_spec_covers_every_tensor_once_per_axis(kind):
    """Every parameter and running statistic moves with some group (except the head's bias, whose
    units are the classes), and no (tensor, axis) belongs to two groups."""
    model = make_model(case_of(kind))
    spec = symmetry.permutation_spec(model)
    pairs = [(a.key, a.dim) for g in spec.unit_groups for a in g.axes]
    assert len(pairs) == len(set(pairs))
    floats = {k for k, v in model.state_dict().items() if v.is_floating_point()}
    assert floats - {key for key, _ in pairs} == {"head.bias"}


@pytest.mark.parametrize("name, side, blocks", [("small_cnn", 16, 2 * 2), ("small_cnn", 32, 4 * 4),
                                                ("medium_cnn", 32, 2 * 2)])
def test_cnn_head_inputs_move_in_blocks_of_pixels(name, side, blocks):
    model = models.build(ModelSpec(name, (8, 8, 8) if name == "small_cnn" else (8, 8, 8, 8)), (3, side, side), 10)
    last = symmetry.permutation_spec(model).unit_groups[-1]
    assert [a for a in last.axes if a.key == "head.weight"] == [symmetry.Axis("head.weight", 1, blocks)]


@pytest.mark.parametrize("norm, widths, groups", [("group", (16, 32, 64), 8), ("group", (12, 12, 12), 4),
                                                  ("layer", (16, 32, 64), 1), ("batch", (16, 32, 64), 1)])
def test_groupnorm_groups_are_recorded(norm, widths, groups):
    spec = symmetry.permutation_spec(models.resnet20(3, 10, widths, norm))
    assert {g.norm_groups for g in spec.unit_groups} == {groups}


def test_permuting_across_groupnorm_groups_would_change_the_function():
    """Why the restriction exists: swapping two channels of different GroupNorm groups everywhere
    a permutation would is not a symmetry, and permute refuses it."""
    case = Case("resnet20", (16, 16, 16), "group", 3)
    model, x = make_model(case), make_inputs(case)
    spec = symmetry.permutation_spec(model)
    perm = symmetry.identity_permutation(spec)
    perm["stages.0.0.inner"] = torch.tensor([15, *range(1, 15), 0])  # channel 0 (group 0) <-> 15 (group 7)
    with pytest.raises(AssertionError, match="Tensor-likes are not close"):
        assert_same_function(model, reference_permute(model, spec, perm), x)
    with pytest.raises(ValueError, match=r"mixes GroupNorm groups: its 16 channels form 8 groups of 2"):
        symmetry.permute(model, perm)


def test_unknown_model_type_is_rejected():
    with pytest.raises(TypeError, match=r"no permutation rule for a Sequential; known: \['ResNet20'"):
        symmetry.permutation_spec(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)))


# ----------------------------------------------------------------------------------------------
# Permutations


@settings(max_examples=40)
@given(case=cases(), draw_seed=st.integers(0, 2**16))
def test_random_permutation_is_an_admissible_permutation(case, draw_seed):
    spec = symmetry.permutation_spec(make_model(case))
    perm = symmetry.random_permutation(spec, torch.Generator().manual_seed(draw_seed))
    assert set(perm) == set(spec.names)
    for group in spec.unit_groups:
        p = perm[group.name]
        assert p.dtype == torch.int64
        assert torch.equal(p.sort().values, torch.arange(group.size))
        # Each GroupNorm block comes from a single block.
        source_blocks = p.reshape(group.norm_groups, group.block_size) // group.block_size
        assert (source_blocks == source_blocks[:, :1]).all()
    symmetry.check_permutation(spec, perm)


@pytest.mark.parametrize("kind", KINDS)
def test_identity_permutation_changes_nothing(kind):
    model = make_model(case_of(kind, seed=1))
    same = symmetry.permute(model, symmetry.identity_permutation(symmetry.permutation_spec(model)))
    assert same is not model
    assert state_equal(same, model)


@pytest.mark.parametrize("kind", ["mlp", "resnet20-batch"])
def test_permute_leaves_its_input_untouched(kind):
    model = make_model(case_of(kind, seed=2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spec = symmetry.permutation_spec(model)
    twin = symmetry.permute(model, symmetry.random_permutation(spec, torch.Generator().manual_seed(0)))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # The copy owns its storage: editing it does not reach the original.
    with torch.no_grad():
        next(twin.parameters()).add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("change, message", [
    (lambda p: p.pop("hidden.1.linear"), r"must have the keys \['hidden.0.linear', 'hidden.1.linear'\]"),
    (lambda p: p.update({"hidden.0.linear": torch.arange(5)}),
     r"shape \(6,\); got a torch.int64 tensor of shape \(5,\)"),
    (lambda p: p.update({"hidden.0.linear": torch.tensor([0, 0, 1, 2, 3, 4])}), r"is not a permutation of 0..5"),
    (lambda p: p.update({"hidden.0.linear": torch.arange(6.0)}), r"int64 tensor .* got a torch.float32"),
])
def test_invalid_permutations_are_rejected(change, message):
    model = models.mlp(4, (6, 3), 2)
    perm = symmetry.identity_permutation(symmetry.permutation_spec(model))
    change(perm)
    with pytest.raises(ValueError, match=message):
        symmetry.permute(model, perm)


# ----------------------------------------------------------------------------------------------
# P1: same function, different weights


@settings(max_examples=40)
@given(case=cases(), perm_seed=st.integers(0, 2**16))
def test_p1_permuted_model_is_the_same_function_at_another_point(case, perm_seed):
    model, x = make_model(case), make_inputs(case)
    spec = symmetry.permutation_spec(model)
    perm = symmetry.random_permutation(spec, torch.Generator().manual_seed(perm_seed))
    twin = symmetry.permute(model, perm)
    assert state_equal(twin, reference_permute(model, spec, perm))
    assert_same_function(model, twin, x)  # eval mode; BatchNorm with random running statistics

    theta, moved = weight_vector(model.state_dict()), weight_vector(twin.state_dict())
    cos = cosine_similarity(theta, moved)
    fixed_part, tolerance = _cosine_bound(theta, moved)
    assert abs(cos - fixed_part) <= tolerance + FLOAT64_SLACK
    if any(not torch.equal(p, torch.arange(len(p))) for p in perm.values()):
        assert cos < 1.0


def test_p1_cosine_is_near_zero_for_wide_random_layers():
    torch.manual_seed(0)
    model = models.mlp(64, WIDE_MLP, NUM_CLASSES)
    spec = symmetry.permutation_spec(model)
    gen = torch.Generator().manual_seed(0)
    # One cycle through all units (no fixed points): perm[order[i]] = order[i + 1].
    perm = {}
    for group in spec.unit_groups:
        order = torch.randperm(group.size, generator=gen)
        perm[group.name] = torch.empty_like(order).scatter_(0, order, order.roll(-1))
    twin = symmetry.permute(model, perm)
    theta, moved = weight_vector(model.state_dict()), weight_vector(twin.state_dict())
    fixed_part, tolerance = _cosine_bound(theta, moved)
    assert fixed_part == 0.0
    assert tolerance < NEAR_ZERO_COSINE
    assert abs(cosine_similarity(theta, moved)) <= tolerance + FLOAT64_SLACK
    assert_same_function(model.eval(), twin.eval(), torch.randn(8, 64, generator=gen))


def test_p1_claim_example_cosine():
    """CLAIMS.md P1: hidden weights (1, -3) and head weights (2, 1) against the twin with the two
    hidden units swapped, (-3, 1) and (1, 2): cos = -2/15, and the same function."""
    model = models.mlp(1, (2,), 1)
    with torch.no_grad():
        model.hidden[0].linear.weight.copy_(torch.tensor([[1.0], [-3.0]]))
        model.head.weight.copy_(torch.tensor([[2.0, 1.0]]))
    twin = symmetry.permute(model, {"hidden.0.linear": torch.tensor([1, 0])})
    assert weight_vector(twin.state_dict()).tolist() == [-3.0, 1.0, 1.0, 2.0]
    cos = cosine_similarity(weight_vector(model.state_dict()), weight_vector(twin.state_dict()))
    assert cos == pytest.approx(CLAIM_EXAMPLE_COSINE, abs=FLOAT64_SLACK)
    assert_same_function(model, twin, torch.linspace(-2, 2, 9)[:, None])
