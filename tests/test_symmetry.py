"""Property tests of harness.symmetry: claims P1 and P2 (CLAIMS.md, "Symmetry"), permutation specs,
weight matching and the interpolation barrier.

P1  Permuting hidden units leaves the function unchanged but changes the weight cosine.
P2  Weight matching recovers a planted permutation.

Models are drawn over architectures (mlp, small_cnn, medium_cnn at reduced widths, resnet20 with
every normalisation), widths, seeds and permutations. Every 1-D tensor (biases, normalisation
scales and shifts, BatchNorm running statistics) is set to random values first: at Glorot
initialisation they are constant (0 or 1), and permuting a constant vector tests nothing.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from harness import models, symmetry
from harness.data import Split
from harness.metrics import cosine_similarity, weight_vector
from harness.settings import ModelSpec

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
# Official MediumCNN widths, for P2 once at full size.
MEDIUM_CNN = (64, 128, 256, 256)
# P2 widths: coordinate descent can stop at a coordinate-wise optimum when a layer has 2-3 units,
# where a mis-permuted neighbour's terms outweigh a unit's own (seen for ~1.5% of MLPs with such
# layers); with >= 4 units per layer it recovered 1,500 of 1,500 planted permutations.
P2_WIDTHS = (4, 5, 8, 16)
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
    model = models.build(ModelSpec(case.name, case.widths, norm=case.norm), channels, side, NUM_CLASSES)
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
    model = models.build(ModelSpec(name, (8, 8, 8) if name == "small_cnn" else (8, 8, 8, 8)), 3, side, 10)
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


# ----------------------------------------------------------------------------------------------
# P2: weight matching recovers a planted permutation


def assert_recovers(model: nn.Module, perm: dict, x: torch.Tensor) -> symmetry.WeightMatching:
    twin = symmetry.permute(model, perm)
    result = symmetry.match_weights(model, twin)
    aligned = symmetry.permute(twin, result.perm)
    assert result.converged
    assert state_equal(aligned, model)  # bitwise: the planted permutation is undone exactly
    theta, back = weight_vector(model.state_dict(), "all"), weight_vector(aligned.state_dict(), "all")
    assert cosine_similarity(theta, back) == pytest.approx(1.0, abs=1e-12)
    with torch.no_grad():
        assert torch.equal(aligned(x), model(x))
    return result


@settings(max_examples=25)
@given(case=cases(widths=P2_WIDTHS, resnet_widths=RESNET_WIDTHS), perm_seed=st.integers(0, 2**16))
def test_p2_weight_matching_recovers_a_planted_permutation(case, perm_seed):
    model = make_model(case)
    perm = symmetry.random_permutation(symmetry.permutation_spec(model), torch.Generator().manual_seed(perm_seed))
    assert_recovers(model, perm, make_inputs(case))


def test_p2_recovers_at_the_official_medium_cnn_widths():
    case = Case("medium_cnn", MEDIUM_CNN, "none", 0)
    model = make_model(case)
    perm = symmetry.random_permutation(symmetry.permutation_spec(model), torch.Generator().manual_seed(0))
    assert_recovers(model, perm, make_inputs(case, n=2))


def test_weight_matching_never_lowers_the_similarity_of_independent_models():
    """The objective starts at the identity and only rises, and permutations keep norms, so the
    aligned cosine (over every parameter) is at least the raw one."""
    a, b = (make_model(case_of("small_cnn", seed, (16, 32, 32))) for seed in (0, 1))
    result = symmetry.match_weights(a, b)
    raw = cosine_similarity(weight_vector(a.state_dict(), "all"), weight_vector(b.state_dict(), "all"))
    aligned = cosine_similarity(weight_vector(a.state_dict(), "all"),
                                weight_vector(symmetry.permute(b, result.perm).state_dict(), "all"))
    assert result.converged and result.sweeps >= 2
    assert aligned > raw
    symmetry.check_permutation(symmetry.permutation_spec(b), symmetry.weight_matching(a, b))


def test_weight_matching_warns_when_max_iter_is_reached():
    a, b = (make_model(case_of("small_cnn", seed, (16, 32, 32))) for seed in (0, 1))
    with pytest.warns(symmetry.WeightMatchingWarning, match=r"did not converge in max_iter=1 sweeps"):
        result = symmetry.match_weights(a, b, max_iter=1)
    assert not result.converged and result.sweeps == 1
    with pytest.raises(ValueError, match=r"max_iter=0 is invalid: expected a positive int"):
        symmetry.weight_matching(a, b, max_iter=0)


MISMATCHES = {
    "architecture": (Case("mlp", (8,), "none", 0), Case("small_cnn", (8, 8, 8), "none", 0),
                     r"model_a is a MLP and model_b a OfficialCNN"),
    "width": (Case("mlp", (8, 8), "none", 0), Case("mlp", (8, 16), "none", 0),
              r"differ at module 'hidden.1.linear': Linear\(in_features=8, out_features=8.*out_features=16"),
    "groupnorm groups": (Case("resnet20", (8, 8, 8), "group", 0), Case("resnet20", (8, 8, 8), "layer", 0),
                         r"differ at module 'stem.norm': GroupNorm\(8, 8.* vs GroupNorm\(1, 8"),
    "norm kind": (Case("resnet20", (8, 8, 8), "batch", 0), Case("resnet20", (8, 8, 8), "none", 0),
                  r"differ at module 'stem.conv'"),
}


@pytest.mark.parametrize("which", list(MISMATCHES))
def test_mismatched_models_are_rejected(which):
    case_a, case_b, message = MISMATCHES[which]
    a, b = make_model(case_a), make_model(case_b)
    with pytest.raises(ValueError, match=message):
        symmetry.weight_matching(a, b)
    data = Split(make_inputs(case_a), torch.zeros(N_EXAMPLES, dtype=torch.int64))
    with pytest.raises(ValueError, match=message):
        symmetry.interpolation_barrier(a, b, data, bn_data=data)


def test_non_finite_weights_are_rejected():
    a, b = make_model(case_of("mlp", 0)), make_model(case_of("mlp", 1))
    with torch.no_grad():
        b.head.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"model_b: head.weight has NaN or infinite values"):
        symmetry.weight_matching(a, b)


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
    curve = symmetry.interpolation_barrier(a, b, data, n_points=5)
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
    curve = symmetry.interpolation_barrier(model, copy.deepcopy(model), data, n_points=4, bn_data=data.x)
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
    curve = symmetry.interpolation_barrier(a, b, data, n_points=3)
    assert curve.loss[1].item() == pytest.approx(math.log(NUM_CLASSES), rel=1e-12)
    assert curve.accuracy[1].item() == (data.y == 0).double().mean().item()
    chord = (curve.loss[0] + curve.loss[2]).item() / 2
    assert curve.loss_barrier == pytest.approx(max(0.0, math.log(NUM_CLASSES) - chord), rel=1e-12)


def test_batchnorm_statistics_are_recomputed_at_every_point():
    case = case_of("resnet20-batch")
    a, b = make_model(case), make_model(case_of("resnet20-batch", 1))  # random running stats
    data, train = labelled(case), labelled(case_of("resnet20-batch", 7), n=32)
    with pytest.raises(ValueError, match=r"the models have BatchNorm: pass bn_data"):
        symmetry.interpolation_barrier(a, b, data)
    curve = symmetry.interpolation_barrier(a, b, data, n_points=3, bn_data=train, batch_size=len(train))

    # The endpoint is model_a evaluated with statistics re-estimated on `train`, not its own.
    refit = symmetry.recompute_batchnorm_stats_(copy.deepcopy(a), train.x, batch_size=len(train))
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
        symmetry.interpolation_barrier(a, b, **call)
