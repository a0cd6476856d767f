"""Tests of harness.store: bit-exact round trips, cache hits, fault detection, locking, crashes.

Runs are fakes (tests/fake_runs.py). The concurrency and crash tests run child Python processes
that import this module for their children.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
import uuid
import warnings
from pathlib import Path

import pytest
import torch
from fake_runs import CHILD_TIMEOUT_S, OTHER_SETTING, SETTING, SLOW_TRAIN_S, FakeTrainer, child_outputs, make_run, start_child

from harness import provenance, settings
from harness.store import ARRAY_FIELDS, ARRAYS_FILE, META_FILE, WEIGHTS_FILE, CorruptRunWarning, RunStore
from harness.training import DivergedError, Run


# ----------------------------------------------------------------------------------------------
# Children (module level: they run in processes started by start_child)


def run_digest(run: Run) -> str:
    """sha256 over every field of a run (names, dtypes, shapes, bytes, meta), for cross-process checks."""
    h = hashlib.sha256()
    h.update(json.dumps([run.setting_key, run.seed, run.init_seed, run.data_seed, run.meta]).encode())
    tensors = [(f"{e}/{n}", t) for e, state in run.weights.items() for n, t in state.items()]
    tensors += [(name, getattr(run, name)) for name in ARRAY_FIELDS]
    for name, t in tensors:
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def child_get_or_train(root: str, seed: int, markers: str, n_ready: int) -> None:
    """Concurrency child: wait until ``n_ready`` children are ready, then get_or_train with a slow trainer."""
    markers_dir = Path(markers)

    def slow_train(setting, seed):
        (markers_dir / f"trained-{os.getpid()}-{uuid.uuid4().hex}").touch()
        time.sleep(SLOW_TRAIN_S)
        return make_run(setting, seed)

    # A file barrier, so both processes ask at the same moment despite unequal start-up times.
    (markers_dir / f"ready-{os.getpid()}").touch()
    while len(list(markers_dir.glob("ready-*"))) < n_ready:
        time.sleep(0.01)
    (run,) = RunStore(root, train_fn=slow_train).get_or_train(SETTING, [seed])
    print(run_digest(run), flush=True)


def child_killed_mid_write(root: str, seed: int) -> None:
    """Crash child: save a run, but stop after the first tensor file and wait to be killed."""
    from harness import store

    write = store.write_tensor_file

    def write_then_hang(tensors, path):
        record = write(tensors, path)
        print("WRITING", path, flush=True)
        time.sleep(CHILD_TIMEOUT_S)
        return record

    store.write_tensor_file = write_then_hang
    RunStore(root).save(SETTING, make_run(SETTING, seed))


# ----------------------------------------------------------------------------------------------
# Helpers


def assert_runs_equal(actual: Run, expected: Run) -> None:
    assert (actual.setting_key, actual.seed, actual.init_seed, actual.data_seed) == (
        expected.setting_key, expected.seed, expected.init_seed, expected.data_seed)
    assert list(actual.weights) == list(expected.weights)
    for epoch, state in expected.weights.items():
        assert list(actual.weights[epoch]) == list(state)
        for name, tensor in state.items():
            got = actual.weights[epoch][name]
            assert got.dtype == tensor.dtype and torch.equal(got, tensor), f"weights {epoch}/{name} differ"
    for name in ARRAY_FIELDS:
        got, want = getattr(actual, name), getattr(expected, name)
        assert got.dtype == want.dtype and torch.equal(got, want), f"{name} differs"
    assert actual.meta == expected.meta


def corrupt_entries(store: RunStore, setting: settings.Setting = SETTING) -> list[Path]:
    return sorted((store.root / setting.cache_key() / ".corrupt").glob("seed=*"))


def tmp_folders(store: RunStore, setting: settings.Setting = SETTING) -> list[Path]:
    return sorted((store.root / setting.cache_key()).glob(".tmp-*"))


@pytest.fixture
def trainer() -> FakeTrainer:
    return FakeTrainer()


@pytest.fixture
def store(tmp_path: Path, trainer: FakeTrainer) -> RunStore:
    return RunStore(tmp_path / "runs", train_fn=trainer)


# ----------------------------------------------------------------------------------------------
# Round trip and cache


def test_save_load_round_trip_is_bit_identical(store: RunStore) -> None:
    run = make_run(SETTING, 3)
    entry = store.save(SETTING, run)

    assert entry == store.root / SETTING.cache_key() / "seed=3"
    assert sorted(p.name for p in entry.iterdir()) == sorted([WEIGHTS_FILE, ARRAYS_FILE, META_FILE])
    assert_runs_equal(store.load(SETTING, 3), run)


def test_meta_json_records_provenance_and_checksums(store: RunStore) -> None:
    run = make_run(SETTING, 0)
    entry = store.save(SETTING, run)
    meta = json.loads((entry / META_FILE).read_text())

    assert meta["setting"] == {"name": SETTING.name, "key": SETTING.cache_key(),
                               "spec": json.loads(json.dumps(SETTING.spec()))}
    assert (meta["seed"], meta["init_seed"], meta["data_seed"]) == (0, 100, 200)
    assert meta["run_meta"] == run.meta
    assert meta["versions"] == provenance.versions()
    assert meta["versions"]["torch"] == torch.__version__
    assert meta["git_commit"] == provenance.harness_git_info()["commit"]
    assert meta["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", meta["git_commit"])
    assert meta["created_utc"].endswith("+00:00")
    for name in (WEIGHTS_FILE, ARRAYS_FILE):
        data = (entry / name).read_bytes()
        assert meta["files"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def test_get_or_train_trains_missing_seeds_once_then_hits_cache(store, trainer) -> None:
    first = store.get_or_train(SETTING, [2, 0], device="cpu")
    assert trainer.calls == [(2, {"device": "cpu"}), (0, {"device": "cpu"})]
    assert [run.seed for run in first] == [2, 0]

    second = store.get_or_train(SETTING, [0, 1, 2], device="cpu")
    assert trainer.seeds == [2, 0, 1]  # only seed 1 was missing
    assert [run.seed for run in second] == [0, 1, 2]
    assert_runs_equal(second[0], first[1])
    assert_runs_equal(second[2], first[0])

    fresh = RunStore(store.root, train_fn=trainer).get_or_train(SETTING, [1, 2, 0])
    assert trainer.seeds == [2, 0, 1]
    assert [run.seed for run in fresh] == [1, 2, 0]


def test_different_settings_get_different_folders(store: RunStore) -> None:
    assert store.path(SETTING, 0) != store.path(OTHER_SETTING, 0)
    store.save(SETTING, make_run(SETTING, 0))
    assert store.load(OTHER_SETTING, 0) is None

    store.save(OTHER_SETTING, make_run(OTHER_SETTING, 0))
    assert store.load(OTHER_SETTING, 0).setting_key == OTHER_SETTING.cache_key()
    assert store.load(SETTING, 0).setting_key == SETTING.cache_key()


def test_save_keeps_an_existing_valid_entry(store: RunStore) -> None:
    first = make_run(SETTING, 0)
    store.save(SETTING, first)
    different = dataclasses.replace(make_run(SETTING, 1), seed=0)
    assert store.save(SETTING, different) == store.path(SETTING, 0)
    assert_runs_equal(store.load(SETTING, 0), first)


def test_views_and_shared_tensors_round_trip(store: RunStore) -> None:
    # A trainer that keeps state_dict views without cloning: shared storage, non-contiguous.
    run = make_run(SETTING, 0)
    shared = torch.arange(12.0).reshape(3, 4)
    weights = {0: {"w": shared.t(), "row": shared[1]}, 2: {"w": shared.t(), "row": shared[1]}}
    run = dataclasses.replace(run, weights=weights, eval_probs=run.eval_probs.transpose(1, 2))
    store.save(SETTING, run)
    assert_runs_equal(store.load(SETTING, 0), run)


def test_save_rejects_meta_that_json_cannot_hold(store: RunStore) -> None:
    run = dataclasses.replace(make_run(SETTING, 0), meta={"device": torch.device("cpu")})
    with pytest.raises(ValueError, match="run.meta must be JSON-serialisable"):
        store.save(SETTING, run)
    assert not store.path(SETTING, 0).exists()
    assert tmp_folders(store) == []


def test_save_rejects_a_run_of_another_setting(store: RunStore) -> None:
    with pytest.raises(ValueError, match=re.escape(f"does not match setting {SETTING.name!r}")):
        store.save(SETTING, make_run(OTHER_SETTING, 0))
    assert not store.path(SETTING, 0).exists()


# ----------------------------------------------------------------------------------------------
# Faults: every corrupt entry is detected, set aside with a warning, and retrained


def truncate_weights(entry: Path) -> None:
    path = entry / WEIGHTS_FILE
    os.truncate(path, path.stat().st_size // 2)


def flip_a_byte(entry: Path) -> None:
    # The last byte is tensor data, not the header: the file still parses, only the hash notices.
    path = entry / ARRAYS_FILE
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def delete_arrays(entry: Path) -> None:
    (entry / ARRAYS_FILE).unlink()


def corrupt_meta(entry: Path) -> None:
    path = entry / META_FILE
    path.write_text(path.read_text()[:-20])


def drop_meta_field(entry: Path) -> None:
    path = entry / META_FILE
    meta = json.loads(path.read_text())
    del meta["files"]
    path.write_text(json.dumps(meta))


def unlist_a_weight(entry: Path) -> None:
    # meta.json is not hashed; its weights index must still agree with the tensor file.
    path = entry / META_FILE
    meta = json.loads(path.read_text())
    meta["weights_index"][0][1][0] = "renamed.weight"
    path.write_text(json.dumps(meta))


FAULTS = [
    pytest.param(truncate_weights, r"weights\.safetensors has \d+ bytes, meta\.json records \d+",
                 id="truncated"),
    pytest.param(flip_a_byte, r"arrays\.safetensors sha256 .* does not match", id="flipped-byte"),
    pytest.param(delete_arrays, r"arrays\.safetensors is missing", id="missing-file"),
    pytest.param(corrupt_meta, r"meta\.json is not valid JSON", id="corrupt-meta"),
    pytest.param(drop_meta_field, r"meta\.json lacks the field 'files'", id="meta-field-missing"),
    pytest.param(unlist_a_weight, r"weights\.safetensors lacks the tensor 0/renamed\.weight",
                 id="meta-index-wrong"),
]


@pytest.mark.parametrize(("damage", "reason"), FAULTS)
def test_corrupt_entry_is_set_aside_and_retrained(store: RunStore, trainer: FakeTrainer, damage, reason):
    run = make_run(SETTING, 0)
    entry = store.save(SETTING, run)
    damage(entry)

    with pytest.warns(CorruptRunWarning, match=re.escape(str(entry)) + ".*" + reason):
        assert store.load(SETTING, 0) is None
    assert not entry.exists()
    (aside,) = corrupt_entries(store)
    assert aside.name.startswith("seed=0-")

    (retrained,) = store.get_or_train(SETTING, [0])
    assert trainer.seeds == [0]
    assert_runs_equal(retrained, run)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new entry verifies cleanly
        assert_runs_equal(RunStore(store.root).load(SETTING, 0), run)


def test_get_or_train_retrains_a_corrupt_entry(store: RunStore, trainer: FakeTrainer) -> None:
    entry = store.save(SETTING, make_run(SETTING, 0))
    flip_a_byte(entry)
    with pytest.warns(CorruptRunWarning, match="does not match"):
        (run,) = store.get_or_train(SETTING, [0])
    assert trainer.seeds == [0]
    assert_runs_equal(run, make_run(SETTING, 0))
    assert len(corrupt_entries(store)) == 1


def test_entry_copied_to_another_seed_is_rejected(store: RunStore) -> None:
    entry = store.save(SETTING, make_run(SETTING, 0))
    wrong = store.path(SETTING, 1)
    wrong.mkdir()
    for path in entry.iterdir():
        (wrong / path.name).write_bytes(path.read_bytes())

    with pytest.warns(CorruptRunWarning, match="meta.json is for seed 0, expected 1"):
        assert store.load(SETTING, 1) is None
    assert store.load(SETTING, 0) is not None


# ----------------------------------------------------------------------------------------------
# Concurrency and crashes


@pytest.mark.integration
def test_two_processes_train_a_run_once(tmp_path: Path) -> None:
    root, markers = tmp_path / "runs", tmp_path / "markers"
    markers.mkdir()
    call = f"child_get_or_train({str(root)!r}, 5, {str(markers)!r}, 2)"
    outputs = child_outputs("test_store", call)

    assert len(list(markers.glob("trained-*"))) == 1
    assert outputs[0] == outputs[1] == run_digest(RunStore(root).load(SETTING, 5))


@pytest.mark.integration
def test_process_killed_mid_write_leaves_no_entry(store: RunStore, trainer: FakeTrainer) -> None:
    child = start_child("test_store", f"child_killed_mid_write({str(store.root)!r}, 0)")
    try:
        line = child.stdout.readline()
        assert line.startswith("WRITING"), child.stderr.read() if not line else line
        (tmp,) = tmp_folders(store)
        assert (tmp / WEIGHTS_FILE).exists() and not (tmp / META_FILE).exists()
    finally:
        child.kill()
        child.communicate(timeout=CHILD_TIMEOUT_S)

    assert not store.path(SETTING, 0).exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an interrupted write is absent, not corrupt
        assert store.load(SETTING, 0) is None

    (run,) = store.get_or_train(SETTING, [0])  # the dead child's lock does not block us
    assert trainer.seeds == [0]
    assert_runs_equal(RunStore(store.root).load(SETTING, 0), run)
    assert tmp_folders(store) == []


def test_training_failure_propagates_and_stores_nothing(store: RunStore) -> None:
    def diverge(setting, seed):
        if seed == 1:
            raise DivergedError("loss is non-finite at epoch 3")
        return make_run(setting, seed)

    failing = RunStore(store.root, train_fn=diverge)
    with pytest.raises(DivergedError, match="non-finite at epoch 3"):
        failing.get_or_train(SETTING, [0, 1])

    assert failing.load(SETTING, 0) is not None  # the seed before the failure stays stored
    assert not store.path(SETTING, 1).exists()
    assert tmp_folders(store) == []


def test_train_fn_returning_the_wrong_seed_is_an_error(tmp_path: Path) -> None:
    wrong = RunStore(tmp_path, train_fn=lambda setting, seed: make_run(setting, seed + 1))
    with pytest.raises(ValueError, match="with seed 4 for seed 3"):
        wrong.get_or_train(SETTING, [3])
    assert not wrong.path(SETTING, 3).exists()


# ----------------------------------------------------------------------------------------------
# Bad input


def test_root_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "runs"
    path.write_text("not a folder")
    with pytest.raises(ValueError, match=re.escape(repr(str(path))) + " exists and is not a folder"):
        RunStore(path)


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True, None])
def test_bad_seed_is_rejected_before_training(store: RunStore, trainer: FakeTrainer, seed) -> None:
    with pytest.raises(ValueError, match=re.escape(f"seed={seed!r} is invalid: expected an int >= 0")):
        store.get_or_train(SETTING, [0, seed])
    assert trainer.calls == []
    with pytest.raises(ValueError, match=re.escape(f"seed={seed!r}")):
        store.path(SETTING, seed)


def test_runs_with_overridden_init_or_data_seed_are_not_stored(store: RunStore, trainer: FakeTrainer) -> None:
    with pytest.raises(ValueError, match=r"keys runs by seed and cannot store runs with data_seed, init_seed"):
        store.get_or_train(SETTING, [0], init_seed=1, data_seed=2)
    assert trainer.calls == [] and not store.path(SETTING, 0).exists()


# ----------------------------------------------------------------------------------------------
# A full disk (harness.diskspace): checked before training, and a write that fills it removes its folder


def little_room(monkeypatch, free: int = 1000) -> None:
    """Make the disk of every store look like it has ``free`` bytes."""
    from harness import diskspace

    monkeypatch.setattr(diskspace, "free_bytes", lambda path: free)


def test_too_little_room_stops_before_training(store: RunStore, trainer: FakeTrainer, monkeypatch) -> None:
    from harness.diskspace import DiskFullError, run_size

    little_room(monkeypatch)
    with pytest.raises(DiskFullError, match=re.escape(f"the run store {store.root} has too little disk space for "
                                                      "training digits-mlp seed 0: 1.0 kB free there")) as caught:
        store.get_or_train(SETTING, [0])
    assert caught.value.needed == run_size(SETTING).total and "--runs-dir=DIR" in str(caught.value)
    assert trainer.calls == [] and not store.path(SETTING, 0).exists()


def test_too_little_room_stops_a_cohort_before_training_counting_its_missing_members(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    from harness import store as store_module
    from harness.diskspace import DiskFullError, run_size

    cohorts = RunStore(tmp_path / "runs")  # the default trainer: digits-mlp trains in cohorts of 5
    for seed in (0, 1, 2):
        cohorts.save(SETTING, make_run(SETTING, seed))
    monkeypatch.setattr(store_module, "train_cohort", lambda *args, **kwargs: pytest.fail("trained without room"))
    little_room(monkeypatch)
    with pytest.raises(DiskFullError, match=re.escape("training digits-mlp seeds 3-4 (a cohort of 5 seeds)")) as caught:
        cohorts.get_or_train(SETTING, [3])
    assert caught.value.needed == 2 * run_size(SETTING).total
    assert cohorts.get_or_train(SETTING, [0, 1, 2])[2].seed == 2  # stored runs need no room


def no_space(kind: str) -> Exception:
    """The error a write raises on a full disk: an OSError, or safetensors' own (it hides the errno)."""
    import safetensors

    if kind == "oserror":
        return OSError(28, "No space left on device")
    return safetensors.SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


