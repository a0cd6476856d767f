"""Seed-batched training (``harness.cohort.train_cohort``) against the per-seed loop, at 8 seeds.

Per group two rows: ``per-seed`` trains 8 seeds one after another with the reference loop
(``harness.training.train``), ``cohort`` trains them as one cohort (the engine that
``harness.cohort.engine_for`` picks for the device). The cohort row's line printed with ``-s`` and
its ``extra_info`` give the ratio within the same run. Groups: every smoke setting, and the gpu
tier's SmallCNN and MediumCNN on 32x32 synthetic images (shrunk to SHAPES_DATA images and
SHAPES_EPOCHS epochs on a CPU: the shapes, not the recipe). The CUDA rows skip without CUDA.

Run: ``pytest benchmarks/test_cohort_bench.py --benchmark-only -s`` (7 min 40 s on 2 CPU cores, the
MediumCNN rows 3.3 min of it).
"""

import dataclasses

import pytest
import torch

from harness import data as data_lib
from harness import settings
from harness.cohort import train_cohort
from harness.training import train

N_SEEDS = 8
SMOKE = list(settings.names("smoke"))
GPU_SHAPES = ["synthetic32-smallcnn", "synthetic32-mediumcnn"]
SHAPES_DATA = dict(n_train=2_048, n_test=512, n_val=0)  # the gpu shapes on a CPU: a minute, not an hour
SHAPES_EPOCHS = 2
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]

_per_seed_seconds: dict[tuple[str, str], float] = {}


def _setting(name: str, device: str) -> settings.Setting:
    setting = settings.get(name)
    if name in GPU_SHAPES and device == "cpu":
        setting = setting.replace(dataset=dataclasses.replace(setting.dataset, **SHAPES_DATA),
                                  recipe=dataclasses.replace(setting.recipe, epochs=SHAPES_EPOCHS, window=None))
    return setting


def _per_seed(setting, data, device):
    reference = setting.replace(recipe=dataclasses.replace(setting.recipe, cohort=1))
    return [train(reference, seed, device=device, data=data) for seed in range(N_SEEDS)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", SMOKE + GPU_SHAPES)
@pytest.mark.parametrize("how", ["per-seed", "cohort"])  # per-seed first: the cohort row reads its time
def test_training_8_seeds(benchmark, how, name, device):
    setting = _setting(name, device)
    data = data_lib.load(setting.dataset, device=device)
    benchmark.group = f"train {N_SEEDS} seeds of {name} on {device} ({setting.recipe.epochs} epochs)"
    if how == "per-seed":
        benchmark.pedantic(_per_seed, args=(setting, data, device), rounds=1, warmup_rounds=0)
        _per_seed_seconds[(name, device)] = benchmark.stats.stats.min
        return
    # One warm-up cohort: torch.func's first call in a process costs ~2 s of set-up, once.
    runs = benchmark.pedantic(train_cohort, args=(setting, list(range(N_SEEDS))),
                              kwargs={"device": device, "data": data}, rounds=1, warmup_rounds=1)
    per_seed = _per_seed_seconds.get((name, device))
    if per_seed is not None:
        ratio = per_seed / benchmark.stats.stats.min
        benchmark.extra_info["speedup_over_per_seed"] = ratio
        print(f"\n{name} on {device}: cohort of {N_SEEDS} ({runs[0].meta['engine']}) {ratio:.2f}x the per-seed loop")
