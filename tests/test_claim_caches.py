"""Tests of the claims' caches in the run store: P3's pair statistics, A3's per-seed calibrations
(claims/test_alignment.py, claims/test_seed_variability.py), the function-space figures' t-SNE
(fixtures/figures.py) and fixtures.derived_cache.

The runs are built here, not trained: randomly initialised digits-mlp networks (P3 evaluates them
on the real digits split), and logits made over- or underconfident on purpose (A3). A second call
must return the first call's tensors bit for bit without computing anything: the computing
function is replaced by one that raises.
"""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import claims.test_alignment as alignment
import claims.test_seed_variability as variability
import fixtures.figures as figures
from fixtures.derived_cache import across_runs_params, cached_across_runs, run_fingerprint
from harness import data as data_lib
from harness import settings
from harness.models import build
from harness.store import RunStore
from harness.training import Run

SETTING = "digits-mlp"
N_CLASSES = 10


def make_run(seed: int, state: dict[str, torch.Tensor], logits: torch.Tensor, labels: torch.Tensor) -> Run:
    """A run holding only what the caches read: final weights (at the recipe's last epoch), logits, labels."""
    spec = settings.get(SETTING)
    return Run(setting_key=spec.cache_key(), seed=seed, init_seed=seed, data_seed=seed,
               weights={spec.recipe.epochs: state}, eval_probs=torch.softmax(logits, 1)[None],
               eval_labels=labels, final_logits=logits, window=torch.zeros(0, 1),
               train_loss=torch.zeros(1, dtype=torch.float64), train_acc=torch.zeros(1, dtype=torch.float64))


def random_models(n: int) -> list[torch.nn.Module]:
    spec = settings.get(SETTING)
    models = []
    for seed in range(n):
        torch.manual_seed(seed)
        models.append(build(spec.model, spec.dataset.input_shape, spec.dataset.num_classes).eval())
    return models


def runs_of(models: list[torch.nn.Module]) -> list[Run]:
    logits, labels = torch.zeros(4, N_CLASSES), torch.zeros(4, dtype=torch.int64)
    return [make_run(seed, m.state_dict(), logits, labels) for seed, m in enumerate(models)]


def never(*args, **kwargs):
    raise AssertionError("computed again instead of reading the run store")


def same_bits(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> bool:
    """Same type, dtype, shape and bytes (a NaN equals itself)."""
    if type(a) is not type(b) or a.dtype != b.dtype or a.shape != b.shape:
        return False
    if isinstance(a, np.ndarray):
        return a.tobytes() == b.tobytes()
    return torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8))


