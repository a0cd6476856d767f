"""What a setting is made of: the data set, the model, the subspace window and the training recipe.

Frozen, validated dataclasses; :class:`harness.settings.Setting` combines them under a name. Each
names a built-in (``DATASETS``, ``MODELS``) or plugs in the user's own: a ``DatasetSpec`` with a
``loader`` and a ``ModelSpec`` with a ``factory`` (:mod:`harness.plugins`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.validation import check_int

DATASETS = ("digits", "synthetic", "cifar10", "cifar100")
MODELS = ("mlp", "small_cnn", "medium_cnn", "resnet20")
NORMS = ("batch", "group", "layer", "none")
INITS = ("glorot", "torch")
# The official code fits its Gaussians and weight average to 10 checkpoints (epochs 30-39 of 40);
# a window of fewer snapshots estimates a per-coordinate spread from too few points.
MIN_WINDOW_SNAPSHOTS = 10

# Classes per dataset; the synthetic generator is CIFAR-10-shaped.
NUM_CLASSES = {"digits": 10, "synthetic": 10, "cifar10": 10, "cifar100": 100}


def _fail(owner: str, name: str, value: object, allowed: str) -> None:
    raise ValueError(f"{owner}.{name}={value!r} is invalid: expected {allowed}")


def _check_choice(owner: str, name: str, value: object, choices: tuple) -> None:
    if value not in choices:
        _fail(owner, name, value, f"one of {choices}")


def _check_label(owner: str, value: object, builtins: tuple) -> None:
    """The name of a plug-in: a non-empty label that is not a built-in's name."""
    if not isinstance(value, str) or not value or value in builtins:
        _fail(owner, "name", value, f"a label of your own (not a built-in {builtins}) when it is plugged in")


def _as_kwargs(owner: str, name: str, value: object) -> tuple[tuple[str, object], ...]:
    """Keyword arguments of a plug-in as sorted (name, value) pairs: hashable, and part of the cache key."""
    items = value.items() if isinstance(value, dict) else value
    try:
        pairs = tuple(sorted((k, v) for k, v in items))
        hash(pairs)
    except (TypeError, ValueError):
        pairs = None
    if pairs is None or not all(isinstance(k, str) and isinstance(v, (str, int, float, bool, type(None), tuple))
                                for k, v in pairs):
        _fail(owner, name, value, "a dict of str to str, int, float, bool, None or tuple values")
    return pairs


