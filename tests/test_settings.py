import dataclasses

import pytest
import torch

from harness import settings
from harness.settings import MIN_WINDOW_SNAPSHOTS, DatasetSpec, ModelSpec, Recipe, Setting, Window


def test_registry_has_the_tiers_the_issue_names():
    assert settings.names("smoke") == ("digits-mlp", "synthetic16-cnn", "synthetic16-binary-mlp")
    assert settings.names("slow") == ("synthetic32-smallcnn-10ep",)
    assert set(settings.names("gpu")) == {
        f"{d}-{m}" for d in ("cifar10", "synthetic32") for m in ("smallcnn", "mediumcnn", "resnet20")} | {
        "cifar10-catdog-smallcnn"}
    # The two-class settings serve the seed-variability claims only.
    for name in ("synthetic16-binary-mlp", "cifar10-catdog-smallcnn"):
        assert settings.get(name).dataset.num_classes == 2
        assert settings.get(name).serves("A1") and not settings.get(name).serves("T1")
        assert not settings.get(name).serves(None)
    assert settings.get("digits-mlp").serves("A1") and settings.get("digits-mlp").serves(None)
    assert all(settings.get(n).tier == "gpu" for n in settings.names("gpu"))


def test_unknown_setting_lists_known_ones():
    with pytest.raises(KeyError, match=r"unknown setting 'nope'; known settings: .*digits-mlp.*synthetic16-cnn"):
        settings.get("nope")


def test_unknown_tier_is_rejected():
    with pytest.raises(ValueError, match=r"names.tier='fast' is invalid: expected one of"):
        settings.names("fast")