@pytest.mark.parametrize("kind", ["oserror", "safetensors"])
def test_a_write_that_fills_the_disk_leaves_nothing_half_written(store: RunStore, trainer: FakeTrainer, monkeypatch,
                                                                 kind: str) -> None:
    from harness import store as store_module
    from harness.diskspace import DiskFullError

    write = store_module.write_tensor_file

    def fill_disk_at_the_arrays(tensors, path, metadata=None):
        if Path(path).name == ARRAYS_FILE:
            Path(path).write_bytes(b"partial")
            raise no_space(kind)
        return write(tensors, path)

    monkeypatch.setattr(store_module, "write_tensor_file", fill_disk_at_the_arrays)
    with pytest.raises(DiskFullError, match=re.escape(f"the run store {store.root} ran out of disk space while writing "
                                                      "the run of digits-mlp seed 0 (")) as caught:
        store.get_or_train(SETTING, [0])
    assert "No space left on device" in str(caught.value) and "--runs-dir=DIR" in str(caught.value)
    assert tmp_folders(store) == [] and not store.path(SETTING, 0).exists()

    monkeypatch.setattr(store_module, "write_tensor_file", write)  # space freed: the next session stores it
    assert_runs_equal(store.get_or_train(SETTING, [0])[0], make_run(SETTING, 0))
    assert trainer.seeds == [0, 0]
