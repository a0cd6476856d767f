import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from harness import settings
from harness.cohort import cohort_seeds, dropout_mask, engine_for, train_cohort
from harness.data import Data, Split, load
from harness.models import build
from harness.settings import ModelSpec, Recipe, Window
from harness.store import RunStore
from harness.training import DivergedError, train
from harness.weightspace import pairwise_cosine, weight_vector

DIGITS = settings.get("digits-mlp")
# Short settings: the cohort machinery, not accuracy, is under test. The MLP takes the vmap engine on
# a CPU, the CNN (SmallCNN layout on 8x8 digits, dropout 0.1) the loop engine.
MLP = DIGITS.replace(recipe=Recipe(epochs=3, batch_size=64, lr_halving_every=2, window=Window(epochs=1, per_epoch=10),
                                   cohort=4))
CNN = MLP.replace(model=ModelSpec("small_cnn", (4, 4, 4), dropout=0.1))
DROPOUT_MLP = MLP.replace(model=ModelSpec("mlp", (64, 64), dropout=0.1))
# Welch's test of "cohort and per-seed runs come from one distribution": a p-value below this is a
# difference (a fixed alpha, not tuned: with seeded runs the outcome is deterministic).
SAME_DISTRIBUTION_ALPHA = 1e-3


@pytest.fixture(scope="module")
def digits():
    return load(DIGITS.dataset)


@pytest.fixture(scope="module", params=[MLP, CNN], ids=["mlp-vmap", "cnn-loop"])
def cohort_runs(request, digits):
    return request.param, train_cohort(request.param, [0, 1, 2, 3], device="cpu", data=digits)


def test_cohort_seeds_are_aligned_blocks():
    assert cohort_seeds(7, 5) == (5, 6, 7, 8, 9)
    assert cohort_seeds(1000, 8) == tuple(range(1000, 1008))
    assert cohort_seeds(3, 1) == (3,)
    with pytest.raises(ValueError, match="cohort size"):
        cohort_seeds(3, 0)


def test_engines_by_model_and_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    mlp, cnn = (build(s.model, (1, 8, 8), 10) for s in (MLP, CNN))
    assert (engine_for(mlp, cpu), engine_for(cnn, cpu)) == ("vmap", "loop")
    assert (engine_for(mlp, cuda), engine_for(cnn, cuda)) == ("vmap", "vmap")


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5])
def test_dropout_masks_keep_the_expected_fraction_and_the_expected_activation(p):
    mask = dropout_mask((200, 500), p, torch.Generator().manual_seed(0), torch.device("cpu"))
    kept = (mask > 0).double().mean().item()
    # 100,000 Bernoulli draws: the kept fraction lies within 5 standard errors of 1 - p.
    assert abs(kept - (1 - p)) <= 5 * np.sqrt(p * (1 - p) / mask.numel()) + 1e-12
    scale = 1 / (1 - round(p * 2**16) / 2**16)  # the exact inverse keep probability: E[mask] = 1
    torch.testing.assert_close(mask[mask > 0], torch.full_like(mask[mask > 0], scale))


def test_dropout_masks_come_from_their_generator_alone():
    draw = [dropout_mask((64, 10), 0.1, torch.Generator().manual_seed(s), torch.device("cpu")) for s in (1, 1, 2)]
    assert torch.equal(draw[0], draw[1]) and not torch.equal(draw[0], draw[2])


def test_cohort_runs_hold_what_per_seed_runs_hold(cohort_runs, digits):
    setting, runs = cohort_runs
    reference = train(setting.replace(recipe=dataclasses.replace(setting.recipe, cohort=1)), 2, device="cpu",
                      data=digits)
    run = runs[2]
    assert [r.seed for r in runs] == [0, 1, 2, 3] and run.init_seed == run.data_seed == 2
    assert run.setting_key == setting.cache_key() != reference.setting_key
    assert run.epochs == reference.epochs
    for name in ("eval_probs", "eval_labels", "final_logits", "window", "train_loss", "train_acc"):
        ours, theirs = getattr(run, name), getattr(reference, name)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, name
    # The initialisation is drawn from the seed's own stream, as train() draws it.
    for key, tensor in reference.weights[0].items():
        assert torch.equal(run.weights[0][key], tensor), key
    assert list(run.weights[3]) == list(reference.weights[3])  # state-dict order
    torch.testing.assert_close(run.window[-1], weight_vector(run.weights[3], "all").float())
    assert torch.equal(torch.softmax(run.final_logits, dim=1), run.eval_probs[-1])
    assert run.meta["cohort"] == [0, 1, 2, 3]


