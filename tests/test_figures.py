"""Tests of fixtures.figures: the joint t-SNE figure of trajectories and subspace samples, on fake runs."""

import json
import math

import pytest
import torch

from fixtures.figures import function_space_figure
from harness.training import Run
from harness import figspec

EPOCHS, N, C = 3, 12, 4  # eval_probs (EPOCHS + 1, N, C): 4 checkpoints per run
SEEDS = (0, 3, 7)
SAMPLERS = ("random", "dropout")
K = 2  # samples per run and sampler


def fake_run(seed: int) -> Run:
    """A run with only what the figure reads: the seed and per-checkpoint test probabilities."""
    gen = torch.Generator().manual_seed(seed)
    return Run(setting_key="fake", seed=seed, init_seed=seed, data_seed=seed, weights={},
               eval_probs=torch.randn(EPOCHS + 1, N, C, generator=gen).softmax(-1),
               eval_labels=torch.randint(0, C, (N,), generator=gen), final_logits=torch.zeros(N, C), window=torch.zeros(0, 1),
               train_loss=torch.zeros(EPOCHS, dtype=torch.float64), train_acc=torch.zeros(EPOCHS, dtype=torch.float64))


def fake_samples(runs: list[Run]) -> dict[str, list[torch.Tensor]]:
    """``{sampler: [(K, N, C) per run]}``: each run's final predictions, slightly perturbed."""
    gen = torch.Generator().manual_seed(99)
    return {sampler: [(run.eval_probs[-1].log() + 0.1 * torch.randn(K, N, C, generator=gen)).softmax(-1)
                      for run in runs] for sampler in SAMPLERS}


@pytest.fixture(scope="module")
def runs() -> list[Run]:
    return [fake_run(seed) for seed in SEEDS]


def assert_points_are_finite(spec: dict) -> None:
    for s in spec["series"]:
        assert all(v is not None and math.isfinite(v) for v in s["x"] + s["y"]), s["label"]


def test_trajectories_only(runs):
    spec = function_space_figure(runs)

    assert figspec.validate(spec) is spec
    assert spec["kind"] == "xy" and spec["title"] == "Trajectories in function space (joint t-SNE)"
    assert (spec["xlabel"], spec["ylabel"]) == ("t-SNE 1", "t-SNE 2")
    assert spec["note"] == "lines: one run's checkpoints by epoch"
    assert [(s["label"], s["group"], s["style"]) for s in spec["series"]] == [
        (f"run {seed}", f"run {seed}", "line+points") for seed in SEEDS]
    assert [len(s["x"]) for s in spec["series"]] == [EPOCHS + 1] * len(SEEDS)
    assert_points_are_finite(spec)


def test_trajectories_and_samples(runs):
    spec = function_space_figure(runs, fake_samples(runs))

    assert figspec.validate(spec) is spec
    assert spec["title"] == "Trajectories and subspace samples in function space (joint t-SNE)"
    assert spec["note"] == "lines: one run's checkpoints by epoch; points: samples around it"
    expected = [(f"run {seed}", f"run {seed}", "line+points", EPOCHS + 1) for seed in SEEDS]
    # One point cloud per sampler and run, coloured (grouped) with its run.
    expected += [(f"{sampler} samples", f"run {seed}", "points", K) for sampler in SAMPLERS for seed in SEEDS]
    assert [(s["label"], s["group"], s["style"], len(s["x"])) for s in spec["series"]] == expected
    assert all(len(s["x"]) == len(s["y"]) for s in spec["series"])
    assert_points_are_finite(spec)
    assert figspec.validate(json.loads(json.dumps(spec, allow_nan=False))) == spec


def test_empty_sample_dict_is_like_no_samples(runs):
    spec = function_space_figure(runs[:2], {})
    assert spec["title"] == "Trajectories in function space (joint t-SNE)"
    assert [s["label"] for s in spec["series"]] == ["run 0", "run 3"]


def test_samples_and_trajectories_share_one_embedding(runs):
    # A run's trajectory points are embedded together with the samples: adding samples moves them.
    alone = function_space_figure(runs)
    together = function_space_figure(runs, fake_samples(runs))
    assert [s["x"] for s in together["series"][:len(runs)]] != [s["x"] for s in alone["series"]]
    assert function_space_figure(runs) == alone  # deterministic (fixed t-SNE seed)


def test_sample_lists_must_match_the_runs(runs):
    with pytest.raises(ValueError, match="holds 1 tensors for 3 runs"):
        function_space_figure(runs, {"random": [runs[0].eval_probs]})
