"""User settings: registration, factories, loaders (function or .npz folder), and their errors."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import torch

from harness import data as data_lib
from harness import plugins, settings
from harness.models import build
from harness.settings import DatasetSpec, ModelSpec, Recipe, Setting, Window
from harness.store import RunStore

# A module of factories and loaders, written per test into tmp_path and imported as `user_plugins`.
USER_MODULE = textwrap.dedent('''
    import numpy as np
    import torch
    from torch import nn

    def linear(input_shape, num_classes, hidden=8):
        return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), hidden), nn.ReLU(),
                             nn.Linear(hidden, num_classes))

    def not_a_module(input_shape, num_classes):
        return "a string"

    def wrong_output(input_shape, num_classes):
        return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), num_classes + 1))

    def arrays(n_train=60, n_test=20, classes=3, nan=False, bad_label=None, shape=(1, 4, 4), flat_y=True):
        g = np.random.default_rng(0)
        x = g.normal(size=(n_train + n_test, *shape)).astype(np.float32)
        y = np.arange(n_train + n_test) % classes
        if nan:
            x[3, 0, 0, 0] = np.nan
        if bad_label is not None:
            y[-1] = bad_label
        if not flat_y:
            y = y[:, None]
        return x[:n_train], y[:n_train], x[n_train:], y[n_train:]

    def one_class():
        x = np.zeros((10, 1, 4, 4), np.float32)
        return x, np.zeros(10, np.int64), x, np.zeros(10, np.int64)

    def three_things():
        return 1, 2, 3
''')

RECIPE = Recipe(epochs=2, batch_size=5, lr_halving_every=None, window=Window(epochs=1, per_epoch=10))


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_plugins.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(settings, "_REGISTRY", dict(settings._REGISTRY))  # registrations stay in the test
    yield "user_plugins"
    sys.modules.pop("user_plugins", None)
    plugins.load_arrays.cache_clear()
    plugins.fingerprint.cache_clear()
    plugins.source_digest.cache_clear()


def user_setting(name="mine", loader="user_plugins:arrays", loader_kwargs=None, factory="user_plugins:linear",
                 kwargs=None) -> Setting:
    return Setting(name, "smoke", DatasetSpec("my-data", loader=loader, loader_kwargs=loader_kwargs or {}, n_val=10),
                   ModelSpec("my-model", factory=factory, kwargs=kwargs or {}), RECIPE)


def test_a_user_setting_trains_and_its_key_covers_factory_loader_arguments_and_data(user_module, tmp_path):
    setting = settings.register(user_setting())
    assert settings.get("mine") is setting and "mine" in settings.names("smoke")
    data = data_lib.load(setting.dataset)
    assert (len(data.train.y), len(data.val.y), len(data.test.y)) == (50, 10, 20)  # validation: the last n_val
    assert torch.allclose(data.train.x.mean(dim=(0, 2, 3)), torch.zeros(1), atol=1e-5)  # standardised
    assert setting.dataset.input_shape == (1, 4, 4) and setting.dataset.num_classes == 3
    run = RunStore(tmp_path / "runs").get_or_train(setting, [0], device="cpu")[0]
    assert run.eval_probs.shape == (3, 20, 3)
    keys = {setting.cache_key(),
            user_setting(loader_kwargs={"n_test": 21}).cache_key(),
            user_setting(kwargs={"hidden": 9}).cache_key(),
            user_setting(factory="user_plugins:wrong_output").cache_key()}
    assert len(keys) == 4
    assert user_setting(name="same-spec").cache_key() == setting.cache_key()  # the name is not in the key


def test_changed_data_in_an_npz_folder_changes_the_key(user_module, tmp_path):
    folder = tmp_path / "arrays"
    folder.mkdir()
    x, y, tx, ty = __import__("user_plugins").arrays()
    np.savez(folder / "train.npz", x=x, y=y)
    np.savez(folder / "test.npz", x=tx, y=ty)
    setting = user_setting(loader=str(folder))
    assert data_lib.load(setting.dataset).test.x.shape == (20, 1, 4, 4)
    before = setting.cache_key()
    np.savez(folder / "test.npz", x=tx + 1, y=ty)
    plugins.load_arrays.cache_clear()
    plugins.fingerprint.cache_clear()
    assert setting.cache_key() != before


def test_a_changed_factory_module_changes_the_key(user_module, tmp_path):
    before = user_setting().cache_key()
    (tmp_path / "user_plugins.py").write_text(USER_MODULE + "\n# an edit\n")
    sys.modules.pop("user_plugins")
    plugins.source_digest.cache_clear()
    assert user_setting().cache_key() != before


@pytest.mark.parametrize("change, message", [
    (dict(factory="no_such_module:linear"), r"factory='no_such_module:linear' does not import: ModuleNotFoundError"),
    (dict(factory="user_plugins:missing"), r"module 'user_plugins' has no function 'missing'"),
    (dict(loader="user_plugins:arrays", loader_kwargs={"nan": True}), r"train_x holds 1 NaN or infinite values"),
    (dict(loader_kwargs={"bad_label": -1}), r"test_y holds the label -1: expected labels 0, 1, \.\.\., C-1"),
    (dict(loader_kwargs={"bad_label": 7}), r"test_y holds the label 7, but train_y's labels are 0\.\.2"),
    (dict(loader_kwargs={"flat_y": False}), r"train_y has shape \(60, 1\): expected \(60,\)"),
    (dict(loader_kwargs={"shape": (16,)}), r"train_x has shape \(60, 16\): expected images \(N, C, H, W\)"),
    (dict(loader="user_plugins:one_class"), r"train_y holds 1 class: expected at least two"),
    (dict(loader="user_plugins:three_things"), r"returned a tuple: expected \(train_x, train_y, test_x, test_y\)"),
    (dict(loader="no/such/folder"), r"a folder holding train.npz and test.npz; missing"),
])
def test_a_bad_loader_or_factory_names_the_setting_and_stores_nothing(user_module, tmp_path, change, message):
    setting = user_setting(**change)
    store = RunStore(tmp_path / "runs")
    with pytest.raises(ValueError, match=r"setting 'mine': .*" + message):
        store.get_or_train(setting, [0], device="cpu")
    assert not any((tmp_path / "runs").rglob("*.pt"))


@pytest.mark.parametrize("factory, message", [
    ("user_plugins:not_a_module", r"returned a str: expected a torch.nn.Module"),
    ("user_plugins:wrong_output", r"maps a batch of shape \(2, 1, 4, 4\) to \(2, 4\): expected logits of shape "
                                  r"\(2, 3\)"),
])
def test_a_factory_whose_model_is_wrong_names_the_setting_and_stores_nothing(user_module, tmp_path, factory, message):
    store = RunStore(tmp_path / "runs")
    with pytest.raises(ValueError, match=r"setting 'mine': .*" + message):
        store.get_or_train(user_setting(factory=factory), [0], device="cpu")
    assert not any((tmp_path / "runs").rglob("*.pt"))


def test_a_name_that_a_registered_setting_holds_is_refused(user_module):
    clash = settings.get("digits-mlp").replace(recipe=RECIPE)
    with pytest.raises(ValueError, match=r"setting 'digits-mlp' is already registered \(smoke tier, .*choose another"):
        settings.register(clash)
    assert settings.register(settings.get("digits-mlp")) is settings.get("digits-mlp")  # the same one: no change
    with pytest.raises(ValueError, match=r"register: expected a harness.settings.Setting, got a str"):
        settings.register("digits-mlp")


@pytest.mark.parametrize("make, message", [
    (lambda: DatasetSpec("digits", loader="m:f"), r"DatasetSpec.name='digits' is invalid: expected a label of your own"),
    (lambda: DatasetSpec("mine", 8, loader="m:f"), r"DatasetSpec.image_size=8 is invalid: expected None with a loader"),
    (lambda: DatasetSpec("digits", 8, loader_kwargs={"a": 1}), r"loader_kwargs=\{'a': 1\} is invalid: expected \{\} "
                                                               r"without a loader"),
    (lambda: ModelSpec("mlp", factory="m:f"), r"ModelSpec.name='mlp' is invalid: expected a label of your own"),
    (lambda: ModelSpec("mine", (8,), factory="m:f"), r"ModelSpec.widths=\(8,\) is invalid: expected \(\) with a factory"),
    (lambda: ModelSpec("mine", factory="m:f", kwargs={"a": [1]}), r"ModelSpec.kwargs=\{'a': \[1\]\} is invalid"),
])
def test_plug_in_specs_are_validated(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_factory_model_is_built_and_checked_and_symmetry_knows_it_not(user_module):
    from harness.symmetry import has_permutation_spec

    model = build(ModelSpec("mine", factory="user_plugins:linear", kwargs={"hidden": 5}), (1, 4, 4), 3)
    assert model.training and model[1].out_features == 5
    assert not has_permutation_spec(model)
    assert has_permutation_spec(build(settings.get("digits-mlp").model, (1, 8, 8), 10))


def test_a_factory_model_with_batchnorm_and_dropout_is_sampled_in_eval_mode_with_fresh_statistics(tmp_path,
                                                                                                   monkeypatch):
    monkeypatch.setattr(settings, "_REGISTRY", dict(settings._REGISTRY))  # the example's registration stays here
    from examples import my_settings
    from harness.subspace import ENSEMBLE_SCALES, predict_states, sample

    setting = my_settings.MY_SETTING.replace(recipe=Recipe(epochs=1, batch_size=64, lr_halving_every=None,
                                                    window=Window(epochs=1, per_epoch=10)))
    run = RunStore(tmp_path / "runs").get_or_train(setting, [0], device="cpu")[0]
    data = data_lib.load(setting.dataset)
    thetas = sample("random", run, 2, ENSEMBLE_SCALES, torch.Generator().manual_seed(0))
    first = predict_states(setting, run, thetas, data.test.x, train_x=data.train.x)
    assert torch.equal(first, predict_states(setting, run, thetas, data.test.x, train_x=data.train.x))  # no dropout
    stored = predict_states(setting, run, [run.weights[1]], data.test.x, train_x=data.train.x[:64])
    assert not torch.allclose(stored[0], run.eval_probs[-1])  # statistics recomputed, not the stored ones
    with pytest.raises(ValueError, match="has BatchNorm layers: pass train_x"):
        predict_states(setting, run, thetas, data.test.x)
