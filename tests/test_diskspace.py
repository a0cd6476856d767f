"""Tests of harness.diskspace (sizes, free space, DiskFullError) and of the disk estimate of fixtures.runs.

The store's and the derived files' use of it are tested in tests/test_store.py and
tests/test_derived.py (free space monkeypatched, writes failing with ENOSPC); here one integration
test per cache fills a real 3 MB tmpfs (root only; skipped with the reason elsewhere).
"""

from __future__ import annotations

import ast
import dataclasses
import errno
import os
import pickle
import re
import subprocess
from pathlib import Path

import pytest
import torch
from fake_runs import SETTING, make_run

from fixtures.options import RUNS_DIR_ENV
from fixtures.runs import DERIVED_CLAIMS, bytes_per_run, derived_bytes, derived_files, disk_estimate
from harness import data, diskspace, settings
from harness.diskspace import DiskFullError, check_free, eval_examples, format_bytes, is_disk_full, run_size
from harness.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
# The estimate of a run's entry is within this factor above what a real run writes (measured 1.01 on
# digits-mlp, 1.02 on its dry run: file blocks and a meta.json allowance).
ESTIMATE_SLACK = 1.1
# The synthetic two-class test split's size varies around its expected count (eval_examples) by ~1%.
EXPECTED_COUNT_TOLERANCE = 0.03
TINY_DISK = "3m"  # the runs folder of issue 25 that filled up


# ----------------------------------------------------------------------------------------------
# Pure parts


