import numpy as np
import pytest
import torch

from harness.embedding import joint_tsne


def _clusters(n_per: int, centres: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    logits = torch.cat([torch.randn(1, 50, 10, generator=g) * 5 + 0.1 * torch.randn(n_per, 50, 10, generator=g)
                        for _ in range(centres)])
    return logits.softmax(-1)


def test_joint_tsne_shape_and_separates_clusters():
    xy = joint_tsne(_clusters(10, 3))
    assert xy.shape == (30, 2) and np.isfinite(xy).all()
    centres = xy.reshape(3, 10, 2).mean(1)
    within = np.linalg.norm(xy.reshape(3, 10, 2) - centres[:, None], axis=-1).max()
    between = min(np.linalg.norm(centres[a] - centres[b]) for a in range(3) for b in range(a + 1, 3))
    assert between > within  # one embedding: clusters of different "runs" stay apart


def test_joint_tsne_is_deterministic():
    p = _clusters(4, 2)
    np.testing.assert_array_equal(joint_tsne(p), joint_tsne(p))


@pytest.mark.parametrize("bad", [torch.rand(1, 5, 3), torch.rand(5, 3), "x"])
def test_joint_tsne_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="probs must be"):
        joint_tsne(bad)
