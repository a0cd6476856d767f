"""Fake runs and a fake trainer for the tests of the run store, and child processes to race it.

Runs are built from seeded random tensors; ``FakeTrainer`` stands in for
``harness.training.train`` and counts its calls. Used by tests/test_store.py and
tests/test_derived.py, and by the child processes those start (:func:`start_child`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from harness import settings
from harness.training import Run

REPO = Path(__file__).resolve().parents[1]
SETTING = settings.get("digits-mlp")
OTHER_SETTING = settings.get("synthetic16-cnn")

# Shape of the fake runs: saved epochs, eval examples, classes. Small, so each test stays fast.
FAKE_EPOCHS = (0, 2, 4)
FAKE_N, FAKE_C = 7, 10
SLOW_TRAIN_S = 1.0  # a concurrent child's sleep: long enough that both processes overlap it
CHILD_TIMEOUT_S = 60


def make_run(setting: settings.Setting, seed: int) -> Run:
    """A deterministic fake run: 2-tensor state dicts at 3 epochs, softmaxed probabilities."""
    gen = torch.Generator().manual_seed(1000 + seed)
    epochs = FAKE_EPOCHS[-1]
    # Names deliberately not sorted, to check that the store keeps state-dict order.
    weights = {
        epoch: {"fc2.weight": torch.randn(3, 4, generator=gen), "fc1.bias": torch.randn(4, generator=gen)}
        for epoch in FAKE_EPOCHS
    }
    return Run(
        setting_key=setting.cache_key(),
        seed=seed,
        init_seed=seed + 100,
        data_seed=seed + 200,
        weights=weights,
        eval_probs=torch.randn(epochs + 1, FAKE_N, FAKE_C, generator=gen).softmax(-1),
        eval_labels=torch.randint(0, FAKE_C, (FAKE_N,), generator=gen),
        final_logits=torch.randn(FAKE_N, FAKE_C, generator=gen),
        window=torch.randn(2, 16, generator=gen),
        train_loss=torch.rand(epochs, generator=gen, dtype=torch.float64),
        train_acc=torch.rand(epochs, generator=gen, dtype=torch.float64),
        meta={"device": "cpu", "timings": {"train_s": 1.25, "eval_s": 0.5}, "epochs_run": epochs},
    )


class FakeTrainer:
    """A ``train_fn`` that records ``(seed, kwargs)`` per call and returns :func:`make_run`."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, dict]] = []

    def __call__(self, setting: settings.Setting, seed: int, **kwargs) -> Run:
        self.calls.append((seed, kwargs))
        return make_run(setting, seed)

    @property
    def seeds(self) -> list[int]:
        return [seed for seed, _ in self.calls]


def start_child(module: str, call: str) -> subprocess.Popen:
    """Start ``python -c`` running ``<module>.<call>``, with tests/ importable (the test modules hold
    the children)."""
    code = f"import {module}\n{module}.{call}\n"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(Path(__file__).parent)])}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def child_outputs(module: str, call: str, n: int = 2) -> list[str]:
    """Start ``n`` children together (:func:`start_child`), wait for them, and return their stdout,
    stripped; a child that fails fails the test with its stderr."""
    children = [start_child(module, call) for _ in range(n)]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=CHILD_TIMEOUT_S)
        assert child.returncode == 0, err
        outputs.append(out.strip())
    return outputs