@dataclass(frozen=True)
class DatasetSpec:
    """Which data, and how it is split.

    Parameters
    ----------
    name : {"digits", "synthetic", "cifar10", "cifar100"} or str
        A built-in data set, or with ``loader`` a label of your own.
    image_size : int or None
        Side of the square images. digits: 8; cifar: 32; synthetic: 16 or 32. None with
        ``loader`` (the loaded images say).
    n_train, n_test : int or None
        Synthetic only: examples generated for training (validation included) and test.
        None for the fixed-size real data sets.
        With ``classes``, the counts before the class selection.
    n_val : int
        Examples held out from the end of the (selected) training set for validation (official: 500).
    generator_seed : int
        Synthetic only: seed of the data *generator*, fixed per setting so every run sees the
        same data set. It is not the run's data-order seed.
    classes : tuple of int or None
        Keep only these classes (at least two, distinct), relabelled 0, 1, ... in this order: a
        two-class task as [Banerjee]'s. None keeps every class.
    limit : (int, int) or None
        Keep the first this many training (validation included) and test images, after the class
        selection (a dry run's data). None keeps them all.
    loader : str or None
        Your own data (:func:`harness.plugins.load_arrays`): ``"package.module:function"``
        returning ``(train_x, train_y, test_x, test_y)``, or a folder holding ``train.npz`` and
        ``test.npz`` with arrays ``x`` (N, C, H, W) and ``y`` (N,). Validation split, class
        selection, limit and standardisation then work as for the built-in data; the cache key
        holds a fingerprint of the loaded arrays.
    loader_kwargs : dict or tuple of (str, value) pairs
        Keyword arguments of a loader function (kept as sorted pairs).
    """

    name: str
    image_size: int | None = None
    n_train: int | None = None
    n_test: int | None = None
    n_val: int = 500
    generator_seed: int = 0
    classes: tuple[int, ...] | None = None
    limit: tuple[int, int] | None = None
    loader: str | None = None
    loader_kwargs: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "loader_kwargs", _as_kwargs("DatasetSpec", "loader_kwargs", self.loader_kwargs))
        if self.loader is not None:
            self._check_loader()
        else:
            _check_choice("DatasetSpec", "name", self.name, DATASETS)
            sizes = {"digits": (8,), "cifar10": (32,), "cifar100": (32,), "synthetic": (16, 32)}
            _check_choice("DatasetSpec", "image_size", self.image_size, sizes[self.name])
            if self.loader_kwargs:
                _fail("DatasetSpec", "loader_kwargs", dict(self.loader_kwargs), "{} without a loader")
        check_int("DatasetSpec.n_val", self.n_val, 0)
        check_int("DatasetSpec.generator_seed", self.generator_seed, 0)
        if self.name == "synthetic":
            check_int("DatasetSpec.n_train", self.n_train, self.n_val + 1)
            check_int("DatasetSpec.n_test", self.n_test, 1)
        else:
            for attr in ("n_train", "n_test"):
                if getattr(self, attr) is not None:
                    _fail("DatasetSpec", attr, getattr(self, attr), f"None for the fixed-size {self.name!r} data set")
        if self.classes is not None:
            total = NUM_CLASSES.get(self.name, 2**31)  # a loader's classes are checked when it loads
            if not (isinstance(self.classes, tuple) and len(self.classes) >= 2
                    and len(set(self.classes)) == len(self.classes)
                    and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < total for c in self.classes)):
                _fail("DatasetSpec", "classes", self.classes,
                      f"None or a tuple of at least two distinct class indices in 0..{total - 1}")

        if self.limit is not None and not (
                isinstance(self.limit, tuple) and len(self.limit) == 2
                and all(isinstance(n, int) and not isinstance(n, bool) for n in self.limit)
                and self.limit[0] > self.n_val and self.limit[1] >= 1):
            _fail("DatasetSpec", "limit", self.limit, f"None or (n_train > n_val={self.n_val}, n_test >= 1)")

    def _check_loader(self) -> None:
        _check_label("DatasetSpec", self.name, DATASETS)
        if not isinstance(self.loader, str) or not self.loader:
            _fail("DatasetSpec", "loader", self.loader, "'package.module:function' or a folder of train.npz and test.npz")
        for attr in ("image_size", "n_train", "n_test"):
            if getattr(self, attr) is not None:
                _fail("DatasetSpec", attr, getattr(self, attr), "None with a loader (the loaded data says)")
        if self.generator_seed:
            _fail("DatasetSpec", "generator_seed", self.generator_seed, "0 with a loader (it has no generator)")

    @property
    def num_classes(self) -> int:
        if self.classes is not None:
            return len(self.classes)
        if self.loader is not None:
            from harness.plugins import loaded_shape

            return loaded_shape(self)[1]
        return NUM_CLASSES[self.name]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one example."""
        if self.loader is not None:
            from harness.plugins import loaded_shape

            return loaded_shape(self)[0]
        return (1 if self.name == "digits" else 3, self.image_size, self.image_size)


@dataclass(frozen=True)
class ModelSpec:
    """Architecture.

    Parameters
    ----------
    name : {"mlp", "small_cnn", "medium_cnn", "resnet20"} or str
        A built-in architecture, or with ``factory`` a label of your own.
    widths : tuple of int
        Hidden units per layer (mlp), channels per conv (CNNs), or channels per stage (resnet20);
        () with a factory (its ``kwargs`` say).
    dropout : float
        Dropout after each conv (official CNNs: 0.1) or hidden layer; 0 disables it.
    norm : {"batch", "group", "layer", "none"}
        resnet20 normalisation. The CNNs and the MLP have none, as in the official code.
    init : {"glorot", "torch"}
        "glorot": Glorot-uniform weights and zero biases (the official Keras default);
        "torch": PyTorch's default initialisation (a factory's own, for a factory).
    factory : str or None
        Your own architecture: ``"package.module:function"`` called as
        ``function(input_shape, num_classes, **kwargs)`` that returns an ``nn.Module`` mapping
        (N, *input_shape) to logits (N, num_classes) (:func:`harness.plugins.build_model`). Its
        identity, its module's source and ``kwargs`` are part of the cache key.
    kwargs : dict or tuple of (str, value) pairs
        Keyword arguments of the factory (kept as sorted pairs).
    """

    name: str
    widths: tuple[int, ...] = ()
    dropout: float = 0.0
    norm: str = "none"
    init: str = "glorot"
    factory: str | None = None
    kwargs: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kwargs", _as_kwargs("ModelSpec", "kwargs", self.kwargs))
        _check_choice("ModelSpec", "init", self.init, INITS)
        if self.factory is not None:
            _check_label("ModelSpec", self.name, MODELS)
            if not isinstance(self.factory, str) or not self.factory:
                _fail("ModelSpec", "factory", self.factory, "'package.module:function'")
            for attr, unused in (("widths", ()), ("dropout", 0.0), ("norm", "none")):
                if getattr(self, attr) != unused:
                    _fail("ModelSpec", attr, getattr(self, attr), f"{unused!r} with a factory (pass its kwargs)")
            return
        if self.kwargs:
            _fail("ModelSpec", "kwargs", dict(self.kwargs), "{} without a factory")
        _check_choice("ModelSpec", "name", self.name, MODELS)
        if not isinstance(self.widths, tuple) or not self.widths or not all(
            isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in self.widths
        ):
            _fail("ModelSpec", "widths", self.widths, "a non-empty tuple of positive ints")
        if self.name == "resnet20" and len(self.widths) != 3:
            _fail("ModelSpec", "widths", self.widths, "3 stage widths for resnet20, e.g. (16, 32, 64)")
        if self.name in ("small_cnn", "medium_cnn") and len(self.widths) > 5:
            _fail("ModelSpec", "widths", self.widths, "at most 5 conv layers (each halves the image)")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            _fail("ModelSpec", "dropout", self.dropout, "a float in [0, 1)")
        if self.name == "resnet20" and self.dropout:
            _fail("ModelSpec", "dropout", self.dropout, "0 for resnet20 (it has no dropout layers)")
        _check_choice("ModelSpec", "norm", self.norm, NORMS)
        if self.name != "resnet20" and self.norm != "none":
            _fail("ModelSpec", "norm", self.norm, f"'none' for {self.name} (only resnet20 has normalisation)")


@dataclass(frozen=True)
class Window:
    """The subspace window: the snapshots a run's Gaussians and weight average are fitted to.

    The last ``epochs`` epochs of a recipe, all trained at one learning rate (after the recipe's
    last halving), with ``per_epoch`` snapshots evenly spaced through each epoch's optimisation
    steps, the last at the epoch's end. The official window is the checkpoints of (0-based) epochs
    30-39 of 40 at the last rate: ``Window(epochs=10)`` of a 40-epoch recipe halved every 10.
    Snapshots within an epoch stand in for epochs where a scale-down has few (SWAG collects its
    moments once per epoch or more often).

    Parameters
    ----------
    epochs : int
        Epochs at the end of the recipe that the window covers.
    per_epoch : int
        Snapshots per window epoch; at most the epoch's number of steps (checked when training).
    """

    epochs: int
    per_epoch: int = 1

    def __post_init__(self) -> None:
        check_int("Window.epochs", self.epochs, 1)
        check_int("Window.per_epoch", self.per_epoch, 1)
        if self.snapshots < MIN_WINDOW_SNAPSHOTS:
            _fail("Window", "epochs x per_epoch", self.snapshots, f"at least {MIN_WINDOW_SNAPSHOTS} snapshots")

    @property
    def snapshots(self) -> int:
        """Snapshots in the window, K = epochs x per_epoch."""
        return self.epochs * self.per_epoch

    def steps(self, steps_per_epoch: int) -> tuple[int, ...]:
        """Within-epoch steps (1-based) after which a window epoch takes its snapshots.

        Evenly spaced, the last after the epoch's last step: ``ceil(j s / per_epoch)`` for
        ``j = 1..per_epoch`` with ``s`` steps per epoch.
        """
        if steps_per_epoch < self.per_epoch:
            _fail("Window", "per_epoch", self.per_epoch,
                  f"at most the {steps_per_epoch} optimisation steps of an epoch")
        return tuple(-(-j * steps_per_epoch // self.per_epoch) for j in range(1, self.per_epoch + 1))


@dataclass(frozen=True)
class Recipe:
    """How to train: the official recipe is Adam, lr 1.6e-3 halved every 10 epochs, batch 128.

    Parameters
    ----------
    epochs : int
        Training epochs E; checkpoints are numbered 0 (initialisation) to E.
    batch_size : int
    lr : float
        Adam learning rate.
    lr_halving_every : int or None
        Halve the learning rate every this many epochs; None keeps it constant.
    weight_epochs : "all" or tuple of int
        Epochs whose full weights are kept. Probabilities on the evaluation split are kept for
        every epoch regardless; weights cost memory and disk, so large settings keep fewer.
    window : Window or None
        The subspace window (a run keeps its snapshots); it must lie in the constant-rate tail
        after the last halving. None: the recipe has none, and the subspace claims refuse it.
    cohort : int
        Seeds trained together as one vectorised model (:mod:`harness.cohort`): seed s trains with
        the seeds ``cohort * (s // cohort)`` to ``cohort * (s // cohort + 1) - 1``, always the same
        ones, so a run stays a function of its setting and seed. 1: the per-seed loop of
        :func:`harness.training.train` (the reference). Models with buffers (BatchNorm running
        statistics) need 1.
    """

    epochs: int
    batch_size: int = 128
    lr: float = 1.6e-3
    lr_halving_every: int | None = 10
    weight_epochs: Literal["all"] | tuple[int, ...] = "all"
    window: Window | None = None
    cohort: int = 1

    def __post_init__(self) -> None:
        check_int("Recipe.epochs", self.epochs, 1)
        check_int("Recipe.cohort", self.cohort, 1)
        check_int("Recipe.batch_size", self.batch_size, 1)
        if not (isinstance(self.lr, (int, float)) and 0.0 < self.lr < 1.0):
            _fail("Recipe", "lr", self.lr, "a float in (0, 1)")
        if self.lr_halving_every is not None:
            check_int("Recipe.lr_halving_every", self.lr_halving_every, 1)
        if self.weight_epochs != "all":
            ok = isinstance(self.weight_epochs, tuple) and all(
                isinstance(e, int) and 0 <= e <= self.epochs for e in self.weight_epochs
            )
            if not ok or list(self.weight_epochs) != sorted(set(self.weight_epochs)):
                _fail("Recipe", "weight_epochs", self.weight_epochs,
                      f"'all' or a sorted tuple of distinct epochs in 0..{self.epochs}")
        if self.window is not None:
            if not isinstance(self.window, Window):
                _fail("Recipe", "window", self.window, "a Window or None")
            if self.window.epochs > self.epochs:
                _fail("Recipe", "window", self.window, f"at most the recipe's {self.epochs} epochs")
            if self.halvings(self.window_epochs[0]) != self.halvings(self.epochs):
                _fail("Recipe", "window", self.window,
                      f"epochs after the last halving (epoch {self.epochs} trains at lr x "
                      f"0.5^{self.halvings(self.epochs)}, epoch {self.window_epochs[0]} at lr x "
                      f"0.5^{self.halvings(self.window_epochs[0])})")

    def halvings(self, epoch: int) -> int:
        """How often the learning rate has been halved when ``epoch`` (1-based) trains."""
        return 0 if self.lr_halving_every is None else (epoch - 1) // self.lr_halving_every

    def lr_at(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (1-based)."""
        return self.lr * 0.5 ** self.halvings(epoch)

    @property
    def window_epochs(self) -> tuple[int, ...]:
        """The epochs (1-based) the subspace window covers, in order; () without a window."""
        return () if self.window is None else tuple(range(self.epochs - self.window.epochs + 1, self.epochs + 1))

    @property
    def saved_epochs(self) -> tuple[int, ...]:
        """Epochs whose weights a run keeps, in order."""
        return tuple(range(self.epochs + 1)) if self.weight_epochs == "all" else self.weight_epochs
