import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness import settings
from harness.data import Data, Split
from harness.settings import Recipe, Window
from harness.models import build
from harness.training import (
    DivergedError,
    derive_seed,
    final_probs,
    inference_layout,
    predict_logits,
    resolve_device,
    seeds_of,
    train,
)
from harness.weightspace import weight_vector

ROOT = Path(__file__).resolve().parents[1]
# digits-mlp shortened: the loop's behaviour, not its accuracy, is under test here.
SHORT = settings.get("digits-mlp").replace(
    recipe=Recipe(epochs=3, batch_size=64, lr_halving_every=2, window=Window(epochs=1, per_epoch=10)))


def weights_digest(run) -> str:
    h = hashlib.sha256()
    for epoch, state in run.weights.items():
        for name, tensor in state.items():
            h.update(f"{epoch}/{name}".encode())
            h.update(tensor.numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def run():
    return train(SHORT, 0, device="cpu")


def test_run_holds_the_whole_trajectory(run):
    assert run.epochs == (0, 1, 2, 3)
    assert run.eval_probs.shape == (4, 540, 10) and run.eval_probs.dtype == torch.float32
    torch.testing.assert_close(run.eval_probs.sum(-1), torch.ones(4, 540))
    assert run.eval_labels.shape == (540,) and run.eval_labels.dtype == torch.int64
    assert run.train_loss.shape == run.train_acc.shape == (3,)
    assert run.seed == run.init_seed == run.data_seed == 0
    assert run.setting_key == SHORT.cache_key()
    assert run.meta["total_seconds"] > 0 and run.meta["device"] == "cpu"


def test_run_keeps_the_final_epochs_logits(run):
    assert run.final_logits.shape == (540, 10) and run.final_logits.dtype == torch.float32
    assert torch.equal(torch.softmax(run.final_logits, dim=1), run.eval_probs[-1])


def test_training_learns(run):
    assert run.eval_acc[0] < 0.3 < 0.8 < run.eval_acc[-1]
    assert run.train_loss[-1] < run.train_loss[0]


def test_window_snapshots_are_taken_through_the_last_epoch_and_end_with_the_final_weights(run):
    final = weight_vector(run.weights[3], "all").float()
    assert run.window.shape == (10, final.numel()) and run.window.dtype == torch.float32
    assert torch.equal(run.window[-1], final)
    # Ten distinct points of the trajectory, moving away from the previous epoch's end.
    previous = weight_vector(run.weights[2], "all").float()
    distances = (run.window - previous).norm(dim=1)
    assert len(set(distances.tolist())) == 10 and distances[-1] > distances[0]


def test_a_window_with_more_snapshots_than_steps_is_refused():
    tiny = SHORT.replace(recipe=Recipe(epochs=1, batch_size=1024, window=Window(epochs=1, per_epoch=10)))
    with pytest.raises(ValueError, match=r"Window.per_epoch=10 is invalid: expected at most the 2 optimisation steps"):
        train(tiny, 0, device="cpu")


def test_only_the_recipes_weight_epochs_are_kept():
    recipe = Recipe(epochs=3, batch_size=64, weight_epochs=(0, 3))
    kept = train(SHORT.replace(recipe=recipe), 0, device="cpu")
    assert kept.epochs == (0, 3)
    assert kept.eval_probs.shape[0] == 4  # probabilities are kept for every epoch regardless


@pytest.mark.integration
def test_same_seed_is_bitwise_identical_in_two_processes():
    # Two fresh interpreters, started together, train seed 0 and print a digest of every saved
    # weight tensor. One thread each, so the two do not compete for the cores.
    code = ("import sys; sys.path.insert(0, 'tests'); from test_training import SHORT, train, weights_digest; "
            "print(weights_digest(train(SHORT, 0, device='cpu')))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    digests = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(digests[0]) == 64 and digests[0] == digests[1], digests


def test_init_and_data_order_seeds_are_separate(run):
    same_init = train(SHORT, 0, data_seed=1, device="cpu")
    same_order = train(SHORT, 0, init_seed=1, device="cpu")
    first = next(iter(run.weights[0]))
    assert torch.equal(same_init.weights[0][first], run.weights[0][first])
    assert not torch.equal(same_init.weights[1][first], run.weights[1][first])
    assert not torch.equal(same_order.weights[0][first], run.weights[0][first])
    assert (same_init.init_seed, same_init.data_seed) == (0, 1)


def test_streams_get_distinct_seeds():
    assert len({derive_seed(0, s) for s in ("init", "order", "dropout")}) == 3
    assert derive_seed(0, "init") != derive_seed(1, "init")


def test_callers_random_state_is_left_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    train(SHORT, 1, device="cpu")
    assert torch.equal(torch.get_rng_state(), before)


def test_evaluation_is_in_eval_mode_so_dropout_does_not_change_probabilities():
    with_dropout = SHORT.replace(model=SHORT.model.__class__("mlp", (64, 64), dropout=0.5))
    a, b = train(with_dropout, 0, device="cpu"), train(with_dropout, 0, device="cpu")
    assert torch.equal(a.eval_probs, b.eval_probs)


def test_predictions_in_the_inference_layout_match_a_plain_forward_pass():
    model = build(settings.get("synthetic32-smallcnn").model, (3, 32, 32), 10).eval()
    x = torch.randn(9, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert inference_layout(x).is_contiguous(memory_format=torch.channels_last)
    flat = torch.randn(9, 20)
    assert inference_layout(flat) is flat  # non-image inputs keep their layout
    with torch.no_grad():
        plain = model(x)
    assert torch.allclose(predict_logits(model, x, batch_size=4), plain, atol=1e-5)


def test_non_finite_loss_raises_a_named_error():
    from harness.data import load

    clean = load(SHORT.dataset)
    x = clean.train.x.clone()
    x[5] = float("nan")
    poisoned = Data(Split(x, clean.train.y), clean.val, clean.test, clean.num_classes)
    with pytest.raises(DivergedError, match=r"digits-mlp seed=0: training loss is nan in epoch 1"):
        train(SHORT, 0, device="cpu", data=poisoned)


def test_progress_reports_each_finished_run():
    lines = []
    train(SHORT, 2, device="cpu", progress=lines.append)
    assert len(lines) == 1
    assert lines[0].startswith("digits-mlp seed=2: 3 epochs in ") and "test acc 0." in lines[0]


def test_a_run_estimated_to_be_long_reports_every_epoch_with_the_time_left(monkeypatch):
    monkeypatch.setattr("harness.training.PROGRESS_EVERY_S", 0.0)  # every run counts as long
    lines = []
    train(SHORT, 2, device="cpu", progress=lines.append)
    epochs = SHORT.recipe.epochs
    assert len(lines) == epochs  # epochs 1..E-1, then the finished run
    for epoch, line in enumerate(lines[:-1], start=1):
        assert line.startswith(f"digits-mlp seed=2 epoch {epoch}/{epochs}: loss ") and line.endswith("s left")


@pytest.mark.parametrize("kwargs, message", [
    ({"seed": -1}, r"seed=-1 is invalid: expected an int >= 0"),
    ({"seed": 0, "init_seed": 1.5}, r"init_seed=1.5 is invalid"),
])
def test_bad_seeds(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train(SHORT, device="cpu", **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match=r"device='cuda' is invalid: CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")


def test_model_at_rebuilds_the_saved_model(run):
    from harness.data import load
    from harness.training import model_at, predict_proba

    model = model_at(SHORT, run, 3)
    torch.testing.assert_close(predict_proba(model, load(SHORT.dataset).test.x), run.eval_probs[3])
    with pytest.raises(ValueError, match=r"epoch=7 is invalid: run seed=0 keeps the weights of epochs \(0, 1, 2, 3\)"):
        model_at(SHORT, run, 7)
    with pytest.raises(ValueError, match=r"belongs to setting key"):
        model_at(settings.get("synthetic16-cnn"), run, 3)


def test_final_probs_and_seeds_of_runs():
    setting = settings.get("digits-mlp")
    runs = [train(setting, seed=s, device="cpu") for s in (3, 1)]
    assert seeds_of(runs) == (3, 1)
    stacked = final_probs(runs)
    assert stacked.shape == (2, *runs[0].eval_probs.shape[1:])
    assert torch.equal(stacked[1], runs[1].eval_probs[-1])
