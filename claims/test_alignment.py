"""Independent solutions stay different functions after permutation alignment (P3).

P3's statement, source, threshold and decision text are in harness.catalog (CATALOG["P3"]). P1
and P2 (a permutation keeps the function; weight matching recovers a planted one) are property
tests of harness.symmetry and harness.matching (tests/test_symmetry.py, tests/test_matching.py).

How the decision is built, over pairs of seeds (i < j; run j is aligned onto run i by weight
matching, harness.matching, then harness.symmetry.permute):

- the aligned weight cosine minus the raw one > 0 (conv/dense kernels, as I1);
- the raw linear-interpolation loss barrier minus the aligned one > 0 (test split, N_POINTS points;
  BatchNorm statistics recomputed on the training split at every point, harness.interpolation);
- the disagreement of run i with the *aligned* run j (a permutation cannot change it: computing it
  from the aligned network checks that) minus I2's multiple of the late within-run disagreement
  (last two epochs) > 0: "still different functions, far more than late snapshots of one run".

Each is a mean over pairs with seed-bootstrap bounds (the third, like I2's, a difference of a
pairwise and a per-seed mean). Negative control: every "independent" run replaced by a randomly
permuted copy of the first run (aligned cosine 1, aligned barrier 0, disagreement 0): "still
different functions" must be refuted.

Each pair's statistics (claim and control) are kept in the run store (:func:`stored_pairs`,
:func:`stored_copy_pairs`), filed under run i's seed and naming run j: a warm session, or a look
that adds seeds, computes only the pairs it has not seen.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from fixtures.derived_cache import cached_across_runs
from fixtures.evidence import seed_schedule
from fixtures.options import get_options
from fixtures.runs import setting_params
from harness import data as data_lib
from harness import figspec
from harness import settings as settings_lib
from harness.catalog import CATALOG, I2_CROSS_OVER_WITHIN_MIN, P3_GAIN_MIN
from harness.diversity import disagreement, pairwise_disagreement
from harness.evidence import REFUTED, Evidence, bootstrap_criterion, pairwise_criterion
from harness.interpolation import interpolation_barrier
from harness.matching import weight_matching
from harness.models import build
from harness.sequential import decide_sequentially
from harness.stats import CONFIDENCE, pairwise_mean, resampled_mean, resampled_pairwise_mean
from harness.store import RunStore
from harness.symmetry import has_permutation_spec, permutation_spec, permute, random_permutation
from harness.training import Run, model_at, predict_proba, seeds_of
from harness.weightspace import cosine_similarity, weight_vector

# Points on each linear path (t = 0, 0.2, ..., 1): a barrier evaluates the model at every point
# (0.04 s per point for a SmallCNN on the 1,000 synthetic16 test images), for every pair of seeds.
N_POINTS = 6
# A dry run (harness.settings.dry_run) walks each path at t = 0, 0.5, 1: the same code, half the passes.
# Not a threshold: a dry run's verdicts judge nothing, and every other run keeps N_POINTS.
DRY_RUN_POINTS = 3
# Ranges of the statistics (not thresholds): differences of cosines, of barriers (nats), of disagreements.
COSINE_DIFFERENCE = (-2.0, 2.0)
DISAGREEMENT_DIFFERENCE = (-2.0, 1.0)
# Not a threshold: the negative control's copy k > 0 is permuted by the k-th draw of a generator with
# this seed (the seed the control always used, now named so that its cached pairs can be keyed by it).
COPIES_PERMUTATION_SEED = 0


# Bump when a pair's statistics change (weight matching, permute, the interpolation or its
# evaluation, the statistics kept): pairs cached in the run store under an older version are then
# recomputed, not read.
PAIR_VERSION = 1
# The scalar statistics of a pair, each a symmetric (S, S) matrix of pair_statistics.
PAIR_KEYS = ("raw_cos", "aligned_cos", "raw_barrier", "aligned_barrier", "disagreement")


def path_points(dry_run: bool) -> int:
    """Points on each linear path: N_POINTS, DRY_RUN_POINTS in a dry run."""
    return DRY_RUN_POINTS if dry_run else N_POINTS


def pair_statistic(model_i: torch.nn.Module, model_j: torch.nn.Module, test: data_lib.Split,
                   train_x: torch.Tensor, points: int) -> dict[str, torch.Tensor]:
    """Raw and aligned cosine and barrier, aligned disagreement and both loss curves of one pair.

    Model j is aligned onto model i (weight matching, then permute).

    Returns
    -------
    dict of str to torch.Tensor
        Each of :data:`PAIR_KEYS`: a 0-d float64 tensor; ``raw_loss``, ``aligned_loss``, ``t``:
        (points,) float64.
    """
    aligned = permute(model_j, weight_matching(model_i, model_j))
    raw = interpolation_barrier(model_i, model_j, test, points, bn_data=train_x)
    matched = interpolation_barrier(model_i, aligned, test, points, bn_data=train_x)
    values = (cosine_similarity(weight_vector(model_i), weight_vector(model_j)),
              cosine_similarity(weight_vector(model_i), weight_vector(aligned)),
              raw.loss_barrier, matched.loss_barrier,
              disagreement(predict_proba(model_i, test.x), predict_proba(aligned, test.x)))
    return ({key: torch.tensor(value, dtype=torch.float64) for key, value in zip(PAIR_KEYS, values)}
            | {"raw_loss": raw.loss, "aligned_loss": matched.loss, "t": raw.t})


def assemble_pairs(pairs: dict[tuple[int, int], dict[str, torch.Tensor]], n: int) -> dict:
    """:func:`pair_statistics`' dict from the :func:`pair_statistic` of every pair (i, j), i < j < n."""
    out = {k: np.zeros((n, n)) for k in PAIR_KEYS}
    order = [(i, j) for i in range(n) for j in range(i + 1, n)]
    for i, j in order:
        for key in PAIR_KEYS:
            out[key][i, j] = out[key][j, i] = pairs[i, j][key].item()
    curves = {key: np.array([pairs[p][key].numpy() for p in order]) for key in ("raw_loss", "aligned_loss")}
    return {**out, **curves, "t": pairs[order[-1]]["t"].numpy() if order else None}


