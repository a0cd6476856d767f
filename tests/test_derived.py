"""Tests of harness.derived through RunStore.get_or_compute: cache hits, keys, bad input, damaged
files, failures, concurrency, and deletion when a run is stored anew.

Runs are fakes (tests/fake_runs.py). The concurrency test runs child Python processes that import
this module for their child.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import uuid
import warnings
from pathlib import Path

import pytest
import torch
from fake_runs import OTHER_SETTING, SETTING, SLOW_TRAIN_S, FakeTrainer, child_outputs, make_run

from harness import cachefiles
from harness.store import CorruptRunWarning, RunStore
from harness.training import DivergedError

DERIVED_PARAMS = {"sampler": "random", "n": 3, "scales": {"random": 0.2}, "sample_seed": 0}


def derived_tensors() -> dict[str, torch.Tensor]:
    """Tensors of several dtypes, one of them a non-contiguous view, as a compute callable returns."""
    gen = torch.Generator().manual_seed(7)
    return {"probs": torch.randn(3, 4, 5, generator=gen).softmax(-1).transpose(1, 2),
            "loss": torch.rand(3, generator=gen, dtype=torch.float64),
            "labels": torch.randint(0, 10, (4,), generator=gen)}


class CountingCompute:
    """A ``compute`` callable for get_or_compute that counts its calls and returns :func:`derived_tensors`."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dict[str, torch.Tensor]:
        self.calls += 1
        return derived_tensors()


def assert_tensors_equal(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert sorted(actual) == sorted(expected)
    for name, tensor in expected.items():
        got = actual[name]
        assert got.dtype == tensor.dtype and got.shape == tensor.shape and torch.equal(got, tensor), name


def derived_tmp_files(store: RunStore, seed: int = 0) -> list[Path]:
    return sorted((store.root / SETTING.cache_key() / "derived" / f"seed={seed}").glob(".tmp-*"))


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs", train_fn=FakeTrainer())


# ----------------------------------------------------------------------------------------------
# Cache, keys and bad input


def test_derived_path_is_under_the_run_and_keyed_by_params(store: RunStore) -> None:
    path = store.derived_path(SETTING, 2, "samples-random", DERIVED_PARAMS)
    assert path.parent == store.root / SETTING.cache_key() / "derived" / "seed=2"
    assert re.fullmatch(r"samples-random-[0-9a-f]{16}\.safetensors", path.name)
    # Keys are sorted before hashing: the order of a dict's items does not change the file.
    reordered = dict(reversed(list(DERIVED_PARAMS.items())))
    assert store.derived_path(SETTING, 2, "samples-random", reordered) == path
    assert store.derived_path(SETTING, 2, "samples-random", {**DERIVED_PARAMS, "n": 4}) != path
    assert store.derived_path(SETTING, 3, "samples-random", DERIVED_PARAMS) != path
    assert store.derived_path(OTHER_SETTING, 2, "samples-random", DERIVED_PARAMS) != path


def test_get_or_compute_computes_once_then_hits_the_cache(store: RunStore) -> None:
    compute = CountingCompute()
    first = store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, compute)
    assert compute.calls == 1
    assert store.derived_path(SETTING, 0, "samples-random", DERIVED_PARAMS).is_file()
    assert_tensors_equal(first, derived_tensors())

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a valid file is served without any warning
        second = store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, compute)
    assert compute.calls == 1
    assert_tensors_equal(second, first)
    assert derived_tmp_files(store) == []


def test_get_or_compute_reload_is_bit_identical(store: RunStore) -> None:
    first = store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, CountingCompute())
    compute = CountingCompute()
    reloaded = RunStore(store.root).get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, compute)
    assert compute.calls == 0
    assert_tensors_equal(reloaded, first)
    assert_tensors_equal(reloaded, derived_tensors())
    assert all(t.is_contiguous() for t in reloaded.values())


def test_get_or_compute_different_params_use_different_files(store: RunStore) -> None:
    compute = CountingCompute()
    other = {**DERIVED_PARAMS, "sample_seed": 1}
    store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, compute)
    store.get_or_compute(SETTING, 0, "samples-random", other, compute)
    assert compute.calls == 2
    files = sorted(p.name for p in store.derived_path(SETTING, 0, "samples-random", other).parent.iterdir()
                   if p.suffix == ".safetensors")
    assert len(files) == 2

    store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, compute)
    store.get_or_compute(SETTING, 0, "samples-random", other, compute)
    store.get_or_compute(SETTING, 1, "samples-random", other, compute)  # another seed: a miss
    store.get_or_compute(SETTING, 0, "samples-dropout", other, compute)  # another name: a miss
    assert compute.calls == 4


