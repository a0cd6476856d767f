"""The cost of one sampled BatchNorm model: statistics on the whole training split, or on the subset.

For each sample, ``harness.subspace.predict_states`` recomputes a ResNet20's BatchNorm statistics
(``recompute_batchnorm_stats_`` on ``batchnorm_inputs`` of the training split) and predicts the
test split. The rows time exactly that for one sample of the gpu tier's ResNet20 on synthetic32
shapes (49,500 training and 10,000 test images; random weights and inputs, as the cost does not
depend on them), with the statistics on the whole split (before) and on
``harness.interpolation.BATCHNORM_IMAGES`` images (after), on CUDA when there is one, else the CPU.

Run: ``pytest benchmarks/test_sampling_bench.py --benchmark-only``.
"""

import pytest
import torch

from harness import settings
from harness.interpolation import BATCHNORM_IMAGES, batchnorm_inputs, recompute_batchnorm_stats_
from harness.models import build
from harness.training import predict_proba

SETTING = "synthetic32-resnet20"
N_TRAIN, N_TEST = 49_500, 10_000


@pytest.mark.parametrize("images", [N_TRAIN, BATCHNORM_IMAGES], ids=["whole-split", "subset"])
def test_one_sampled_resnet20(benchmark, images):
    setting = settings.get(SETTING)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build(setting.model, setting.dataset.input_shape, setting.dataset.num_classes).to(device)
    generator = torch.Generator().manual_seed(0)
    train_x = torch.randn(N_TRAIN, *setting.dataset.input_shape, generator=generator).to(device)
    test_x = torch.randn(N_TEST, *setting.dataset.input_shape, generator=generator).to(device)

    def one_sample() -> torch.Tensor:
        recompute_batchnorm_stats_(model, batchnorm_inputs(train_x, images))
        return predict_proba(model, test_x)

    probs = benchmark.pedantic(one_sample, rounds=1, iterations=1)
    assert probs.shape == (N_TEST, setting.dataset.num_classes)
    benchmark.extra_info.update(device=device, statistics_images=images)
