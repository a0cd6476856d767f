"""Weight matching (``harness.matching.weight_matching``) on the official MediumCNN.

Two independently initialised MediumCNNs (64, 128, 256, 256) on 3x32x32 with 10 classes (971,146
parameters each), the size the P3 claim aligns on the GPU tier. Independent models are the hard
case: a planted permutation is undone in two sweeps, independent ones take tens. The number of
sweeps is stored in the benchmark's ``extra_info``.

Run: ``make bench`` (or ``pytest benchmarks/ --benchmark-only``).
"""

import torch

from harness import matching
from harness.models import build
from harness.settings import ModelSpec

MEDIUM_CNN = ModelSpec("medium_cnn", (64, 128, 256, 256), dropout=0.1)


def test_weight_matching_medium_cnn(benchmark):
    pair = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        pair.append(build(MEDIUM_CNN, (3, 32, 32), 10))
    benchmark.group = "weight matching, MediumCNN (64,128,256,256), 3x32x32"
    result = benchmark.pedantic(matching.match_weights, args=tuple(pair), rounds=5, warmup_rounds=1)
    benchmark.extra_info["sweeps"] = result.sweeps
    assert result.converged
