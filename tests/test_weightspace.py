"""Tests of harness.weightspace: weight vectors from models and runs, and known cosines.

Every cosine is also checked against a slow reference, and for each property the registry claims,
in test_metrics.py.
"""

from __future__ import annotations

import pytest
import torch

from harness import weightspace
from harness.training import Run
from harness.weightspace import cosine_similarity, pairwise_cosine, run_weight_vectors, weight_vector


def test_p1_seed_example_cosine_is_exactly_minus_two_fifteenths():
    """CLAIMS.md P1: (1, -3, 2, 1) and its permuted twin (-3, 1, 1, 2): dot -2, norms^2 15 and 15."""
    theta = torch.tensor([1.0, -3.0, 2.0, 1.0])
    assert cosine_similarity(theta, theta[[1, 0, 3, 2]]) == -2 / 15
    assert pairwise_cosine(torch.stack([theta, theta[[1, 0, 3, 2]]]))[0, 1].item() == -2 / 15


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(2, 3))


def test_weight_vector_of_a_module_equals_that_of_its_state_dict():
    model = tiny_model()
    for subset in weightspace.SUBSETS:
        assert torch.equal(weight_vector(model, subset), weight_vector(model.state_dict(), subset))
    kernels = model[0].weight.numel() + model[3].weight.numel()
    assert weight_vector(model).shape == (kernels,)
    # "all": every parameter (biases, BN scale and shift), never the running statistics.
    assert weight_vector(model, "all").shape == (sum(p.numel() for p in model.parameters()),)


def fake_run(epochs=(0, 1, 2)) -> Run:
    model = tiny_model()
    weights = {}
    for e in epochs:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        weights[e] = {k: v.clone() for k, v in model.state_dict().items()}
    n, c = 4, 3
    return Run(setting_key="fake", seed=0, init_seed=0, data_seed=0, weights=weights,
               eval_probs=torch.full((len(epochs), n, c), 1 / c), eval_labels=torch.zeros(n, dtype=torch.int64),
               final_logits=torch.zeros(n, c), window=torch.zeros(0, 1), train_loss=torch.zeros(len(epochs) - 1, dtype=torch.float64),
               train_acc=torch.zeros(len(epochs) - 1, dtype=torch.float64))


def test_run_weight_vectors_stacks_the_saved_epochs():
    run = fake_run()
    stacked = run_weight_vectors(run, "all")
    assert stacked.shape == (3, weight_vector(run.weights[0], "all").numel()) and stacked.dtype == torch.float64
    for row, e in zip(stacked, run.epochs):
        assert torch.equal(row, weight_vector(run.weights[e], "all"))
    assert torch.equal(run_weight_vectors(run, "all", epochs=(2, 0)), stacked[[2, 0]])
    assert run_weight_vectors(run).shape == (3, weight_vector(run.weights[0]).numel())


def test_weight_selection_errors():
    with pytest.raises(ValueError, match=r"subset='biases' is invalid: expected one of \('weights', 'all'\)"):
        weight_vector(tiny_model(), "biases")
    with pytest.raises(ValueError, match=r"no parameters in subset 'weights'"):
        weight_vector(torch.nn.BatchNorm1d(3))
    with pytest.raises(TypeError, match=r"state dict or an nn.Module; got list"):
        weight_vector([torch.ones(2, 2)])
    with pytest.raises(ValueError, match=r"no saved weights for epoch\(s\) \[7\]; saved epochs: \(0, 1, 2\)"):
        run_weight_vectors(fake_run(), epochs=(0, 7))
    with pytest.raises(ValueError, match=r"epochs is empty"):
        run_weight_vectors(fake_run(), epochs=())