# A cache of one pair: ``cached(i, j, points, compute) -> compute()'s dict``, read from a store when it holds it.
PairCache = Callable[[int, int, int, Callable[[], dict[str, torch.Tensor]]], dict[str, torch.Tensor]]


def pair_statistics(models: list[torch.nn.Module], test: data_lib.Split, train_x: torch.Tensor,
                    dry_run: bool = False, cached: PairCache | None = None) -> dict:
    """Raw and aligned cosine and barrier, aligned disagreement, and both loss curves, per pair i < j.

    Each path is evaluated at N_POINTS points (DRY_RUN_POINTS when ``dry_run``). With ``cached``,
    each pair's :func:`pair_statistic` goes through it (the run store: :func:`stored_pairs`).

    Returns
    -------
    dict
        ``raw_cos``, ``aligned_cos``, ``raw_barrier``, ``aligned_barrier``, ``disagreement``: symmetric
        (S, S) float64 matrices (0 on the diagonal); ``raw_loss``, ``aligned_loss``: (P, points), one
        row per pair; ``t``: (points,).
    """
    n, points = len(models), path_points(dry_run)
    pairs = {}
    for i in range(n):
        for j in range(i + 1, n):
            def compute(i=i, j=j) -> dict[str, torch.Tensor]:
                return pair_statistic(models[i], models[j], test, train_x, points)
            pairs[i, j] = compute() if cached is None else cached(i, j, points, compute)
    return assemble_pairs(pairs, n)


