"""The cost of sampled models' predictions.

Batched against looped
----------------------
``harness.subspace.predict_states`` (:mod:`harness.evaluation`) evaluates sampled weight vectors
either one model at a time (``method="looped"``, the reference) or a chunk at a time with
``torch.func.vmap`` (``method="batched"``). ``test_sampled_models`` times both in one run, one group
per model and device so that the ratio shows side by side: 8 random-direction samples of a
SmallCNN on the synthetic16 test split (1,000 16x16 images) and of an MLP on the digits test split,
on the CPU and on CUDA (skipped without CUDA). The weights are the initialisation's (the cost does
not depend on them).

Run: ``pytest benchmarks/test_sampling_bench.py -k sampled_models --benchmark-only
--benchmark-group-by=group``.

BatchNorm statistics on the whole split or on a subset
------------------------------------------------------

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

from harness import data as data_lib
from harness import settings
from harness.interpolation import BATCHNORM_IMAGES, batchnorm_inputs, recompute_batchnorm_stats_
from harness.models import build
from harness.subspace import ENSEMBLE_SCALES, flatten, predict_states, random_direction_samples
from harness.training import Run, predict_proba

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


SAMPLED = {"synthetic16-cnn": 8, "digits-mlp": 8}  # setting -> sampled models
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                reason="needs CUDA"))]


def initial_run(setting: settings.Setting) -> Run:
    """A one-checkpoint run of ``setting``'s model at its seed-0 initialisation."""
    torch.manual_seed(0)
    model = build(setting.model, setting.dataset.input_shape, setting.dataset.num_classes)
    empty = torch.zeros(0)
    return Run(setting_key=setting.cache_key(), seed=0, init_seed=0, data_seed=0, weights={0: model.state_dict()},
               eval_probs=empty, eval_labels=empty, final_logits=empty, window=empty, train_loss=empty,
               train_acc=empty)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(SAMPLED))
@pytest.mark.parametrize("method", ["looped", "batched"])
def test_sampled_models(benchmark, name, method, device):
    setting = settings.get(name)
    data = data_lib.load(setting.dataset)
    run = initial_run(setting)
    thetas = random_direction_samples(flatten(run.weights[0]), SAMPLED[name], ENSEMBLE_SCALES.random,
                                      torch.Generator().manual_seed(0))
    benchmark.group = f"{SAMPLED[name]} sampled {name} on {device}, {len(data.test)} test images"
    probs = benchmark(predict_states, setting, run, thetas, data.test.x, train_x=data.train.x, device=device,
                      method=method)
    assert probs.shape == (SAMPLED[name], len(data.test), setting.dataset.num_classes)
    benchmark.extra_info.update(device=device, method=method, models=SAMPLED[name])
