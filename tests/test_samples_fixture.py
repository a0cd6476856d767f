"""Tests of fixtures.samples: sample counts per tier, sample streams, and the ``sample_predictions`` factory.

The factory runs in one throw-away pytest session (as in tests/test_fixtures.py) on the digits-mlp
setting with 2 seeds and 2 samples per sampler: training and sampling take about a second there.
"""

import shlex
import tomllib
from pathlib import Path

import pytest
import torch

from fixtures.samples import n_samples, sample_generator
from harness.subspace import ENSEMBLE_SAMPLES, PLANE_SAMPLES
from harness import settings
from harness.stats import MIN_SEEDS
from harness.subspace import SAMPLERS
from harness.training import Run

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]
INI = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
SMOKE = "digits-mlp"
GPU = settings.names("gpu")[0]


def fake_run(seed: int) -> Run:
    """A run with only the field sample_generator reads, its seed."""
    return Run(setting_key="fake", seed=seed, init_seed=seed, data_seed=seed, weights={}, eval_probs=torch.zeros(1),
               eval_labels=torch.zeros(1), final_logits=torch.zeros(1, 2), window=torch.zeros(0, 1), train_loss=torch.zeros(1), train_acc=torch.zeros(1))


def draw(sampler: str = "random", scale: float = 0.2, sample_seed: int = 0) -> dict:
    return {"sampler": sampler, "scales": {"random": scale}, "n": 8, "sample_seed": sample_seed}


def draws(run: Run, which: dict) -> torch.Tensor:
    return torch.randn(8, generator=sample_generator(run, which))


# ----------------------------------------------------------------------------------------------
# Pure parts


def test_sample_counts_cover_every_tier():
    assert set(ENSEMBLE_SAMPLES) == set(PLANE_SAMPLES) == set(settings.TIERS)


@pytest.mark.parametrize(("setting", "ensemble", "plane"), [(SMOKE, 8, 8), (GPU, 30, 50)])
def test_n_samples_follows_the_settings_tier(setting, ensemble, plane):
    assert (n_samples(setting, ENSEMBLE_SAMPLES), n_samples(setting, PLANE_SAMPLES)) == (ensemble, plane)


@pytest.mark.parametrize("setting", settings.names())
def test_n_samples_of_every_setting(setting):
    tier = settings.get(setting).tier
    assert n_samples(setting, ENSEMBLE_SAMPLES) == ENSEMBLE_SAMPLES[tier]
    assert n_samples(setting, PLANE_SAMPLES) == PLANE_SAMPLES[tier]


def test_n_samples_rejects_an_unknown_setting():
    with pytest.raises(KeyError, match="unknown setting 'nope'"):
        n_samples("nope", ENSEMBLE_SAMPLES)


def test_sample_generator_is_deterministic():
    assert torch.equal(draws(fake_run(3), draw()), draws(fake_run(3), draw()))
    assert sample_generator(fake_run(3), draw()).initial_seed() == sample_generator(fake_run(3), draw()).initial_seed()


# Two scales or two samplers of one run must not share their noise (pooled draws would be dependent).
DRAWS = [draw(), draw(sample_seed=1), draw(scale=2.0), draw(sampler="dropout")]


def test_sample_generator_streams_differ_per_run_sampler_scale_and_sample_seed():
    streams = [draws(fake_run(seed), which) for seed in range(4) for which in DRAWS]
    seeds = {sample_generator(fake_run(seed), which).initial_seed() for seed in range(4) for which in DRAWS}
    assert len(seeds) == len(streams)
    for i, a in enumerate(streams):
        for b in streams[i + 1:]:
            assert not torch.equal(a, b)


# ----------------------------------------------------------------------------------------------
# The factory, in a pytest session

SESSION_TESTS = '''
import pytest
import torch

from harness import subspace

SETTING = "digits-mlp"
FIRST = {}


def test_first_call_computes_every_sampler(trained_runs, sample_predictions):
    runs = trained_runs(SETTING)
    assert [r.seed for r in runs] == [0, 1, 2, 3]
    out = sample_predictions(SETTING, runs, subspace.ENSEMBLE_SCALES, 2)
    assert tuple(out) == subspace.SAMPLERS
    n_test = runs[0].eval_labels.shape[0]
    for sampler, per_run in out.items():
        assert len(per_run) == 4, sampler
        for probs in per_run:
            assert probs.shape == (2, n_test, 10) and probs.dtype == torch.float32, sampler
            torch.testing.assert_close(probs.sum(-1), torch.ones(2, n_test), rtol=0, atol=1e-5)
        assert not torch.equal(per_run[0], per_run[1]), sampler  # samples around different runs
        assert not torch.equal(per_run[0][0], per_run[0][1]), sampler  # two distinct samples
    FIRST.update(out)


def test_second_call_is_served_from_the_store(trained_runs, sample_predictions, monkeypatch):
    def no_sampling(*args, **kwargs):
        raise AssertionError("sampled again instead of reading the store")

    monkeypatch.setattr("fixtures.samples.sample", no_sampling)
    out = sample_predictions(SETTING, trained_runs(SETTING), subspace.ENSEMBLE_SCALES, 2)
    assert FIRST and list(out) == list(FIRST)
    for sampler in FIRST:
        for got, want in zip(out[sampler], FIRST[sampler], strict=True):
            assert torch.equal(got, want), sampler
    with pytest.raises(AssertionError, match="sampled again"):  # another sample seed is another draw
        sample_predictions(SETTING, trained_runs(SETTING), subspace.ENSEMBLE_SCALES, 2, sample_seed=1)
'''


