"""Unit tests of harness.subspace: flat vectors, the samplers' statistics, batch prediction."""

import pytest
import torch

from harness import settings
from harness.models import build
from harness.store import RunStore
from harness.subspace import (
    Scales,
    diagonal_gaussian_samples,
    dropout_samples,
    flatten,
    low_rank_gaussian_samples,
    predict_states,
    random_direction_samples,
    unflatten,
    weight_average,
    window_snapshots,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_flatten_unflatten_round_trip_keeps_buffers():
    model = build(settings.ModelSpec("resnet20", (4, 8, 8), norm="batch"), (3, 8, 8), 10)
    state = model.state_dict()
    flat = flatten(state)
    back = unflatten(flat * 2, state)
    assert torch.equal(flatten(back), flat * 2)
    for k, t in state.items():
        if k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert back[k] is t
    with pytest.raises(ValueError, match="parameters"):
        unflatten(flat[:-1], state)


SAMPLERS = [
    lambda x, n, g: random_direction_samples(x[0], n, 0.3, g),
    lambda x, n, g: dropout_samples(x[0], n, 0.3, g),
    lambda x, n, g: diagonal_gaussian_samples(x, n, 1.0, g),
    lambda x, n, g: low_rank_gaussian_samples(x, n, 1.0, g, spread=True),
]


@pytest.mark.parametrize("draw", SAMPLERS)
def test_shape_and_determinism(draw):
    x = torch.randn(4, 50, generator=_gen(1))
    a, b = draw(x, 7, _gen(3)), draw(x, 7, _gen(3))
    assert a.shape == (7, 50) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, draw(x, 7, _gen(4)))


def test_random_direction_relative_norm():
    theta = torch.randn(200, generator=_gen(1))
    out = random_direction_samples(theta, 2000, 0.5, _gen())
    r = (out - theta).norm(dim=1) / theta.norm()
    assert r.max() <= 0.5 + 1e-5 and abs(r.mean().item() - 0.25) < 0.02


def test_dropout_is_unbiased():
    theta = torch.randn(100, generator=_gen(1))
    out = dropout_samples(theta, 20000, 0.5, _gen())
    assert torch.allclose(out.mean(0), theta, atol=0.05)
    with pytest.raises(ValueError, match="below 1"):
        dropout_samples(theta, 2, 1.0, _gen())


def test_diagonal_gaussian_matches_checkpoints():
    ck = torch.randn(6, 30, generator=_gen(1), dtype=torch.float64) * torch.linspace(0.1, 2, 30)
    out = diagonal_gaussian_samples(ck, 20000, 1.0, _gen()).double()
    assert torch.allclose(out.mean(0), ck.mean(0), atol=0.05)
    assert torch.allclose(out.std(0), ck.std(0), rtol=0.05)


def test_pca_samples_lie_in_span_of_centred_checkpoints():
    ck = torch.randn(4, 40, generator=_gen(1), dtype=torch.float64)
    out = low_rank_gaussian_samples(ck, 50, 6.0, _gen()).double()
    centred = ck - ck.mean(0)
    basis = torch.linalg.svd(centred, full_matrices=False)[2][:3]
    residual = (out - ck.mean(0)) - (out - ck.mean(0)) @ basis.T @ basis
    assert residual.abs().max() < 1e-4


def test_pca_samples_have_the_checkpoints_covariance():
    # rank >= K - 1 keeps every component: the samples' covariance is the checkpoints' (unbiased)
    ck = torch.randn(4, 6, generator=_gen(1), dtype=torch.float64) * torch.linspace(0.5, 2, 6)
    out = low_rank_gaussian_samples(ck, 40000, 1.0, _gen(), rank=5).double()
    assert torch.allclose(out.mean(0), ck.mean(0), atol=0.05)
    assert torch.allclose(torch.cov(out.T), torch.cov(ck.T), atol=0.08)


def test_pca_draw_does_not_depend_on_checkpoint_order():
    # the components' signs are fixed, so the same checkpoints in another order give the same draw
    ck = torch.randn(5, 40, generator=_gen(1), dtype=torch.float64)
    a = low_rank_gaussian_samples(ck, 8, 2.0, _gen(), rank=3)
    b = low_rank_gaussian_samples(ck[[3, 0, 4, 2, 1]], 8, 2.0, _gen(), rank=3)
    assert torch.allclose(a, b, atol=1e-5)


def test_weight_average_is_mean():
    ck = torch.randn(5, 10, generator=_gen(1))
    assert torch.allclose(weight_average(ck), ck.mean(0))


def test_validation_messages():
    with pytest.raises(ValueError, match="n=0"):
        random_direction_samples(torch.ones(3), 0, 1.0, _gen())
    with pytest.raises(ValueError, match="K >= 2"):
        diagonal_gaussian_samples(torch.ones(1, 3), 2, 1.0, _gen())
    with pytest.raises(ValueError, match="1-D"):
        random_direction_samples(torch.ones(2, 3), 2, 1.0, _gen())
    with pytest.raises(TypeError, match="Generator"):
        random_direction_samples(torch.ones(3), 2, 1.0, 0)
    with pytest.raises(ValueError, match="Scales.dropout"):
        Scales(random=1, dropout=1.5, diag=1, pca=1)


def test_predict_states_equals_run_predictions(tmp_path):
    from harness import data as data_lib

    window = settings.Window(epochs=1, per_epoch=10)
    setting = settings.get("digits-mlp").replace(recipe=settings.Recipe(epochs=2, batch_size=64, window=window))
    run = RunStore(tmp_path).get_or_train(setting, [0], device="cpu")[0]
    x = data_lib.load(setting.dataset).test.x
    final = flatten(run.weights[run.epochs[-1]])
    probs = predict_states(setting, run, final[None], x)
    assert probs.shape == (1, *run.eval_probs[-1].shape)
    assert torch.allclose(probs[0], run.eval_probs[-1], atol=1e-6)
    assert window_snapshots(run).shape == (10, final.numel())
    assert torch.equal(window_snapshots(run)[-1], final)  # the window ends with the final weights
    with pytest.raises(ValueError, match="at least one"):
        predict_states(setting, run, [], x)
    # Both methods of harness.evaluation, behind the name this module re-exports.
    looped = predict_states(setting, run, window_snapshots(run)[:3], x, method="looped")
    batched = predict_states(setting, run, window_snapshots(run)[:3], x, method="batched")
    torch.testing.assert_close(batched, looped, atol=1e-6, rtol=0)


def test_window_snapshots_of_a_recipe_without_a_window_is_a_clear_error(tmp_path):
    setting = settings.get("digits-mlp").replace(recipe=settings.Recipe(epochs=1, batch_size=64))
    run = RunStore(tmp_path).get_or_train(setting, [0], device="cpu")[0]
    assert run.window.shape[0] == 0
    with pytest.raises(ValueError, match=r"names no subspace window \(Recipe\(window=Window"):
        window_snapshots(run)
