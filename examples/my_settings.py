"""Registers the example setting: ``pytest claims/ -m smoke --settings-module examples.my_settings``.

A settings module is any importable module that calls :func:`harness.settings.register`; the claim
tests then parametrise over its settings by tier (smoke here).
"""

from harness.settings import DatasetSpec, ModelSpec, Recipe, Setting, Window, register

MY_SETTING = register(Setting(
    name="my-digits-rescnn",
    tier="smoke",
    # A loader names a function (or a folder of train.npz/test.npz); the name is your label.
    dataset=DatasetSpec("digits-by-writer", loader="examples.my_data:digits_by_order",
                        loader_kwargs={"n_test": 600}, n_val=200),
    # A factory names a function; kwargs are passed to it and are part of the cache key.
    model=ModelSpec("residual-cnn", factory="examples.my_models:residual_cnn", kwargs={"width": 16}),
    # The smoke recipe's shape: Adam 1.6e-3 halved every 4 epochs, the window the last phase.
    recipe=Recipe(epochs=16, batch_size=64, lr_halving_every=4, window=Window(epochs=4, per_epoch=3)),
    n_seeds=5,
    max_seeds=10,
    description="digits split by writing order, a residual CNN with BatchNorm and dropout, 16 epochs",
))
