"""Tests of harness.ensembles on hand-computable cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from harness.ensembles import ensemble_probs, subset_curves
from harness.scoring import brier_score_loss, nll


def _random_probs(m: int, n: int, c: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(m, n, c, generator=g, dtype=torch.float64) + 0.01
    return p / p.sum(-1, keepdim=True)


def _labels(n: int, c: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(seed))


def _accuracy(p: torch.Tensor, y: torch.Tensor) -> float:
    return (p.argmax(-1) == y).double().mean().item()


@pytest.mark.parametrize("combiner,trim", [("mean", None), ("vote", None), ("trimmed_mean", 0.2)])
def test_ensemble_of_identical_members_is_the_member(combiner, trim):
    member = _random_probs(1, 7, 3)[0]
    out = ensemble_probs(member.expand(5, 7, 3).numpy(), combiner, trim)
    expected = torch.nn.functional.one_hot(member.argmax(-1), 3).double() if combiner == "vote" else member
    assert torch.allclose(out, expected)


def test_mean_averages_probabilities():
    p = np.array([[[1.0, 0.0]], [[0.5, 0.5]]])
    assert torch.allclose(ensemble_probs(p), torch.tensor([[0.75, 0.25]], dtype=torch.float64))


def test_vote_counts_argmax_and_keeps_ties_as_equal_fractions():
    a, b, c = [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.5, 0.0]  # c: argmax tie -> class 0
    p = np.array([[a], [b], [c], [b]])
    out = ensemble_probs(p, "vote")
    assert torch.allclose(out, torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64))
    assert out.argmax(-1).item() == 0  # a tie of the vote goes to the lowest class index


def test_trimmed_mean_drops_the_extremes_and_renormalises():
    # Five members, trim 0.2: floor(0.2 * 5) = 1 dropped at each end, per class.
    class0 = [0.0, 0.2, 0.4, 0.6, 1.0]
    p = np.array([[[v, 1 - v]] for v in class0])
    out = ensemble_probs(p, "trimmed_mean", trim=0.2)
    # Class 0 keeps 0.2, 0.4, 0.6 (mean 0.4); class 1 keeps 0.8, 0.6, 0.4 (mean 0.6).
    assert torch.allclose(out, torch.tensor([[0.4, 0.6]], dtype=torch.float64))
    # An outlier member cannot move it: replacing the extreme 1.0 by 0.7 changes nothing.
    p2 = p.copy()
    p2[4] = [[0.7, 0.3]]
    assert torch.allclose(ensemble_probs(p2, "trimmed_mean", trim=0.2), out)
    # trim 0.1 drops floor(0.5) = 0 members: the mean.
    assert torch.allclose(ensemble_probs(p, "trimmed_mean", trim=0.1), ensemble_probs(p))


def test_trimmed_mean_renormalises_rows_and_makes_empty_rows_uniform():
    p = np.array([[[0.9, 0.1, 0.0]], [[0.1, 0.6, 0.3]], [[0.2, 0.2, 0.6]]])
    out = ensemble_probs(p, "trimmed_mean", trim=0.34)  # medians 0.2, 0.2, 0.3 -> / 0.7
    assert torch.allclose(out, torch.tensor([[2 / 7, 2 / 7, 3 / 7]], dtype=torch.float64))
    one_hot = np.eye(3)[:, None, :]  # three members, each certain of a different class
    assert torch.allclose(ensemble_probs(one_hot, "trimmed_mean", trim=0.34), torch.full((1, 3), 1 / 3).double())


def test_subset_curves_ends_are_members_mean_and_full_ensemble():
    p, y = _random_probs(5, 40, 4), _labels(40, 4)
    curves = subset_curves(p, y)
    assert curves.sizes == (1, 2, 3, 4, 5)
    assert curves.n_subsets == (5, 10, 10, 5, 1) and all(curves.exhaustive)
    assert curves.accuracy[0] == pytest.approx(np.mean([_accuracy(q, y) for q in p]))
    assert curves.brier[0] == pytest.approx(np.mean([brier_score_loss(q, y) for q in p]))
    assert curves.nll[0] == pytest.approx(np.mean([nll(q, y) for q in p]))
    full = ensemble_probs(p)
    assert curves.accuracy[-1] == pytest.approx(_accuracy(full, y))
    assert curves.brier[-1] == pytest.approx(brier_score_loss(full, y))
    assert curves.nll[-1] == pytest.approx(nll(full, y))
    assert curves.accuracy_std[-1] == curves.brier_std[-1] == curves.nll_std[-1] == 0


def test_subset_curves_middle_size_against_a_loop_over_subsets():
    p, y = _random_probs(4, 30, 3), _labels(30, 3)
    values = [_accuracy(ensemble_probs(p[list(s)]), y) for s in itertools.combinations(range(4), 2)]
    curves = subset_curves(p, y)
    assert curves.accuracy[1] == pytest.approx(np.mean(values))
    assert curves.accuracy_std[1] == pytest.approx(np.std(values))


def test_subset_curves_with_the_vote_combiner():
    p, y = _random_probs(3, 30, 3), _labels(30, 3)
    curves = subset_curves(p, y, combiner="vote")
    assert curves.accuracy[0] == pytest.approx(np.mean([_accuracy(q, y) for q in p]))
    assert curves.accuracy[-1] == pytest.approx(_accuracy(ensemble_probs(p, "vote"), y))


def test_sampled_subsets_are_seeded():
    p, y = _random_probs(6, 50, 4), _labels(50, 4)
    exhaustive = subset_curves(p, y)  # the largest size count, C(6, 3) = 20, is <= 256
    sampled = subset_curves(p, y, max_subsets=10, seed=3)
    assert all(exhaustive.exhaustive) and exhaustive.n_subsets == (6, 15, 20, 15, 6, 1)
    assert sampled.exhaustive == (True, False, False, False, True, True)
    assert sampled.n_subsets == (6, 10, 10, 10, 6, 1)
    assert sampled == subset_curves(p, y, max_subsets=10, seed=3)
    assert sampled != subset_curves(p, y, max_subsets=10, seed=4)
    for k in (0, 4, 5):  # enumerated in both: identical
        assert sampled.accuracy[k] == exhaustive.accuracy[k] and sampled.nll[k] == exhaustive.nll[k]


def test_sampled_subsets_agree_with_the_exhaustive_mean():
    # C(12, 6) = 924 subsets of size 6: all of them, or 900 uniform draws. The draws' mean lies
    # within 4 standard errors of the exhaustive mean (deterministic: the sample is seeded).
    p, y = _random_probs(12, 50, 4), _labels(50, 4)
    exhaustive = subset_curves(p, y, max_subsets=924)
    sampled = subset_curves(p, y, max_subsets=900)
    assert exhaustive.exhaustive[5] and not sampled.exhaustive[5]
    for key in ("accuracy", "brier", "nll"):
        mean, sd = getattr(exhaustive, key)[5], getattr(exhaustive, f"{key}_std")[5]
        assert getattr(sampled, key)[5] == pytest.approx(mean, abs=4 * sd / np.sqrt(900))
        assert getattr(sampled, f"{key}_std")[5] == pytest.approx(sd, rel=0.2)


@pytest.mark.parametrize("kwargs,message", [
    ({"probs": np.ones((3, 2)) / 2}, r"shape \(M, N, C\)"),
    ({"probs": np.ones((0, 2, 2))}, "empty"),
    ({"probs": np.ones((2, 3, 2))}, "sum to 1"),
    ({"probs": np.full((2, 3, 2), np.nan)}, "NaN"),
    ({"combiner": "median"}, "combiner='median' is invalid"),
    ({"combiner": "trimmed_mean"}, "trim=None is invalid"),
    ({"combiner": "trimmed_mean", "trim": 0.5}, r"trim=0.5 is invalid: .*\[0, 0.5\)"),
    ({"combiner": "mean", "trim": 0.1}, "trim applies to combiner='trimmed_mean' only"),
])
def test_ensemble_probs_validation(kwargs, message):
    args = {"probs": np.full((2, 3, 2), 0.5)} | kwargs
    with pytest.raises(ValueError, match=message):
        ensemble_probs(**args)


@pytest.mark.parametrize("labels,kwargs,message", [
    (np.array([0, 1]), {}, "same number of examples; got 3 and 2"),
    (np.array([0, 1, 2]), {}, r"class labels in \[0, 2\)"),
    (np.array([0.0, 1.0, 1.0]), {}, "integer class labels"),
    (np.array([0, 1, 1]), {"max_subsets": 0}, "max_subsets=0 is invalid"),
    (np.array([0, 1, 1]), {"combiner": "max"}, "combiner='max' is invalid"),
])
def test_subset_curves_validation(labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        subset_curves(np.full((2, 3, 2), 0.5), labels, **kwargs)