@pytest.mark.parametrize("name", ["", "a/b", "../escape", "samples.random", "two words"])
def test_get_or_compute_rejects_a_name_that_is_no_file_name(store: RunStore, name: str) -> None:
    compute = CountingCompute()
    with pytest.raises(ValueError, match=re.escape(f"name={name!r} is invalid")):
        store.get_or_compute(SETTING, 0, name, DERIVED_PARAMS, compute)
    assert compute.calls == 0
    assert not (store.root / SETTING.cache_key() / "derived").exists()


@pytest.mark.parametrize("params", [
    pytest.param({"scale": float("nan")}, id="nan"),
    pytest.param({"scale": float("inf")}, id="inf"),
    pytest.param({"nested": [1.0, float("-inf")]}, id="nested-inf"),
    pytest.param({"device": torch.device("cpu")}, id="not-json"),
    pytest.param({"tensor": torch.ones(2)}, id="tensor"),
])
def test_get_or_compute_rejects_params_json_cannot_hold(store: RunStore, params: dict) -> None:
    compute = CountingCompute()
    with pytest.raises(ValueError, match="params must be JSON-able with finite numbers"):
        store.get_or_compute(SETTING, 0, "samples-random", params, compute)
    assert compute.calls == 0


@pytest.mark.parametrize("seed", [-1, 1.5, None])
def test_get_or_compute_rejects_a_bad_seed(store: RunStore, seed) -> None:
    compute = CountingCompute()
    with pytest.raises(ValueError, match=re.escape(f"seed={seed!r} is invalid")):
        store.get_or_compute(SETTING, seed, "samples-random", DERIVED_PARAMS, compute)
    assert compute.calls == 0


# ----------------------------------------------------------------------------------------------
# Damaged files, failures, concurrency


def garbage(path: Path) -> None:
    path.write_bytes(b"not a safetensors file at all")


def empty(path: Path) -> None:
    path.write_bytes(b"")


def truncate_derived(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def cut_tensor_data(path: Path) -> None:
    # Header intact (params still match), the last tensor's bytes missing.
    os.truncate(path, path.stat().st_size - 8)


@pytest.mark.parametrize("damage", [garbage, empty, truncate_derived, cut_tensor_data])
def test_get_or_compute_recomputes_a_file_that_does_not_parse(store: RunStore, damage) -> None:
    compute = CountingCompute()
    store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, compute)
    path = store.derived_path(SETTING, 0, "samples-random", DERIVED_PARAMS)
    damage(path)

    with pytest.warns(CorruptRunWarning, match=re.escape(f"derived file {path}") + ".*recomputing it"):
        tensors = store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, compute)
    assert compute.calls == 2
    assert_tensors_equal(tensors, derived_tensors())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten file verifies cleanly
        assert_tensors_equal(RunStore(store.root).get_or_compute(
            SETTING, 0, "samples-random", DERIVED_PARAMS, compute), derived_tensors())
    assert compute.calls == 2


def test_a_flipped_byte_is_detected_set_aside_and_recomputed(store: RunStore) -> None:
    compute = CountingCompute()
    store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, compute)
    path = store.derived_path(SETTING, 0, "samples-random", DERIVED_PARAMS)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # inside the last tensor's bytes: the file still parses, its params still match
    path.write_bytes(bytes(data))

    with pytest.warns(CorruptRunWarning, match="do not match their stored sha256.*moved to .*corrupt.*recomputing"):
        tensors = store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, compute)
    assert compute.calls == 2
    assert_tensors_equal(tensors, derived_tensors())
    assert len(list((path.parent / ".corrupt").iterdir())) == 1


def test_a_file_without_a_digest_is_recomputed_quietly(store: RunStore) -> None:
    from safetensors.torch import save_file

    from harness.derived import _params_json

    path = store.derived_path(SETTING, 0, "samples-random", DERIVED_PARAMS)
    path.parent.mkdir(parents=True)
    save_file({"probs": torch.zeros(2, 2)}, path, metadata={"params": _params_json(DERIVED_PARAMS)})
    compute = CountingCompute()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_tensors_equal(store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, compute),
                             derived_tensors())
    assert compute.calls == 1


@pytest.mark.parametrize("metadata", [{"params": "other"}, None], ids=["other-params", "no-metadata"])
def test_get_or_compute_recomputes_a_file_with_other_stored_params(store: RunStore, metadata) -> None:
    from safetensors.torch import save_file

    path = store.derived_path(SETTING, 0, "samples-random", DERIVED_PARAMS)
    path.parent.mkdir(parents=True)
    save_file({"probs": torch.zeros(2, 2)}, path, metadata=metadata)
    compute = CountingCompute()

    with pytest.warns(CorruptRunWarning, match="its stored parameters differ from the request"):
        tensors = store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, compute)
    assert compute.calls == 1
    assert_tensors_equal(tensors, derived_tensors())
    assert_tensors_equal(RunStore(store.root).get_or_compute(
        SETTING, 0, "samples-random", DERIVED_PARAMS, compute), derived_tensors())
    assert compute.calls == 1