@pytest.fixture
def session(pytester, tmp_path, monkeypatch):
    """A pytest project using the harness's plugins and the repository's own ini options (see test_fixtures.py)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest((ROOT / "conftest.py").read_text())
    markers = "\n    ".join(INI["markers"])
    pytester.makeini(f"[pytest]\naddopts = {shlex.join(INI['addopts'])}\nmarkers =\n    {markers}\n")
    quiet = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:xdist")
    return lambda *args: pytester.runpytest_subprocess(*quiet, f"--runs-dir={tmp_path / 'runs'}", *args)


@pytest.mark.integration
def test_sample_predictions_computes_once_and_stores_the_samples(session, pytester, tmp_path):
    pytester.makepyfile(test_samples=SESSION_TESTS)
    result = session("--seeds", str(MIN_SEEDS), "--device", "cpu")
    result.assert_outcomes(passed=2)

    key = settings.get(SMOKE).cache_key()
    for seed in range(MIN_SEEDS):
        folder = tmp_path / "runs" / key / "derived" / f"seed={seed}"
        names = sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))
        assert [name.rsplit("-", 1)[0] for name in names] == sorted(f"samples-{s}" for s in SAMPLERS), names
        assert all(name.endswith(".safetensors") for name in names)
        for sampler in SAMPLERS:
            assert len(list(folder.glob(f"samples-{sampler}-*.safetensors"))) == 1


SHIFTED_TESTS = '''
import torch

from harness import data, settings
from harness.training import model_at, predict_proba

SETTING = "digits-mlp"
FIRST = {}


def test_shifted_predictions_of_every_model_kind(trained_runs, shifted_predictions):
    runs = trained_runs(SETTING)
    out = shifted_predictions(SETTING, runs, "gaussian_noise", 3)
    spec = settings.get(SETTING)
    shifted = data.shifted_test(spec.dataset, "gaussian_noise", 3)
    n_test, window = len(shifted.y), len(spec.recipe.window_epochs)
    assert sorted(out) == ["final", "late", "subspace"] and [len(v) for v in out.values()] == [4, 4, 4]
    # X1 compares groups of L = window members: the shifted set predicts the first L samples only
    assert out["late"][0].shape == out["subspace"][0].shape == (window, n_test, 10)
    # the final model, and the last late checkpoint, are the run's final weights on the shifted set
    want = predict_proba(model_at(spec, runs[0], spec.recipe.epochs), shifted.x)
    torch.testing.assert_close(out["final"][0], want, rtol=0, atol=1e-6)
    assert torch.equal(out["late"][0][-1], out["final"][0])
    assert not torch.equal(out["final"][0], runs[0].eval_probs[-1])  # not the clean test set
    FIRST.update(out)


def test_second_call_is_served_from_the_store(trained_runs, shifted_predictions, monkeypatch):
    def no_prediction(*args, **kwargs):
        raise AssertionError("predicted again instead of reading the store")

    monkeypatch.setattr("fixtures.samples.predict_states", no_prediction)
    out = shifted_predictions(SETTING, trained_runs(SETTING), "gaussian_noise", 3)
    for key in FIRST:
        for got, want in zip(out[key], FIRST[key], strict=True):
            assert torch.equal(got, want), key
'''


@pytest.mark.integration
def test_shifted_predictions_computes_once_per_corruption_and_severity(session, pytester, tmp_path):
    pytester.makepyfile(test_shifted=SHIFTED_TESTS)
    result = session("--seeds", str(MIN_SEEDS), "--device", "cpu")
    result.assert_outcomes(passed=2)
    folder = tmp_path / "runs" / settings.get(SMOKE).cache_key() / "derived" / "seed=0"
    assert len(list(folder.glob("shifted-gaussian_noise-3-*.safetensors"))) == 1
