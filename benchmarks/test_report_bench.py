"""What the claims pay for subspace samples and for the report.

- ``predict_samples``: test-split predictions of 8 sampled SmallCNNs (synthetic16-cnn, 1,000 test
  images), the unit of work that S1, S2, N2 and N3 repeat ~130 times per smoke setting on a cold
  run store (then cached).
- ``render_report``: drawing and embedding every figure of the fixed test results
  (``tests/data/results_v2.json``), as ``make claims`` does after the last test.

Run: ``pytest benchmarks/test_report_bench.py --benchmark-only``.
"""

import json
from pathlib import Path

import pytest
import torch

from harness import data as data_lib
from harness import settings
from harness.subspace import ENSEMBLE_SCALES, predict_states, sample
from harness.training import train
from reports import render

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "data" / "results_v2.json"


@pytest.fixture(scope="module")
def smoke_cnn():
    setting = settings.get("synthetic16-cnn")
    data = data_lib.load(setting.dataset)
    run = train(setting, seed=0, device="cpu", data=data)
    thetas = sample("random", run, 8, ENSEMBLE_SCALES, torch.Generator().manual_seed(0))
    return setting, run, thetas, data


def test_predict_samples(benchmark, smoke_cnn):
    setting, run, thetas, data = smoke_cnn
    probs = benchmark(predict_states, setting, run, thetas, data.test.x, train_x=data.train.x)
    assert probs.shape == (8, len(data.test.y), setting.dataset.num_classes)


def test_render_report(benchmark, tmp_path):
    results = json.loads(FIXTURE.read_text())
    written = benchmark(render.write_report, results, tmp_path)
    assert (tmp_path / "index.html").is_file() and written