@pytest.mark.parametrize(("n_bytes", "text"), [(512, "0.5 kB"), (3 * 2**20, "3.0 MB"), (5 * 2**30 // 4, "1.25 GB")])
def test_format_bytes(n_bytes: int, text: str) -> None:
    assert format_bytes(n_bytes) == text


def test_on_disk_counts_whole_blocks_and_headers() -> None:
    assert diskspace.on_disk(0, 0) == diskspace.BLOCK_BYTES  # an 8-byte header still takes a block
    assert diskspace.on_disk(diskspace.BLOCK_BYTES, 1) == 2 * diskspace.BLOCK_BYTES


@pytest.mark.parametrize("err", [OSError(errno.ENOSPC, "No space left on device"),
                                 OSError(errno.EDQUOT, "Disk quota exceeded"),
                                 Exception("Error while serializing: I/O error: No space left on device (os error 28)")],
                         ids=["ENOSPC", "EDQUOT", "safetensors"])
def test_is_disk_full_recognises_full_disks(err: Exception) -> None:
    assert is_disk_full(err)


@pytest.mark.parametrize("err", [OSError(errno.EACCES, "Permission denied"), ValueError("no space in this name")],
                         ids=["EACCES", "ValueError"])
def test_is_disk_full_rejects_other_errors(err: Exception) -> None:
    assert not is_disk_full(err)


def test_free_bytes_of_a_folder_not_yet_created_is_its_disks(tmp_path: Path) -> None:
    free = diskspace.free_bytes(tmp_path / "runs" / "not" / "yet")
    assert free > 0 and not (tmp_path / "runs").exists()


def test_disk_full_error_names_the_folder_free_space_need_and_fix(tmp_path: Path) -> None:
    err = DiskFullError(tmp_path, 3 * 2**20, 30 * 2**20, "training digits-mlp seeds 0-4")
    message = str(err)
    assert message.startswith(f"the run store {tmp_path} has too little disk space for training digits-mlp seeds 0-4: "
                              "3.0 MB free there, ~30.0 MB needed. Fix: free space")
    assert "--runs-dir=DIR" in message and f"{RUNS_DIR_ENV}=DIR" in message  # the names the options read
    assert isinstance(err, OSError) and err.errno == errno.ENOSPC


def test_disk_full_error_survives_pickling(tmp_path: Path) -> None:
    # pytest-xdist and Ray send a worker's error to the controller pickled.
    err = DiskFullError(tmp_path, 1, 2, "writing the run of digits-mlp seed 3", "No space left on device")
    copy = pickle.loads(pickle.dumps(err))
    assert (str(copy), copy.root, copy.free, copy.needed) == (str(err), err.root, err.free, err.needed)


def test_check_free_raises_below_the_need_only(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(diskspace, "free_bytes", lambda path: 1000)
    check_free(tmp_path, 1000, "a thing")
    with pytest.raises(DiskFullError, match=re.escape(f"{tmp_path} has too little disk space for a thing: 1.0 kB free")):
        check_free(tmp_path, 1001, "a thing")


def test_disk_full_as_error_converts_only_full_disks(tmp_path: Path) -> None:
    with pytest.raises(DiskFullError, match=r"while writing x \(No space left on device; removed") as caught:
        with diskspace.disk_full_as_error(tmp_path, "writing x", 10):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert isinstance(caught.value.__cause__, OSError)
    with pytest.raises(PermissionError, match="denied"):
        with diskspace.disk_full_as_error(tmp_path, "writing x", 10):
            raise PermissionError(errno.EACCES, "denied")


# ----------------------------------------------------------------------------------------------
# What a run takes


@pytest.mark.parametrize("name", ["digits-mlp", "synthetic16-cnn"])
def test_eval_examples_is_the_test_split_size(name: str) -> None:
    spec = settings.get(name).dataset
    assert eval_examples(spec) == len(data.load(spec).test.y)


def test_eval_examples_of_a_class_selection_is_its_expected_share() -> None:
    spec = settings.get("synthetic16-binary-mlp").dataset
    n = len(data.load(spec).test.y)
    assert abs(eval_examples(spec) - n) <= EXPECTED_COUNT_TOLERANCE * n


def test_eval_examples_of_cifar_and_a_limit_without_the_data() -> None:
    assert eval_examples(settings.get("cifar10-catdog-smallcnn").dataset) == 2000  # 1,000 test images a class
    assert eval_examples(settings.dry_run(settings.get("cifar10-smallcnn")).dataset) == settings.DRY_RUN_DATA[1]


def test_run_size_counts_weights_window_and_arrays() -> None:
    # digits-mlp: 8,970 parameters; 17 saved epochs; 12 window snapshots; 540 test images, 10 classes.
    size = run_size(settings.get("digits-mlp"))
    assert size.n_params == 8970
    assert 17 * 8970 * 4 < size.weights < 17 * 8970 * 4 + 17 * 6 * diskspace.HEADER_BYTES_PER_TENSOR + 2 * 4096
    arrays = 4 * (17 * 540 * 10 + 540 * 10 + 12 * 8970) + 8 * 540 + 2 * 8 * 16
    assert arrays < size.arrays < arrays + 2 * 4096


def test_run_size_leaves_the_global_random_state_alone() -> None:
    before = torch.random.get_rng_state()
    run_size.__wrapped__(settings.get("synthetic16-cnn"))  # uncached: builds the model
    assert torch.equal(torch.random.get_rng_state(), before)


def entry_bytes(entry: Path) -> int:
    return sum(f.stat().st_size for f in entry.iterdir())


@pytest.mark.integration
def test_run_size_bounds_what_a_real_run_writes(tmp_path: Path) -> None:
    setting = settings.dry_run(settings.get("digits-mlp"))
    store = RunStore(tmp_path / "runs")
    store.get_or_train(setting, [0])  # trains the cohort of MIN_SEEDS seeds
    for seed in range(setting.recipe.cohort):
        written = entry_bytes(store.path(setting, seed))
        assert written <= run_size(setting).total <= ESTIMATE_SLACK * written


# ----------------------------------------------------------------------------------------------
# fixtures.runs: derived predictions and the printed estimate


def claims_with_derived_predictions() -> set[str]:
    """Claim ids of the claim tests that take one of fixtures.samples' factories as a fixture."""
    factories = {"sample_predictions", "weight_average_predictions", "window_predictions", "shifted_predictions"}
    found = set()
    for module in sorted((ROOT / "claims").glob("test_*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.FunctionDef) and {a.arg for a in node.args.args} & factories:
                found |= {kw.value.value for dec in node.decorator_list if isinstance(dec, ast.Call)
                          and getattr(dec.func, "attr", None) == "claim" for kw in dec.keywords if kw.arg == "id"}
    return found


def test_derived_claims_are_the_claims_that_use_derived_predictions() -> None:
    assert claims_with_derived_predictions() == DERIVED_CLAIMS


def test_derived_files_of_digits_mlp_follow_the_sample_counts() -> None:
    files = derived_files(settings.get("digits-mlp"))
    # 4 samplers x (8 ensemble + 8 band + 8 plane + 2 far samples), 12 window snapshots, 1 weight
    # average, 2 corruptions x 5 severities x (1 final + 4 late + 4 samples).
    assert sum(n for n, _ in files) == 4 * (8 + 8 + 8 + 2) + 12 + 1 + 2 * 5 * 9
    assert len(files) == 4 * 4 + 2 + 2 * 5


def test_a_setting_for_the_seed_variability_claims_derives_nothing() -> None:
    setting = settings.get("synthetic16-binary-mlp")
    assert derived_files(setting) == [] and derived_bytes(setting) == 0
    assert bytes_per_run(setting) == run_size(setting).total


def test_disk_estimate_says_now_and_the_most_decisions_can_grow_to() -> None:
    setting = settings.get("digits-mlp")
    per_run = bytes_per_run(setting)
    line = disk_estimate(setting, 5, 40, 40)
    assert line.startswith(f"digits-mlp: 5 runs to train now, ~{format_bytes(5 * per_run)} (~{format_bytes(per_run)} "
                           "a run: weights ")
    assert "derived predictions" in line
    assert line.endswith(f"; up to ~{format_bytes(40 * per_run)} if decisions grow to 40 seeds")
    assert "up to" not in disk_estimate(setting, 4, 4, 4)  # --seeds: one look, nothing grows


# ----------------------------------------------------------------------------------------------
# A real full disk: a 3 MB tmpfs (issue 25's runs folder)


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 3 MB tmpfs mounted at a temporary folder, unmounted afterwards; skips where it cannot be mounted."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for the full-disk test needs root (Linux); the unit tests simulate ENOSPC")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TINY_DISK}", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); "
                    "the unit tests simulate ENOSPC")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def big_run(setting, seed):
    """A fake run larger than the tiny disk (4 MB of window), though the setting's estimate fits."""
    return dataclasses.replace(make_run(setting, seed), window=torch.zeros(1, 2**20))


@pytest.mark.integration
def test_a_real_full_disk_gives_one_clear_error_and_leaves_nothing_half_written(tiny_disk: Path, monkeypatch) -> None:
    store = RunStore(tiny_disk / "runs", train_fn=big_run)
    with pytest.raises(DiskFullError, match=re.escape(f"the run store {store.root} ran out of disk space while "
                                                      f"writing the run of {SETTING.name} seed 0")) as caught:
        store.get_or_train(SETTING, [0])
    assert "--runs-dir=DIR" in str(caught.value) and caught.value.free > 3 * 2**20 * 9 // 10
    key = store.root / SETTING.cache_key()
    assert list(key.glob(".tmp-*")) == [] and not store.path(SETTING, 0).exists()

    # A derived file: the check before writing is skipped, so the write itself fills the disk.
    monkeypatch.setattr("harness.derived.check_free", lambda root, needed, what: None)
    with pytest.raises(DiskFullError, match="while writing the derived file samples-random of digits-mlp seed 0"):
        store.get_or_compute(SETTING, 0, "samples-random", {"n": 1}, lambda: {"probs": torch.zeros(2**20)})
    assert list(key.glob("derived/seed=0/.tmp-*")) == []
    assert not store.derived_path(SETTING, 0, "samples-random", {"n": 1}).exists()


@pytest.mark.integration
def test_a_real_tiny_disk_refuses_a_cohort_before_training(tiny_disk: Path) -> None:
    store = RunStore(tiny_disk / "runs")  # the real trainer: digits-mlp trains in cohorts of 5
    need = 5 * run_size(SETTING).total
    with pytest.raises(DiskFullError, match=re.escape("too little disk space for training digits-mlp seeds 0-4 "
                                                      "(a cohort of 5 seeds)")) as caught:
        store.get_or_train(SETTING, [0])
    assert caught.value.needed == need and store.trained == []