@pytest.mark.parametrize("build, message", [
    (lambda: DatasetSpec("mnist", 28), r"DatasetSpec.name='mnist' is invalid: expected one of \('digits'"),
    (lambda: DatasetSpec("synthetic", 24, n_train=10, n_test=5), r"DatasetSpec.image_size=24 .* one of \(16, 32\)"),
    (lambda: DatasetSpec("synthetic", 16, n_train=100, n_test=10, n_val=200), r"DatasetSpec.n_train=100 .* >= 201"),
    (lambda: DatasetSpec("digits", 8, n_train=5), r"DatasetSpec.n_train=5 .* None for the fixed-size 'digits'"),
    (lambda: ModelSpec("vgg", (8,)), r"ModelSpec.name='vgg' is invalid"),
    (lambda: ModelSpec("mlp", ()), r"ModelSpec.widths=\(\) .* non-empty tuple of positive ints"),
    (lambda: ModelSpec("mlp", [64]), r"ModelSpec.widths=\[64\] .* tuple"),
    (lambda: ModelSpec("resnet20", (16, 32)), r"3 stage widths for resnet20"),
    (lambda: ModelSpec("resnet20", (16, 32, 64), dropout=0.1), r"ModelSpec.dropout=0.1 .* 0 for resnet20"),
    (lambda: ModelSpec("mlp", (8,), dropout=1.0), r"ModelSpec.dropout=1.0 .* \[0, 1\)"),
    (lambda: ModelSpec("mlp", (8,), norm="batch"), r"ModelSpec.norm='batch' .* \(only resnet20"),
    (lambda: ModelSpec("resnet20", (16, 32, 64), norm="weird"), r"ModelSpec.norm='weird'"),
    (lambda: ModelSpec("mlp", (8,), init="he"), r"ModelSpec.init='he'"),
    (lambda: Recipe(epochs=0), r"Recipe.epochs=0 is invalid: expected an int >= 1"),
    (lambda: Recipe(epochs=3, lr=2.0), r"Recipe.lr=2.0 .* \(0, 1\)"),
    (lambda: Recipe(epochs=3, lr_halving_every=0), r"Recipe.lr_halving_every=0"),
    (lambda: Recipe(epochs=3, weight_epochs=(0, 5)), r"Recipe.weight_epochs=\(0, 5\) .* epochs in 0..3"),
    (lambda: Recipe(epochs=3, weight_epochs=(2, 1)), r"sorted tuple of distinct epochs"),
    (lambda: Window(epochs=2, per_epoch=4), r"Window.epochs x per_epoch=8 is invalid: expected at least 10 snapshots"),
    (lambda: Window(epochs=0), r"Window.epochs=0 is invalid"),
    (lambda: Recipe(epochs=8, window=Window(epochs=10)), r"Recipe.window=.* at most the recipe's 8 epochs"),
    (lambda: Recipe(epochs=16, lr_halving_every=4, window=Window(epochs=5, per_epoch=2)),
     r"epochs after the last halving \(epoch 16 trains at lr x 0.5\^3, epoch 12 at lr x 0.5\^2\)"),
    (lambda: Recipe(epochs=12, window=(4, 3)), r"Recipe.window=\(4, 3\) is invalid: expected a Window or None"),
    (lambda: DatasetSpec("digits", 8, classes=(3,)), r"DatasetSpec.classes=\(3,\) .* at least two distinct"),
    (lambda: DatasetSpec("digits", 8, classes=(3, 3)), r"DatasetSpec.classes=\(3, 3\) .* in 0..9"),
    (lambda: DatasetSpec("digits", 8, classes=(3, 10)), r"DatasetSpec.classes=\(3, 10\) .* in 0..9"),
    (lambda: DatasetSpec("digits", 8, classes=[3, 5]), r"DatasetSpec.classes=\[3, 5\]"),
    (lambda: settings.get("digits-mlp").replace(claims=()), r"Setting.claims=\(\) .* non-empty tuple of claim ids"),
    (lambda: settings.get("digits-mlp").replace(tier="nightly"), r"Setting.tier='nightly'"),
    (lambda: settings.get("digits-mlp").replace(n_seeds=1), r"Setting.n_seeds=1 is invalid: expected an int >= 4"),
])
def test_invalid_fields_name_field_value_and_allowed(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_settings_are_frozen():
    s = settings.get("digits-mlp")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.recipe.epochs = 3


def test_saved_epochs():
    assert Recipe(epochs=3).saved_epochs == (0, 1, 2, 3)
    assert Recipe(epochs=40, weight_epochs=(0, 30, 40)).saved_epochs == (0, 30, 40)


def test_window_epochs_and_learning_rates():
    recipe = Recipe(epochs=40, window=Window(epochs=10))  # the official recipe and window
    assert recipe.window_epochs == tuple(range(31, 41))
    assert [recipe.lr_at(e) for e in (1, 10, 11, 31, 40)] == [1.6e-3, 1.6e-3, 8e-4, 2e-4, 2e-4]
    assert Recipe(epochs=12, lr_halving_every=None, window=Window(epochs=12)).window_epochs == tuple(range(1, 13))
    assert Recipe(epochs=3).window_epochs == ()


def test_window_steps_spread_through_the_epoch_and_end_with_it():
    assert Window(epochs=4, per_epoch=3).steps(20) == (7, 14, 20)
    assert Window(epochs=10).steps(391) == (391,)
    assert Window(epochs=1, per_epoch=10).steps(10) == tuple(range(1, 11))
    with pytest.raises(ValueError, match=r"Window.per_epoch=12 is invalid: expected at most the 5 optimisation steps"):
        Window(epochs=1, per_epoch=12).steps(5)


@pytest.mark.parametrize("name", settings.names())
def test_every_registered_recipe_names_a_window_after_its_last_halving(name):
    recipe = settings.get(name).recipe
    assert recipe.window is not None and recipe.window.snapshots >= MIN_WINDOW_SNAPSHOTS
    assert len({recipe.lr_at(e) for e in recipe.window_epochs}) == 1
    if recipe.lr_halving_every is None:  # the official SmallCNN recipe: a constant rate throughout
        assert recipe.window_epochs[0] > recipe.epochs // 2
    else:
        assert recipe.lr_at(recipe.window_epochs[0]) == recipe.lr_at(recipe.epochs) < recipe.lr  # after a halving


def test_cache_key_is_stable_across_processes_and_versions():
    # A golden value: if this changes, every cached run is orphaned. Change it only together with
    # STORE_VERSION or a deliberate change of what a run means.
    s = Setting("x", "smoke", DatasetSpec("digits", 8, n_val=200), ModelSpec("mlp", (64, 64)), Recipe(epochs=16))
    assert s.cache_key() == "6e6444963ac7b8d9"


def test_cache_key_ignores_name_tier_seeds_and_tracks_the_spec():
    s = settings.get("digits-mlp")
    assert s.replace(name="other", tier="slow", n_seeds=9, description="x").cache_key() == s.cache_key()
    assert s.replace(recipe=dataclasses.replace(s.recipe, lr=1e-3)).cache_key() != s.cache_key()
    assert s.replace(model=dataclasses.replace(s.model, init="torch")).cache_key() != s.cache_key()
    # A class selection changes the key; none keeps the key it had before DatasetSpec.classes existed.
    assert s.replace(dataset=dataclasses.replace(s.dataset, classes=(0, 1))).cache_key() != s.cache_key()
    assert "classes" not in s.spec()["dataset"]
    keys = {settings.get(n).cache_key() for n in settings.names()}
    assert len(keys) == len(settings.names())


@pytest.mark.parametrize("name", settings.names("gpu"))
def test_dry_run_copies_shrink_data_epochs_and_seeds_and_keep_the_architecture(name):
    full = settings.get(name)
    dry = settings.dry_run(full)
    assert dry.dry_run and dry.model == full.model and dry.dataset.name == full.dataset.name
    assert dry.dataset.classes == full.dataset.classes
    assert dry.recipe.epochs == settings.DRY_RUN_EPOCHS and dry.recipe.window_epochs == (dry.recipe.epochs,)
    assert dry.n_seeds == dry.max_seeds == settings.MIN_SEEDS
    assert dry.cache_key() != full.cache_key()  # its own store key
    # enough optimisation steps in an epoch for the window's snapshots
    n_fit = settings.DRY_RUN_DATA[0] - settings.DRY_RUN_VAL
    assert -(-n_fit // dry.recipe.batch_size) >= dry.recipe.window.per_epoch


def test_dry_run_mode_makes_get_return_the_copies():
    try:
        settings.set_dry_run(True)
        assert settings.get("cifar10-resnet20") == settings.dry_run(settings._REGISTRY["cifar10-resnet20"])
    finally:
        settings.set_dry_run(False)
    assert not settings.get("cifar10-resnet20").dry_run


def test_a_limit_keeps_the_first_images():
    from harness import data

    full = data.load(DatasetSpec("digits", 8, n_val=100))
    small = data.load(DatasetSpec("digits", 8, n_val=50, limit=(300, 80)))
    assert (len(small.train), len(small.val), len(small.test)) == (250, 50, 80)
    assert torch.equal(small.test.y, full.test.y[:80])
    with pytest.raises(ValueError, match=r"DatasetSpec.limit=\(40, 10\) is invalid"):
        DatasetSpec("digits", 8, n_val=50, limit=(40, 10))
