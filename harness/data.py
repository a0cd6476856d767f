"""Data sets as tensors, split into train / validation / test, normalised, ready for the device.

Nothing is downloaded:

- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 real images, 1 channel), with a
  fixed stratified split (:data:`DIGITS_TEST_SIZE` test images, ``n_val`` validation images).
- ``synthetic``: a procedural, CIFAR-shaped 10-class problem (3 x S x S, S = 16 or 32), a pure
  function of ``generator_seed`` (see :func:`synthetic_images`).
- ``cifar10`` / ``cifar100``: read from a local folder by :mod:`harness.cifar`; the validation
  split is the last ``n_val`` training images (official: 500).
- your own, named by ``DatasetSpec.loader`` (:func:`harness.plugins.load_arrays`): split and
  standardised as the built-in data, the validation split the last ``n_val`` training images.

Images are standardised per channel with the training split's statistics.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from harness.corruptions import corrupt
from harness.plugins import load_arrays
from harness.settings import DatasetSpec
from harness.validation import check_int

DIGITS_TEST_SIZE = 540  # 30% of 1,797, stratified
# The corrupted test sets are one fixed draw per corruption and severity, as CIFAR-10-C is.
SHIFT_SEED = 0
# Corrupted test sets kept in memory: every severity of two corruptions.
SHIFTED_SETS = 10
_SPLIT_SEED = 0  # the digits split is part of the data set, not of a run: fixed forever


@dataclass(frozen=True)
class Split:
    """Examples of one split.

    Attributes
    ----------
    x : torch.Tensor, shape (N, C, H, W), float32
    y : torch.Tensor, shape (N,), int64
    """

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class Data:
    """Train, validation and test splits of one data set, with its class count."""

    train: Split
    val: Split
    test: Split
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one example."""
        return tuple(self.train.x.shape[1:])

    def to(self, device: torch.device | str) -> "Data":
        return Data(self.train.to(device), self.val.to(device), self.test.to(device), self.num_classes)


def load(spec: DatasetSpec, data_root: str | None = None, device: torch.device | str = "cpu") -> Data:
    """Load, split and standardise the data set ``spec`` names, then move it to ``device``.

    Parameters
    ----------
    spec : DatasetSpec
    data_root : str or None
        Folder holding CIFAR in torchvision's layout (see :func:`harness.cifar.load_cifar`);
        ignored by the embedded data sets.
    device : torch.device or str

    Returns
    -------
    Data
    """
    return _load_cpu(spec, None if data_root is None else str(data_root)).to(device)


@functools.lru_cache(maxsize=4)
def _load_cpu(spec: DatasetSpec, data_root: str | None) -> Data:
    # Cached per process: every run of a setting, and every claim, reuses the same tensors.
    train_x, train_y, test_x, test_y = _raw(spec, data_root)
    fit, val = _fit_and_validation(spec, len(train_y))
    mean, std = _standardisation(train_x[fit])

    def norm(x: torch.Tensor) -> torch.Tensor:
        return ((x - mean) / std).contiguous()

    return Data(Split(norm(train_x[fit]), train_y[fit]), Split(norm(train_x[val]), train_y[val]),
                Split(norm(test_x), test_y), spec.num_classes)