def test_every_seed_of_a_cohort_learns_its_own_function(cohort_runs):
    _, runs = cohort_runs
    for run in runs:
        assert run.train_loss[-1] < run.train_loss[0]
    finals = torch.stack([weight_vector(r.weights[3]) for r in runs])
    assert pairwise_cosine(finals).fill_diagonal_(0).max() < 0.5  # independent seeds, not copies


def test_cohort_runs_are_statistically_the_per_seed_loops_runs(digits):
    """Accuracy and the cross-seed cosine of the final weights: the same distribution (Welch).

    With dropout, so that the cohort's masks (drawn by :func:`dropout_mask`) replace ``nn.Dropout``'s.
    """
    setting = DROPOUT_MLP.replace(recipe=dataclasses.replace(MLP.recipe, epochs=4, cohort=8))
    cohort = train_cohort(setting, list(range(8)), device="cpu", data=digits)
    loop = [train(setting.replace(recipe=dataclasses.replace(setting.recipe, cohort=1)), s, device="cpu", data=digits)
            for s in range(8)]
    for what in (lambda runs: [r.eval_acc[-1].item() for r in runs],
                 lambda runs: _off_diagonal(pairwise_cosine(torch.stack([weight_vector(r.weights[4]) for r in runs])))):
        assert stats.ttest_ind(what(cohort), what(loop), equal_var=False).pvalue > SAME_DISTRIBUTION_ALPHA


def _off_diagonal(matrix: torch.Tensor) -> list[float]:
    i, j = torch.triu_indices(len(matrix), len(matrix), offset=1)
    return matrix[i, j].tolist()


@pytest.mark.parametrize("setting", [MLP, CNN], ids=["mlp-vmap", "cnn-loop"])
def test_a_seed_is_the_same_run_alone_with_others_and_in_any_order(setting, tmp_path):
    alone = RunStore(tmp_path / "a").get_or_train(setting, [2], device="cpu")[0]
    together = RunStore(tmp_path / "b").get_or_train(setting, [3, 2, 0], device="cpu")
    assert [r.seed for r in together] == [3, 2, 0]
    for name in ("eval_probs", "final_logits", "window", "train_loss", "train_acc"):
        assert torch.equal(getattr(alone, name), getattr(together[1], name)), name
    for epoch, state in alone.weights.items():
        for key, tensor in state.items():
            assert torch.equal(tensor, together[1].weights[epoch][key]), (epoch, key)


def test_the_store_trains_a_whole_cohort_once_and_keeps_it(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    (run,) = store.get_or_train(MLP, [5], device="cpu")
    assert store.trained == [(MLP.name, s) for s in (4, 5, 6, 7)]
    assert all(store.path(MLP, s).is_dir() for s in (4, 5, 6, 7))
    # A later request is served from memory: no entry is read again...
    monkeypatch.setattr("harness.store._read_entry", lambda *a: pytest.fail("read an entry again"))
    assert store.get_or_train(MLP, [7, 5], device="cpu")[1] is run
    monkeypatch.undo()
    # ...and a new store (another session) loads the members it did not train.
    again = RunStore(tmp_path)
    assert [r.seed for r in again.get_or_train(MLP, [4, 6], device="cpu")] == [4, 6] and again.trained == []


def test_a_diverged_seed_discards_its_cohort(digits):
    x = digits.train.x.clone()
    x[5] = float("nan")
    poisoned = Data(Split(x, digits.train.y), digits.val, digits.test, digits.num_classes)
    with pytest.raises(DivergedError, match=r"digits-mlp seeds=\[.*\]: training loss is not finite in epoch 1"):
        train_cohort(MLP, [0, 1], device="cpu", data=poisoned)


def test_models_with_buffers_and_bad_arguments_are_refused(digits):
    batchnorm = MLP.replace(dataset=settings.get("synthetic16-cnn").dataset,
                            model=ModelSpec("resnet20", (4, 4, 4), norm="batch"))
    with pytest.raises(ValueError, match="cohort=4 is invalid for a model with buffers"):
        train_cohort(batchnorm, [0, 1], device="cpu")
    with pytest.raises(ValueError, match="distinct"):
        train_cohort(MLP, [1, 1], device="cpu", data=digits)
    with pytest.raises(ValueError, match="engine='jit' is invalid"):
        train_cohort(MLP, [0], device="cpu", data=digits, engine="jit")


def test_progress_reports_the_cohort():
    lines = []
    train_cohort(MLP, [8, 9], device="cpu", progress=lines.append)
    assert len(lines) == 1 and lines[0].startswith("digits-mlp seeds 8-9: 3 epochs in ") and "one cohort (vmap)" in lines[0]
