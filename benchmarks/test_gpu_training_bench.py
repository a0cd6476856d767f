"""The gpu tier's training cost on CUDA: the official SmallCNN and MediumCNN recipes, one seed each.

Rows per model: the harness (``harness.training.train``: fp32, every checkpoint kept), and a bare
loop in fp32, with bf16 autocast, and with channels_last memory, each with its final test
accuracy in ``extra_info`` (``--benchmark-columns`` does not show it: see the JSON, or the line
each test prints), so that a speed-up that costs accuracy shows. On the synthetic32 data (no
download), the recipes of the gpu tier (40 epochs, Adam 1.6e-3 halved every 10, batch 128).
Skipped without CUDA.

Run on a GPU: ``pytest benchmarks/test_gpu_training_bench.py --benchmark-only -s``.
"""

import contextlib

import pytest
import torch
import torch.nn.functional as F

from harness import data as data_lib
from harness import settings
from harness.models import build
from harness.training import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the gpu tier's cost on a GPU")

SETTINGS = ["synthetic32-smallcnn", "synthetic32-mediumcnn"]
VARIANTS = ["fp32", "bf16-autocast", "channels-last"]


def bare_loop(setting, data, variant: str) -> float:
    """Train one seed of ``setting`` on CUDA in ``variant``; return the final test accuracy."""
    torch.manual_seed(0)
    memory = torch.channels_last if variant == "channels-last" else torch.contiguous_format
    model = build(setting.model, data.input_shape, data.num_classes).cuda().to(memory_format=memory)
    train_x = data.train.x.contiguous(memory_format=memory)
    test_x = data.test.x.contiguous(memory_format=memory)
    optimizer = torch.optim.Adam(model.parameters(), lr=setting.recipe.lr)
    order = torch.Generator().manual_seed(0)
    n, bs = len(data.train), setting.recipe.batch_size

    def precision():
        if variant == "bf16-autocast":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    for epoch in range(1, setting.recipe.epochs + 1):
        for group in optimizer.param_groups:
            group["lr"] = setting.recipe.lr_at(epoch)
        model.train()
        perm = torch.randperm(n, generator=order).cuda()
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            with precision():
                loss = F.cross_entropy(model(train_x[idx]), data.train.y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.inference_mode(), precision():
            logits = model(test_x)
    return (logits.argmax(1) == data.test.y).double().mean().item()


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("variant", ["harness", *VARIANTS])
def test_gpu_training(benchmark, name, variant):
    setting = settings.get(name)
    data = data_lib.load(setting.dataset, device="cuda")
    benchmark.group = f"train {name} on CUDA ({setting.recipe.epochs} epochs, one seed)"
    if variant == "harness":
        run = benchmark.pedantic(train, args=(setting, 0), kwargs={"device": "cuda", "data": data}, rounds=1)
        accuracy = run.eval_acc[-1].item()
    else:
        accuracy = benchmark.pedantic(bare_loop, args=(setting, data, variant), rounds=1)
    benchmark.extra_info["test_accuracy"] = accuracy
    print(f"\n{name} {variant}: test accuracy {accuracy:.4f}")