def _raw(spec: DatasetSpec, data_root: str | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training (validation included) and test images before standardisation, and their labels."""
    if spec.loader is not None:
        train_x, train_y, test_x, test_y = load_arrays(spec.loader, spec.loader_kwargs)
        classes = int(train_y.max().item()) + 1
        if spec.classes is not None and max(spec.classes) >= classes:
            raise ValueError(f"DatasetSpec.classes={spec.classes!r} is invalid: the loaded data has classes "
                             f"0..{classes - 1}")
    elif spec.name == "digits":
        train_x, train_y, test_x, test_y = _digits()
    elif spec.name == "synthetic":
        x, y = synthetic_images(spec.n_train + spec.n_test, spec.image_size, spec.generator_seed)
        train_x, train_y = x[: spec.n_train], y[: spec.n_train]
        test_x, test_y = x[spec.n_train:], y[spec.n_train:]
    else:
        from harness.cifar import load_cifar

        arrays = load_cifar(data_root, which=spec.name)
        train_x, train_y = arrays.train_x.float() / 255.0, arrays.train_y
        test_x, test_y = arrays.test_x.float() / 255.0, arrays.test_y
    if spec.classes is not None:
        train_x, train_y = _select_classes(train_x, train_y, spec.classes)
        test_x, test_y = _select_classes(test_x, test_y, spec.classes)
    if spec.limit is not None:
        (n_train, n_test) = spec.limit
        train_x, train_y, test_x, test_y = train_x[:n_train], train_y[:n_train], test_x[:n_test], test_y[:n_test]
    return train_x, train_y, test_x, test_y


def _fit_and_validation(spec: DatasetSpec, n_train: int) -> tuple[slice, slice]:
    """The training split's and the validation split's slices of the training set (validation last)."""
    if spec.n_val >= n_train:
        raise ValueError(f"DatasetSpec.n_val={spec.n_val} leaves no training data: the training set has "
                         f"{n_train} examples")
    return slice(0, n_train - spec.n_val), slice(n_train - spec.n_val, n_train)


def _standardisation(fit_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of the training split, shape (1, C, 1, 1) each."""
    return fit_x.mean(dim=(0, 2, 3), keepdim=True), fit_x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)


@functools.lru_cache(maxsize=SHIFTED_SETS)
def _shifted_cpu(spec: DatasetSpec, data_root: str | None, corruption: str, severity: int, seed: int) -> Split:
    train_x, train_y, test_x, test_y = _raw(spec, data_root)
    # The raw images in [0, 1]: digits and CIFAR are; synthetic and loaded images are mapped by the
    # smallest and largest value of the set (an affine map, which standardisation undoes).
    low, span = 0.0, 1.0
    if spec.name == "synthetic" or spec.loader is not None:
        low = min(train_x.min().item(), test_x.min().item())
        span = max(train_x.max().item(), test_x.max().item()) - low
    unit = ((test_x - low) / span).clamp(0.0, 1.0)  # the clamp removes rounding only
    shifted = low + span * corrupt(unit, corruption, severity, seed=seed)
    mean, std = _standardisation(train_x[_fit_and_validation(spec, len(train_y))[0]])
    return Split(((shifted - mean) / std).contiguous(), test_y)


def shifted_test(spec: DatasetSpec, corruption: str, severity: int, data_root: str | None = None,
                 device: torch.device | str = "cpu", seed: int = SHIFT_SEED) -> Split:
    """The test split under a corruption (harness.corruptions), standardised like :func:`load`'s.

    The corruption applies to the raw images in [0, 1] (digits: pixel / 16; CIFAR: / 255;
    synthetic: mapped affinely by the generated set's range), before standardisation with the
    training split's statistics. One corrupted test set per (corruption, severity, seed): every
    run and every model is evaluated on the same one, as on CIFAR-10-C.

    Parameters
    ----------
    spec : DatasetSpec
    corruption : str
        A name of :data:`harness.corruptions.SEVERITIES`.
    severity : int in 1..5
    data_root : str or None
    device : torch.device or str
    seed : int
        Seed of the corruption's noise.

    Returns
    -------
    Split
        x : (N, C, H, W) standardised; y : (N,), the clean test labels.
    """
    return _shifted_cpu(spec, None if data_root is None else str(data_root), corruption, severity, seed).to(device)


