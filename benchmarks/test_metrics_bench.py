"""Pairwise metric matrices as one matrix product, against per-pair Python loops.

The claims compare every pair of checkpoints: cosine similarity of weights (40 checkpoints of a
~1M-parameter model, e.g. the MediumCNN's 971,146) and disagreement of predictions (40 checkpoints
on 10,000 evaluation examples of 10 classes). The harness computes each matrix with one
product (``pairwise_cosine``: a Gram matrix; ``pairwise_disagreement``: one-hot encodings). Each
group has three rows:

- ``matrix``: the harness function;
- ``naive``: the two-input public metric called once per pair (i <= j, mirrored), as a user
  without the pairwise function would write it;
- ``loop``: the tightest per-pair loop (rows normalised / argmax taken once, then one dot product
  or comparison per pair), which isolates the cost of looping over pairs.

Target: ``matrix`` at least 10x faster than ``naive``.

Run: ``pytest benchmarks/test_metrics_bench.py --benchmark-only``.
"""

import pytest
import torch

from harness.diversity import disagreement, pairwise_disagreement
from harness.weightspace import cosine_similarity, pairwise_cosine

K = 40  # checkpoints
N, C = 10_000, 10  # evaluation examples, classes
D = 1_000_000  # parameters


@pytest.fixture(scope="module")
def probs() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.softmax(torch.randn(K, N, C, generator=g), dim=-1)


@pytest.fixture(scope="module")
def thetas() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(K, D, generator=g)


def per_pair(metric, stack) -> torch.Tensor:
    k = len(stack)
    out = torch.zeros(k, k, dtype=torch.float64)
    for i in range(k):
        for j in range(i, k):
            out[i, j] = out[j, i] = metric(stack[i], stack[j])
    return out


def naive_cosine(thetas):
    return per_pair(cosine_similarity, thetas)


def loop_cosine(thetas):
    x = thetas.double()
    unit = x / x.norm(dim=1, keepdim=True)
    return per_pair(lambda a, b: (a @ b).item(), unit)


def naive_disagreement(probs):
    return per_pair(disagreement, probs)


def loop_disagreement(probs):
    labels = probs.argmax(-1)
    return per_pair(lambda a, b: (a != b).sum().item() / len(a), labels)


CASES = {
    "cosine": {"matrix": pairwise_cosine, "naive": naive_cosine, "loop": loop_cosine},
    "disagreement": {"matrix": pairwise_disagreement, "naive": naive_disagreement, "loop": loop_disagreement},
}


@pytest.mark.parametrize("how", ["matrix", "naive", "loop"])
@pytest.mark.parametrize("metric", ["cosine", "disagreement"])
def test_pairwise(benchmark, request, metric, how):
    data = request.getfixturevalue("thetas" if metric == "cosine" else "probs")
    shape = f"{K} x {D:,} float32" if metric == "cosine" else f"{K} x {N:,} x {C} float32"
    benchmark.group = f"pairwise {metric} ({shape})"
    func = CASES[metric][how]
    rounds = 5 if how == "matrix" else 3  # the loops take seconds per round
    result = benchmark.pedantic(func, args=(data,), rounds=rounds, warmup_rounds=1)
    # Same answer as the one-product matrix (checked once, outside the timing).
    torch.testing.assert_close(result, CASES[metric]["matrix"](data), rtol=0, atol=1e-9)
