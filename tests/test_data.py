import numpy as np
import pytest
import torch

from harness import data
from harness.settings import DatasetSpec

DIGITS = DatasetSpec("digits", 8, n_val=200)


def test_digits_split_sizes_and_shapes():
    d = data.load(DIGITS)
    assert (len(d.train), len(d.val), len(d.test)) == (1797 - 540 - 200, 200, 540)
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10
    assert d.train.x.dtype == torch.float32 and d.train.y.dtype == torch.int64


def test_digits_test_split_is_stratified_and_fixed():
    d = data.load(DIGITS)
    counts = np.bincount(d.test.y.numpy(), minlength=10)
    # load_digits has 174-183 images per class; 30% of each is 52-55.
    assert counts.min() >= 52 and counts.max() <= 55
    data._load_cpu.cache_clear()
    again = data.load(DIGITS)
    assert torch.equal(again.test.x, d.test.x) and torch.equal(again.train.y, d.train.y)


def test_splits_are_standardised_with_training_statistics():
    d = data.load(DatasetSpec("synthetic", 16, n_train=600, n_test=100, n_val=100))
    mean = d.train.x.mean(dim=(0, 2, 3))
    std = d.train.x.std(dim=(0, 2, 3))
    torch.testing.assert_close(mean, torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, torch.ones(3), atol=1e-4, rtol=0)
    assert d.val.x.mean().abs() > 0  # the validation split is transformed, not re-standardised


def test_synthetic_is_a_pure_function_of_its_arguments():
    x1, y1 = data.synthetic_images(200, 16, generator_seed=3)
    x2, y2 = data.synthetic_images(200, 16, generator_seed=3)
    x3, _ = data.synthetic_images(200, 16, generator_seed=4)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.allclose(x1, x3)
    assert x1.shape == (200, 3, 16, 16) and x1.dtype == torch.float32


@pytest.mark.parametrize("size", [16, 32])
def test_synthetic_labels_are_balanced(size):
    _, y = data.synthetic_images(1000, size, generator_seed=0)
    assert np.bincount(y.numpy(), minlength=10).tolist() == [100] * 10


def test_synthetic_classes_are_learnable_but_overlap():
    # A nearest-class-mean classifier on shift-invariant features (per-channel power spectra) must
    # beat chance clearly, yet stay far from perfect: the data set is neither noise nor trivial.
    x, y = data.synthetic_images(4000, 16, generator_seed=0)
    feats = torch.fft.fft2(x).abs().flatten(1)
    feats = (feats - feats.mean(0)) / feats.std(0)
    train, test = slice(0, 3000), slice(3000, None)
    means = torch.stack([feats[train][y[train] == c].mean(0) for c in range(10)])
    acc = (torch.cdist(feats[test], means).argmin(1) == y[test]).double().mean().item()
    assert 0.2 < acc < 0.9


def test_roll_matches_torch_roll_per_image():
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    dy, dx = torch.tensor([1, 3]), torch.tensor([2, 0])
    out = data._roll(images, dy, dx)
    for i in range(2):
        expected = torch.roll(images[i], shifts=(-int(dy[i]), -int(dx[i])), dims=(1, 2))
        assert torch.equal(out[i], expected)


@pytest.mark.parametrize("n, size, message", [
    (10, 12, r"image_size=12 is invalid: expected a multiple of 8"),
    (0, 16, r"n=0 is invalid"),
])
def test_synthetic_rejects_bad_arguments(n, size, message):
    with pytest.raises(ValueError, match=message):
        data.synthetic_images(n, size, generator_seed=0)


def test_cifar_from_a_local_folder_holds_out_the_last_training_images(cifar10_root):
    spec = DatasetSpec("cifar10", 32, n_val=20)
    d = data.load(spec, data_root=cifar10_root["root"])
    assert (len(d.train), len(d.val), len(d.test)) == (80, 20, 20)
    assert d.input_shape == (3, 32, 32)
    rows, labels = cifar10_root["written"]["data_batch_5"]
    assert d.val.y.tolist() == labels  # the validation split is the end of data_batch_5


def test_cifar_missing_folder_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py"):
        data.load(DatasetSpec("cifar10", 32), data_root=tmp_path)


def test_validation_split_larger_than_training_set(cifar10_root):
    with pytest.raises(ValueError, match=r"n_val=100 leaves no training data: the training set has 100"):
        data.load(DatasetSpec("cifar10", 32, n_val=100), data_root=cifar10_root["root"])


def test_a_class_selection_keeps_those_classes_relabelled_in_order():
    full = data.load(DatasetSpec("digits", 8, n_val=200))
    pair = data.load(DatasetSpec("digits", 8, n_val=50, classes=(7, 1)))
    assert pair.num_classes == 2
    for split, whole in ((pair.test, full.test),):
        kept = (whole.y == 7) | (whole.y == 1)
        assert len(split) == int(kept.sum())
        assert split.y.tolist() == [0 if y == 7 else 1 for y in whole.y[kept].tolist()]
    assert set(pair.train.y.tolist()) == set(pair.val.y.tolist()) == {0, 1}


def test_cifar_class_selection(cifar10_root):
    d = data.load(DatasetSpec("cifar10", 32, n_val=4, classes=(3, 5)), data_root=cifar10_root["root"])
    assert d.num_classes == 2 and set(d.test.y.tolist()) <= {0, 1}


def test_shifted_test_corrupts_the_raw_images_and_standardises_them_like_load():
    spec = DatasetSpec("digits", 8, n_val=200)
    clean = data.load(spec)
    shifted = data.shifted_test(spec, "contrast", 5)
    assert torch.equal(shifted.y, clean.test.y)
    # Contrast 0.15 shrinks each image's deviations from its mean by 0.15 (digits are in [0, 1]
    # already, so nothing clips), and standardisation is affine: the same holds after it.
    assert shifted.x.shape == clean.test.x.shape
    mean = clean.test.x.mean(dim=(2, 3), keepdim=True)
    assert torch.allclose(shifted.x - mean, 0.15 * (clean.test.x - mean), atol=1e-5)
    # one fixed draw per corruption, severity and seed
    assert torch.equal(data.shifted_test(spec, "gaussian_noise", 2).x, data.shifted_test(spec, "gaussian_noise", 2).x)
    assert not torch.equal(data.shifted_test(spec, "gaussian_noise", 2, seed=1).x,
                           data.shifted_test(spec, "gaussian_noise", 2).x)


def test_shifted_synthetic_images_are_mapped_to_the_unit_range_first():
    spec = DatasetSpec("synthetic", 16, n_train=600, n_test=100, n_val=100)
    clean, shifted = data.load(spec), data.shifted_test(spec, "gaussian_noise", 5)
    noise = shifted.x - clean.test.x
    assert 0.05 < noise.std().item() < 5  # visible, not destroying
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        data.shifted_test(spec, "fog", 1)