def test_get_or_compute_failure_propagates_and_stores_nothing(store: RunStore) -> None:
    def fail() -> dict[str, torch.Tensor]:
        raise DivergedError("sampled weights gave non-finite outputs")

    with pytest.raises(DivergedError, match="non-finite outputs"):
        store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, fail)
    assert not store.derived_path(SETTING, 0, "samples-random", DERIVED_PARAMS).exists()
    assert derived_tmp_files(store) == []

    compute = CountingCompute()  # the lock was released: the next call computes
    store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, compute)
    assert compute.calls == 1


def test_get_or_compute_write_failure_leaves_no_file(store: RunStore, monkeypatch) -> None:
    def write_half_then_fail(tensors, path, metadata=None):
        Path(path).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cachefiles, "save_file", write_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, CountingCompute())
    assert not store.derived_path(SETTING, 0, "samples-random", DERIVED_PARAMS).exists()
    assert derived_tmp_files(store) == []


def child_get_or_compute(root: str, markers: str, n_ready: int) -> None:
    """Concurrency child: wait until ``n_ready`` children are ready, then get_or_compute with a slow compute."""
    markers_dir = Path(markers)

    def slow_compute():
        (markers_dir / f"computed-{os.getpid()}-{uuid.uuid4().hex}").touch()
        time.sleep(SLOW_TRAIN_S)
        return derived_tensors()

    (markers_dir / f"ready-{os.getpid()}").touch()
    while len(list(markers_dir.glob("ready-*"))) < n_ready:
        time.sleep(0.01)
    tensors = RunStore(root).get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, slow_compute)
    print(hashlib.sha256(b"".join(tensors[k].numpy().tobytes() for k in sorted(tensors))).hexdigest(), flush=True)


@pytest.mark.integration
def test_two_processes_compute_a_derived_file_once(tmp_path: Path) -> None:
    root, markers = tmp_path / "runs", tmp_path / "markers"
    markers.mkdir()
    call = f"child_get_or_compute({str(root)!r}, {str(markers)!r}, 2)"
    outputs = child_outputs("test_derived", call)

    assert len(list(markers.glob("computed-*"))) == 1
    assert outputs[0] == outputs[1] and len(outputs[0]) == 64


def test_storing_a_new_run_deletes_the_derived_files_of_the_old_one(store: RunStore) -> None:
    store.get_or_train(SETTING, [0])
    derived = store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, CountingCompute())
    store.save(SETTING, make_run(SETTING, 0))  # an equal entry is kept: its derived files stay
    assert store.derived_path(SETTING, 0, "samples-random", DERIVED_PARAMS).exists()
    shutil.rmtree(store.path(SETTING, 0))  # the run is lost and retrained
    store.get_or_train(SETTING, [0])
    assert not store.derived_path(SETTING, 0, "samples-random", DERIVED_PARAMS).exists()
    compute = CountingCompute()
    assert_tensors_equal(store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, compute), derived)
    assert compute.calls == 1


# ----------------------------------------------------------------------------------------------
# A full disk (harness.diskspace): the computed tensors' room is checked, and a failed write removed


def test_too_little_room_for_a_derived_file_is_one_clear_error(store: RunStore, monkeypatch) -> None:
    from harness import diskspace
    from harness.diskspace import DiskFullError

    monkeypatch.setattr(diskspace, "free_bytes", lambda path: 1000)
    compute = CountingCompute()
    with pytest.raises(DiskFullError, match=re.escape(f"the run store {store.root} has too little disk space for "
                                                      "writing the derived file samples-random of digits-mlp seed 0")):
        store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, compute)
    assert compute.calls == 1
    assert not store.derived_path(SETTING, 0, "samples-random", DERIVED_PARAMS).exists()
    assert derived_tmp_files(store) == []


def test_a_derived_write_that_fills_the_disk_is_a_disk_full_error_and_leaves_no_tmp(store: RunStore,
                                                                                      monkeypatch) -> None:
    from harness.diskspace import DiskFullError

    def write_half_then_fail(tensors, path, metadata=None):
        Path(path).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cachefiles, "save_file", write_half_then_fail)
    with pytest.raises(DiskFullError, match=r"ran out of disk space while writing the derived file samples-random "
                                            r"of digits-mlp seed 0 \(No space left on device; removed: nothing "
                                            r"half-written is left\): .* free there, ~.* needed\. Fix: free space"):
        store.get_or_compute(SETTING, 0, "samples-random", DERIVED_PARAMS, CountingCompute())
    assert not store.derived_path(SETTING, 0, "samples-random", DERIVED_PARAMS).exists()
    assert derived_tmp_files(store) == []