def assert_bitwise_equal(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key in want:
        assert same_bits(got[key], want[key]), key


# Examples of the digits splits the pairs are evaluated on: enough for distinct models to disagree.
N_EXAMPLES = 120


@pytest.fixture(scope="module")
def digits() -> SimpleNamespace:
    """The first N_EXAMPLES of the digits test and training splits (``.test``: a Split, ``.train.x``)."""
    data = data_lib.load(settings.get(SETTING).dataset)
    return SimpleNamespace(test=data_lib.Split(data.test.x[:N_EXAMPLES], data.test.y[:N_EXAMPLES]),
                           train=SimpleNamespace(x=data.train.x[:N_EXAMPLES]))


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


# ----------------------------------------------------------------------------------------------
# fixtures.derived_cache


def test_fingerprint_follows_the_final_weights_not_the_run_object():
    models = random_models(2)
    run = runs_of(models)[0]
    copy = dataclasses.replace(run, weights={e: {k: v.clone() for k, v in s.items()} for e, s in run.weights.items()})
    assert run_fingerprint(copy) == run_fingerprint(run)
    assert run_fingerprint(runs_of(models[1:])[0]) != run_fingerprint(run)


def test_across_runs_params_names_every_run_and_refuses_to_overwrite():
    runs = runs_of(random_models(2))
    params = across_runs_params(runs, {"points": 6})
    assert params["points"] == 6
    assert params["runs"] == [{"seed": r.seed, "fingerprint": run_fingerprint(r)} for r in runs]
    with pytest.raises(ValueError, match="must not hold the key 'runs'"):
        across_runs_params(runs, {"runs": 1})
    with pytest.raises(ValueError, match="runs is empty"):
        across_runs_params([], {})


def test_a_result_of_a_changed_run_is_computed_again(store):
    # A pair is filed under its first run: a retrained second run must not find the old pair.
    runs = runs_of(random_models(3))
    calls = []

    def compute():
        calls.append(1)
        return {"value": torch.tensor(float(len(calls)), dtype=torch.float64)}

    first = cached_across_runs(store, SETTING, runs[:2], "pair", {}, compute)
    again = cached_across_runs(store, SETTING, runs[:2], "pair", {}, compute)
    retrained = dataclasses.replace(runs[2], seed=runs[1].seed)
    other = cached_across_runs(store, SETTING, [runs[0], retrained], "pair", {}, compute)
    assert (first["value"].item(), again["value"].item(), other["value"].item()) == (1.0, 1.0, 2.0)


# ----------------------------------------------------------------------------------------------
# The function-space figures' t-SNE


def test_a_figures_embedding_is_computed_once_and_read_back_bitwise(store, monkeypatch):
    runs = [dataclasses.replace(r, eval_probs=torch.softmax(torch.randn(4, 6, N_CLASSES, generator=g), -1))
            for r, g in zip(runs_of(random_models(3)), (torch.Generator().manual_seed(s) for s in range(3)))]
    embed = figures.stored_tsne(store, SETTING, runs)
    first = figures.function_space_figure(runs, embed=embed)
    assert first == figures.function_space_figure(runs)  # the stored embedding is joint_tsne's

    monkeypatch.setattr(figures, "joint_tsne", never)
    assert figures.function_space_figure(runs, embed=embed) == first
    moved = [dataclasses.replace(runs[0], eval_probs=runs[0].eval_probs.flip(0)), *runs[1:]]
    with pytest.raises(AssertionError, match="computed again"):  # other points are another embedding
        figures.function_space_figure(moved, embed=figures.stored_tsne(store, SETTING, moved))


# ----------------------------------------------------------------------------------------------
# P3: pair statistics


def test_p3_pairs_are_computed_once_and_read_back_bitwise(store, digits, monkeypatch):
    models = random_models(3)
    runs = runs_of(models)
    computed = alignment.pair_statistics(models, digits.test, digits.train.x, dry_run=True)
    cached = alignment.stored_pairs(store, SETTING, runs)
    first = alignment.pair_statistics(models, digits.test, digits.train.x, dry_run=True, cached=cached)
    assert_bitwise_equal(first, computed)
    assert first["raw_loss"].shape == (3, alignment.DRY_RUN_POINTS)

    monkeypatch.setattr(alignment, "pair_statistic", never)
    second = alignment.pair_statistics(models, digits.test, digits.train.x, dry_run=True, cached=cached)
    assert_bitwise_equal(second, computed)
    with pytest.raises(AssertionError, match="computed again"):  # another point count is another file
        alignment.pair_statistics(models, digits.test, digits.train.x, dry_run=False, cached=cached)


def test_p3_a_look_with_more_seeds_computes_only_the_new_pairs(store, digits, monkeypatch):
    models = random_models(4)
    runs = runs_of(models)
    alignment.pair_statistics(models[:3], digits.test, digits.train.x, dry_run=True,
                              cached=alignment.stored_pairs(store, SETTING, runs[:3]))
    pairs = []
    compute = alignment.pair_statistic

    def counted(model_i, model_j, *args):
        pairs.append((models.index(model_i), models.index(model_j)))
        return compute(model_i, model_j, *args)

    monkeypatch.setattr(alignment, "pair_statistic", counted)
    four = alignment.pair_statistics(models, digits.test, digits.train.x, dry_run=True,
                                     cached=alignment.stored_pairs(store, SETTING, runs))
    assert pairs == [(0, 3), (1, 3), (2, 3)]
    assert_bitwise_equal(four, alignment.pair_statistics(models, digits.test, digits.train.x, dry_run=True))


def test_p3_copy_pairs_are_filed_under_the_one_run(store, digits, monkeypatch):
    models = random_models(3)
    run = runs_of(models)[0]
    cached = alignment.stored_copy_pairs(store, SETTING, run, permutation_seed=0)
    first = alignment.pair_statistics(models, digits.test, digits.train.x, cached=cached)
    monkeypatch.setattr(alignment, "pair_statistic", never)
    assert_bitwise_equal(alignment.pair_statistics(models, digits.test, digits.train.x, cached=cached), first)
    with pytest.raises(AssertionError, match="computed again"):  # other permutations are other pairs
        alignment.pair_statistics(models, digits.test, digits.train.x,
                                  cached=alignment.stored_copy_pairs(store, SETTING, run, permutation_seed=1))


# ----------------------------------------------------------------------------------------------
# A3: per-seed calibration


N_LOGITS = 200


def calibration_runs() -> list[Run]:
    """Runs whose logits point at the label 80% of the time, scaled 8x (overconfident: a twin
    exists) or 0.05x (underconfident: ECE above the error rate, no twin)."""
    gen = torch.Generator().manual_seed(0)
    runs = []
    for seed, scale in enumerate((8.0, 6.0, 0.05)):
        labels = torch.randint(0, N_CLASSES, (N_LOGITS,), generator=gen)
        guess = torch.where(torch.rand(N_LOGITS, generator=gen) < 0.8, labels,
                            torch.randint(0, N_CLASSES, (N_LOGITS,), generator=gen))
        logits = scale * (torch.nn.functional.one_hot(guess, N_CLASSES) + 0.3 * torch.randn(N_LOGITS, N_CLASSES,
                                                                                             generator=gen))
        runs.append(make_run(seed, {"w": torch.full((1,), float(seed))}, logits.float(), labels))
    return runs


def test_a3_calibrations_are_computed_once_and_read_back_bitwise(store, monkeypatch):
    runs = calibration_runs()
    computed = variability.calibrations(runs)
    assert ["odd_output" in c for c in computed] == [True, True, False]  # both kinds are stored
    first = variability.calibrations(runs, store, SETTING)
    for got, want in zip(first, computed, strict=True):
        assert_bitwise_equal(got, want)

    monkeypatch.setattr(variability, "mirror_temperature", never)
    monkeypatch.setattr(variability, "expected_calibration_error", never)
    second = variability.calibrations(runs, store, SETTING)
    for got, want in zip(second, computed, strict=True):
        assert_bitwise_equal(got, want)
    twins, temps, odd, odd_ece = variability.odd_models(second, N_LOGITS)
    assert twins.tolist() == [0, 1] and odd.shape == (2, N_LOGITS)
    assert np.array_equal(temps, [c["temperature"].item() for c in computed[:2]])


def test_a3_calibration_holds_the_mirror_temperature_and_its_odd_model():
    over, _, under = calibration_runs()
    calibration = variability.seed_calibration(over.final_logits, over.eval_labels)
    t = variability.mirror_temperature(over.final_logits, over.eval_labels)
    assert calibration["temperature"].item() == t and t > 1  # overconfident: its twin is hotter
    assert torch.equal(calibration["odd_output"], variability.scalar_output(over.final_logits.double() / t))
    without = variability.seed_calibration(under.final_logits, under.eval_labels)
    assert math.isnan(without["temperature"].item()) and "odd_output" not in without