def _select_classes(x: torch.Tensor, y: torch.Tensor, classes: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The examples of ``classes``, in their original order, labelled by position in ``classes``."""
    relabel = torch.full((max(int(y.max()), *classes) + 1,), -1, dtype=torch.int64)
    relabel[torch.tensor(classes)] = torch.arange(len(classes))
    keep = relabel[y] >= 0
    return x[keep], relabel[y[keep]]


def _digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn digits in [0, 1], shape (N, 1, 8, 8): stratified train (val last) and test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = torch.from_numpy((bunch.images / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=DIGITS_TEST_SIZE, stratify=bunch.target, random_state=_SPLIT_SEED)
    # train_test_split returns shuffled indices, so the validation split that load() takes from
    # their end is a random (approximately stratified) subset, not a block of one class.
    return x[idx_train], y[idx_train], x[idx_test], y[idx_test]


# ----------------------------------------------------------------------------------------------
# The synthetic generator

SYNTHETIC_CLASSES = 10
# Difficulty knobs, tuned once so that SmallCNN lands at 60-85% test accuracy on 32x32 (README,
# "Data"): the largest strength of a second, distractor class texture relative to the true one,
# and the amplitude of smooth background noise. A distractor can be up to 25% stronger than the
# true texture, so some images are ambiguous even to the Bayes classifier (accuracy ceiling ~80%).
DISTRACTOR_MAX = 1.25
NOISE_AMPLITUDE = 1.0
_TEMPLATE_RES = 4  # templates are random fields at image_size/4, upsampled: low-frequency textures
_NOISE_RES = 8


def synthetic_images(n: int, image_size: int, generator_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate ``n`` labelled images of the synthetic 10-class problem.

    Each class has a colour texture (a random low-frequency field). An image of class ``y`` is its
    texture, circularly shifted by a random offset, plus the texture of a random other class at a
    random strength ``b ~ U(0, DISTRACTOR_MAX)`` and its own random shift, plus smooth noise, with
    random per-channel gains. Images whose distractor is nearly as strong as the true texture are
    intrinsically ambiguous, so accuracy stays well below 100% and independent runs can differ on
    which of them they get right.

    All randomness is drawn from one CPU generator in a fixed order, so the images depend only on
    ``(n, image_size, generator_seed)``, on any device. The first examples of a larger ``n`` are
    *not* the same as a smaller ``n``'s; settings fix ``n`` once.

    Parameters
    ----------
    n : int
    image_size : int
        Side S; must be a multiple of 8.
    generator_seed : int

    Returns
    -------
    x : torch.Tensor, shape (n, 3, S, S), float32, unnormalised
    y : torch.Tensor, shape (n,), int64, balanced over the 10 classes
    """
    if image_size % _NOISE_RES or image_size < _NOISE_RES:
        raise ValueError(f"image_size={image_size} is invalid: expected a multiple of {_NOISE_RES}")
    n = check_int("n", n, 1)
    g = torch.Generator().manual_seed(generator_seed)
    s, c = image_size, SYNTHETIC_CLASSES
    coarse = torch.randn(c, 3, s // _TEMPLATE_RES, s // _TEMPLATE_RES, generator=g)
    templates = F.interpolate(coarse, size=(s, s), mode="bicubic", align_corners=False)
    templates = (templates - templates.mean(dim=(1, 2, 3), keepdim=True)) / templates.std(
        dim=(1, 2, 3), keepdim=True)

    y = torch.arange(n) % c
    y = y[torch.randperm(n, generator=g)]
    other = (y + torch.randint(1, c, (n,), generator=g)) % c
    strength = DISTRACTOR_MAX * torch.rand(n, generator=g)
    shifts = torch.randint(0, s, (n, 4), generator=g)
    gains = 0.7 + 0.6 * torch.rand(n, 3, 1, 1, generator=g)
    noise = torch.randn(n, 3, _NOISE_RES, _NOISE_RES, generator=g)

    x = _roll(templates[y], shifts[:, 0], shifts[:, 1])
    x += strength.view(n, 1, 1, 1) * _roll(templates[other], shifts[:, 2], shifts[:, 3])
    x += NOISE_AMPLITUDE * F.interpolate(noise, size=(s, s), mode="bilinear", align_corners=False)
    return (gains * x).contiguous(), y


def _roll(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Circularly shift each image by its own offset: out[i, :, h, w] = images[i, :, h+dy, w+dx]."""
    n, ch, s, _ = images.shape
    rows = (torch.arange(s) + dy[:, None]) % s  # (n, S)
    cols = (torch.arange(s) + dx[:, None]) % s
    out = images.gather(2, rows.view(n, 1, s, 1).expand(n, ch, s, s))
    return out.gather(3, cols.view(n, 1, 1, s).expand(n, ch, s, s))
