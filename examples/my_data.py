"""Data loaded by a function: scikit-learn's digits split by writing order, not at random.

The loader contract (harness.plugins.load_arrays): called with the spec's ``loader_kwargs``, it
returns ``(train_x, train_y, test_x, test_y)``, images (N, C, H, W) and integer labels (N,), as
numpy arrays or torch tensors. The harness holds out the last ``n_val`` training images for
validation and standardises per channel with the training split's statistics.
"""

from __future__ import annotations

import numpy as np


def digits_by_order(n_test: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The last ``n_test`` of the 1,797 digits (later writers) are the test set; pixels in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8)
    y = digits.target.astype(np.int64)
    return x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:]
