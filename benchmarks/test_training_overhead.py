"""Training overhead of ``harness.training.train`` against a bare PyTorch loop (same model, data, batches).

The bare loop does the same arithmetic work the harness must do: an epoch of Adam steps over an index
permutation of on-device data, then one softmax pass over the evaluation split. What it leaves out
is the harness's bookkeeping: seed streams, weight snapshots, divergence checks, timings, progress.
Compare the two rows of each group: the budget is an overhead within 15%.

Run: ``make bench`` (or ``pytest benchmarks/ --benchmark-only``).
"""

import pytest
import torch
import torch.nn.functional as F

from harness import data as data_lib
from harness import settings
from harness.models import build
from harness.training import train

SETTINGS = ["digits-mlp", "synthetic16-cnn"]


def bare_loop(setting, data):
    torch.manual_seed(0)
    model = build(setting.model, data.input_shape, data.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=setting.recipe.lr)
    order = torch.Generator().manual_seed(0)
    n, bs = len(data.train), setting.recipe.batch_size
    for epoch in range(setting.recipe.epochs):
        for group in optimizer.param_groups:
            group["lr"] = setting.recipe.lr * 0.5 ** (epoch // setting.recipe.lr_halving_every)
        model.train()
        perm = torch.randperm(n, generator=order)
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            loss = F.cross_entropy(model(data.train.x[idx]), data.train.y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.inference_mode():
            F.softmax(model(data.test.x), dim=1)
    return model


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("loop", ["bare", "harness"])
def test_training_loop(benchmark, name, loop):
    setting = settings.get(name)
    data = data_lib.load(setting.dataset)
    benchmark.group = f"train {name} ({setting.recipe.epochs} epochs)"
    if loop == "bare":
        benchmark.pedantic(bare_loop, args=(setting, data), rounds=5, warmup_rounds=1)
    else:
        benchmark.pedantic(train, args=(setting, 0), kwargs={"device": "cpu", "data": data}, rounds=5,
                           warmup_rounds=1)