def stored_pairs(run_store: RunStore, setting: str, runs: list[Run]) -> PairCache:
    """The run store as :func:`pair_statistics`' cache of P3's pairs of ``runs``' final models.

    Pair (i, j) is filed under run i's seed, naming run j (seed and fingerprint), the points per
    path, whether the setting is a dry run's and :data:`PAIR_VERSION`: each pair is computed once
    across looks and sessions.
    """
    dry_run = settings_lib.get(setting).dry_run

    def cached(i: int, j: int, points: int, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        params = {"what": "P3 pair statistics", "points": points, "dry_run": dry_run, "version": PAIR_VERSION}
        return cached_across_runs(run_store, setting, [runs[i], runs[j]], "p3-pair", params, compute)

    return cached


def stored_copy_pairs(run_store: RunStore, setting: str, run: Run, permutation_seed: int) -> PairCache:
    """The run store as :func:`pair_statistics`' cache of the negative control's pairs: copies i and j
    of ``run``'s final model, copy k > 0 permuted by the k-th draw of a generator seeded ``permutation_seed``."""
    def cached(i: int, j: int, points: int, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        params = {"what": "P3 pair statistics of permuted copies", "copies": [i, j],
                  "permutation_seed": permutation_seed, "points": points, "version": PAIR_VERSION}
        return cached_across_runs(run_store, setting, [run], "p3-copies", params, compute)

    return cached


def p3_evidence(stats: dict, within: np.ndarray, setting: str, seeds: tuple[int, ...],
                level: float = CONFIDENCE) -> Evidence:
    """P3 on :func:`pair_statistics` and the late within-run disagreement of each run (S,)."""
    cross = stats["disagreement"]
    return Evidence(
        claim="P3", setting=setting, source=CATALOG["P3"].citation, seeds=seeds,
        criteria=(
            pairwise_criterion("aligned minus raw weight cosine", stats["aligned_cos"] - stats["raw_cos"],
                               P3_GAIN_MIN, ">", level=level, limits=COSINE_DIFFERENCE),
            pairwise_criterion("raw minus aligned loss barrier (nats)", stats["raw_barrier"] - stats["aligned_barrier"],
                               P3_GAIN_MIN, ">", level=level),
            bootstrap_criterion(
                f"disagreement with the aligned run minus {I2_CROSS_OVER_WITHIN_MIN} x late within-run disagreement",
                lambda idx: (resampled_pairwise_mean(cross, idx)
                             - I2_CROSS_OVER_WITHIN_MIN * resampled_mean(within, idx)),
                len(within), P3_GAIN_MIN, ">", level=level, limits=DISAGREEMENT_DIFFERENCE, min_distinct=3),
        ),
        details={key: pairwise_mean(stats[key]) for key in
                 ("raw_cos", "aligned_cos", "raw_barrier", "aligned_barrier", "disagreement")}
        | {"late_within_disagreement": within.tolist(), figspec.FIGURES_KEY: _figures(stats)},
    )


def _figures(stats: dict) -> list[dict]:
    iu = np.triu_indices(len(stats["raw_cos"]), 1)
    raw, aligned = stats["raw_cos"][iu], stats["aligned_cos"][iu]
    cosines = figspec.xy("Weight cosine per pair of seeds, before and after alignment",
                         [figspec.series("pairs", raw, aligned),
                          figspec.series("no change", [raw.min(), raw.max()], [raw.min(), raw.max()], style="line")],
                         "raw cosine", "aligned cosine")
    t = stats["t"]
    paths = figspec.xy("Test loss along the linear path (mean over pairs)",
                       [figspec.series("raw", t, stats["raw_loss"].mean(0), style="line+points"),
                        figspec.series("aligned (weight matching)", t, stats["aligned_loss"].mean(0),
                                       style="line+points")],
                       "t", "test loss (nats)")
    return [cosines, paths]


def late_within_disagreement(runs: list[Run]) -> np.ndarray:
    """Disagreement between each run's last two epochs, (S,)."""
    return np.array([pairwise_disagreement(r.eval_probs[-2:]).numpy()[0, 1] for r in runs])


def final_models(setting: str, runs: list[Run]) -> list[torch.nn.Module]:
    spec = settings_lib.get(setting)
    return [model_at(spec, r, spec.recipe.epochs) for r in runs]


def skip_without_permutation_spec(setting: str) -> None:
    """Skip, saying why, when the setting's model has no permutation spec (weight matching needs one)."""
    spec = settings_lib.get(setting)
    if not has_permutation_spec(build(spec.model, spec.dataset.input_shape, spec.dataset.num_classes)):
        pytest.skip(f"{setting}: P3 aligns hidden units, and harness.symmetry has no permutation spec for the "
                    f"model {spec.model.name!r} (it knows the built-in mlp, small_cnn, medium_cnn and resnet20)")


def _evidence_of(setting: str, runs: list[Run], level: float, data_root, run_store: RunStore) -> Evidence:
    spec = settings_lib.get(setting)
    data = data_lib.load(spec.dataset, data_root)
    stats = pair_statistics(final_models(setting, runs), data.test, data.train.x, spec.dry_run,
                            stored_pairs(run_store, setting, runs))
    return p3_evidence(stats, late_within_disagreement(runs), setting, seeds_of(runs), level)


@pytest.mark.claim(id="P3")
@pytest.mark.parametrize("setting", setting_params())
def test_p3_aligned_solutions_stay_different_functions(setting, decide_claim, pytestconfig, run_store):
    skip_without_permutation_spec(setting)
    data_root = get_options(pytestconfig).data_root
    decide_claim(setting, lambda runs, level: _evidence_of(setting, runs, level, data_root, run_store))


@pytest.mark.parametrize("setting", setting_params(("smoke",)))
def test_negative_control_p3_permuted_copies_are_refuted(setting, trained_runs, pytestconfig, run_store):
    # Decided as the claim is, with more seeds while inconclusive: on digits the late within-run
    # disagreement is 0 on some seeds, and 5 seeds do not always resolve 1.5 x its mean above 0
    # (seeds 2000-2004: -0.0067 [-0.010, 0.0034]).
    skip_without_permutation_spec(setting)
    opts = get_options(pytestconfig)
    data = data_lib.load(settings_lib.get(setting).dataset, opts.data_root)

    def at(n: int, level: float) -> Evidence:
        runs = trained_runs(setting, range(opts.seed_offset, opts.seed_offset + n))
        first = final_models(setting, runs[:1])[0]
        spec, generator = permutation_spec(first), torch.Generator().manual_seed(COPIES_PERMUTATION_SEED)
        models = [first] + [permute(first, random_permutation(spec, generator)) for _ in runs[1:]]
        stats = pair_statistics(models, data.test, data.train.x,
                                cached=stored_copy_pairs(run_store, setting, runs[0], COPIES_PERMUTATION_SEED))
        return p3_evidence(stats, late_within_disagreement(runs), setting, seeds_of(runs), level)

    evidence = decide_sequentially(at, seed_schedule(settings_lib.get(setting), opts.n_seeds))
    assert evidence.outcome == REFUTED, f"P3 not refuted on permuted copies of one run:\n{evidence.explain()}"
