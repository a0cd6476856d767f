"""A joint t-SNE of many models' predictions, for the report's function-space figures ([Fort] Fig. 2c, 4).

Every point (a checkpoint or a sampled model) is embedded in one t-SNE, never one embedding per
run: distances between the clouds of different runs are then comparable. The figures only
illustrate; no claim is decided on t-SNE coordinates.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

__all__ = ["joint_tsne"]

PERPLEXITY = 30.0  # scikit-learn's default; lowered for small point sets (t-SNE needs perplexity < M)


def joint_tsne(probs: torch.Tensor, seed: int = 0) -> np.ndarray:
    """2-D t-SNE of the flattened predictions of many models, in one embedding.

    Parameters
    ----------
    probs : torch.Tensor, shape (M, N, C)
        Softmax outputs of M models on the same N examples (M >= 2).
    seed : int
        t-SNE's random state (PCA initialisation makes the result depend little on it).

    Returns
    -------
    numpy.ndarray, shape (M, 2)
    """
    if not isinstance(probs, torch.Tensor) or probs.ndim != 3 or probs.shape[0] < 2:
        raise ValueError(f"probs must be a tensor (M, N, C) with M >= 2 models; got "
                         f"{tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__}")
    points = probs.flatten(1).double().numpy()
    perplexity = min(PERPLEXITY, (len(points) - 1) / 3)
    # One OpenMP thread: for the few hundred points of a figure, t-SNE's 1,000 gradient steps spend
    # most of their time waking worker threads (seconds on a loaded 2-core machine, 0.05 s on one).
    with threadpool_limits(1, "openmp"):
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)
