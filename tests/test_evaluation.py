"""Unit tests of harness.evaluation: the batched (vmapped) predictions against the looped reference."""

import pytest
import torch

from harness import evaluation, settings
from harness.evaluation import predict_states, stack_states, state_at
from harness.models import build
from harness.subspace import flatten, random_direction_samples
from harness.training import Run

# Architectures at small widths, on the settings' input shapes: the MLP on digits (1x8x8), the
# CNN and ResNet20 (every normalisation) on synthetic16 (3x16x16).
CASES = {
    "mlp": ("digits-mlp", settings.ModelSpec("mlp", (16, 16), dropout=0.5)),
    "small_cnn": ("synthetic16-cnn", settings.ModelSpec("small_cnn", (8, 8, 8), dropout=0.5)),
    **{f"resnet20-{norm}": ("synthetic16-cnn", settings.ModelSpec("resnet20", (4, 8, 8), norm=norm))
       for norm in ("batch", "group", "layer", "none")},
}
# Float tolerance of two evaluations of the same weights: vmapped convolutions are grouped
# convolutions, another kernel than the looped path's, so probabilities agree to rounding only.
ATOL = 1e-5
# More states than a chunk holds, and not a multiple of it: the last chunk is a partial one. The
# chunk is shrunk to CHUNK (fixture below) so that this takes few states.
CHUNK, K = 2, 5
N_TEST, N_TRAIN = 16, 80
RADIUS = 0.3  # relative radius of the sampled states: far enough that every state predicts differently


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(evaluation, "MODELS_PER_CHUNK", CHUNK)


def _setting_and_run(case: str) -> tuple[settings.Setting, Run]:
    """A setting with the case's model, and a one-checkpoint run of it with random 1-D tensors."""
    name, spec = CASES[case]
    setting = settings.get(name).replace(model=spec)
    torch.manual_seed(0)
    model = build(spec, setting.dataset.input_shape, setting.dataset.num_classes)
    gen = torch.Generator().manual_seed(1)
    state = model.state_dict()
    with torch.no_grad():
        for key, tensor in state.items():
            if tensor.is_floating_point() and tensor.ndim == 1:  # Glorot leaves them constant
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5 if key.endswith("running_var")
                             else torch.randn(tensor.shape, generator=gen))
    empty = torch.zeros(0)
    run = Run(setting_key=setting.cache_key(), seed=0, init_seed=0, data_seed=0,
              weights={0: {k: v.clone() for k, v in state.items()}}, eval_probs=empty, eval_labels=empty,
              final_logits=empty, window=empty, train_loss=empty, train_acc=empty)
    return setting, run


def _inputs(setting: settings.Setting, n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, *setting.dataset.input_shape, generator=torch.Generator().manual_seed(seed))


def _samples(run: Run, k: int = K) -> torch.Tensor:
    return random_direction_samples(flatten(run.weights[0]), k, RADIUS, torch.Generator().manual_seed(2))


@pytest.mark.parametrize("case", list(CASES))
def test_batched_predictions_equal_the_looped_reference(case):
    setting, run = _setting_and_run(case)
    x, train_x = _inputs(setting, N_TEST, 3), _inputs(setting, N_TRAIN, 4)
    thetas = _samples(run)
    looped = predict_states(setting, run, thetas, x, train_x=train_x, method="looped")
    batched = predict_states(setting, run, thetas, x, train_x=train_x, method="batched")
    assert batched.shape == looped.shape == (K, N_TEST, setting.dataset.num_classes)
    torch.testing.assert_close(batched, looped, atol=ATOL, rtol=0)
    # The states predict differently: a mix-up of chunks or states would not go unnoticed.
    assert (looped - looped[:1]).abs().amax(dim=(1, 2))[1:].min() > 100 * ATOL


def test_batchnorm_statistics_span_several_batches_like_the_reference(monkeypatch):
    # Statistics averaged over batches of different sizes must weigh every batch equally, as the
    # reference's cumulative average does (80 images in batches of 32: 32, 32, 16).
    monkeypatch.setattr(evaluation, "BATCHNORM_BATCH", 32)
    setting, run = _setting_and_run("resnet20-batch")
    x, train_x = _inputs(setting, N_TEST, 3), _inputs(setting, N_TRAIN, 4)
    thetas = _samples(run, 2)
    looped = predict_states(setting, run, thetas, x, train_x=train_x, method="looped")
    batched = predict_states(setting, run, thetas, x, train_x=train_x, method="batched")
    torch.testing.assert_close(batched, looped, atol=ATOL, rtol=0)
    one_batch = predict_states(setting, run, thetas, x, train_x=train_x[:32], method="looped")
    assert not torch.allclose(one_batch, looped, atol=100 * ATOL)  # the later batches matter


@pytest.mark.parametrize("case", ["small_cnn", "resnet20-batch"])
def test_state_dicts_and_flat_vectors_predict_alike_in_both_methods(case):
    setting, run = _setting_and_run(case)
    x, train_x = _inputs(setting, N_TEST, 3), _inputs(setting, N_TRAIN, 4)
    thetas = _samples(run, 2)
    stacked, shared = stack_states(thetas, run.weights[0])
    dicts = [state_at(stacked, shared, i) for i in range(2)]
    from_flat = predict_states(setting, run, thetas, x, train_x=train_x, method="looped")
    for method in ("batched", "looped"):
        torch.testing.assert_close(predict_states(setting, run, dicts, x, train_x=train_x, method=method),
                                   from_flat, atol=ATOL, rtol=0)


def test_batched_predictions_are_in_eval_mode_and_reproducible():
    setting, run = _setting_and_run("small_cnn")  # dropout 0.5: train mode would change every call
    x = _inputs(setting, N_TEST, 3)
    thetas = _samples(run, 2)
    first = predict_states(setting, run, thetas, x, method="batched")
    assert torch.equal(first, predict_states(setting, run, thetas, x, method="batched"))
    # The centre itself gives the model's own eval-mode predictions.
    model = build(setting.model, setting.dataset.input_shape, setting.dataset.num_classes)
    model.load_state_dict(run.weights[0])
    centre = predict_states(setting, run, flatten(run.weights[0])[None], x, method="batched")[0]
    torch.testing.assert_close(centre, model.eval()(x).softmax(-1), atol=ATOL, rtol=0)


def test_stack_states_round_trips_flat_vectors_and_keeps_buffers():
    _, run = _setting_and_run("resnet20-batch")
    thetas = _samples(run, 3)
    stacked, shared = stack_states(thetas, run.weights[0])
    assert all(t.shape[0] == 3 for t in stacked.values())
    assert {k for k in shared if k.endswith("running_mean")} and not {k for k in stacked if "running" in k}
    assert torch.equal(flatten(state_at(stacked, shared, 1)), thetas[1])


def test_bad_states_and_methods_are_clear_errors():
    setting, run = _setting_and_run("resnet20-batch")
    x = _inputs(setting, 4, 3)
    with pytest.raises(ValueError, match="at least one"):
        stack_states([], run.weights[0])
    with pytest.raises(ValueError, match=r"flat vectors \(K, D\)"):
        stack_states(torch.zeros(3), run.weights[0])
    with pytest.raises(ValueError, match="but the template has"):
        stack_states(torch.zeros(2, 5), run.weights[0])
    with pytest.raises(ValueError, match="method='vmap' is invalid"):
        predict_states(setting, run, _samples(run, 1), x, train_x=x, method="vmap")
    with pytest.raises(ValueError, match="has BatchNorm layers: pass train_x"):
        predict_states(setting, run, _samples(run, 1), x, method="batched")
