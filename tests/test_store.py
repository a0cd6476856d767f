"""Tests of harness.store: bit-exact round trips, cache hits, fault detection, locking, crashes.

Runs are fakes built from seeded random tensors; ``FakeTrainer`` stands in for
``harness.training.train`` and counts its calls. The concurrency and crash tests run child Python
processes that import this module for the fakes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import pytest
import torch

from harness import settings
from harness.store import ARRAY_FIELDS, ARRAYS_FILE, META_FILE, WEIGHTS_FILE, CorruptRunWarning, RunStore
from harness.training import DivergedError, Run

REPO = Path(__file__).resolve().parents[1]
SETTING = settings.get("digits-mlp")
OTHER_SETTING = settings.get("synthetic16-cnn")

# Shape of the fake runs: saved epochs, eval examples, classes. Small, so each test stays fast.
FAKE_EPOCHS = (0, 2, 4)
FAKE_N, FAKE_C = 7, 10
SLOW_TRAIN_S = 1.0  # the concurrent trainer's sleep: long enough that both processes overlap it
CHILD_TIMEOUT_S = 60


# ----------------------------------------------------------------------------------------------
# Fakes (module level: the child processes import them)


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

    write = store._write_tensor_file

    def write_then_hang(tensors, path):
        record = write(tensors, path)
        print("WRITING", path, flush=True)
        time.sleep(CHILD_TIMEOUT_S)
        return record

    store._write_tensor_file = write_then_hang
    RunStore(root).save(SETTING, make_run(SETTING, seed))


def start_child(call: str) -> subprocess.Popen:
    """Start ``python -c`` running ``call`` with this module importable as ``test_store``."""
    code = f"import test_store\ntest_store.{call}\n"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(Path(__file__).parent)])}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


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
    assert meta["versions"]["torch"] == torch.__version__
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


def test_two_processes_train_a_run_once(tmp_path: Path) -> None:
    root, markers = tmp_path / "runs", tmp_path / "markers"
    markers.mkdir()
    children = [start_child(f"child_get_or_train({str(root)!r}, 5, {str(markers)!r}, 2)") for _ in range(2)]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=CHILD_TIMEOUT_S)
        assert child.returncode == 0, err
        outputs.append(out.strip())

    assert len(list(markers.glob("trained-*"))) == 1
    assert outputs[0] == outputs[1] == run_digest(RunStore(root).load(SETTING, 5))


def test_process_killed_mid_write_leaves_no_entry(store: RunStore, trainer: FakeTrainer) -> None:
    child = start_child(f"child_killed_mid_write({str(store.root)!r}, 0)")
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
    with pytest.raises(ValueError, match=re.escape(f"seed={seed!r} is invalid: expected a non-negative int")):
        store.get_or_train(SETTING, [0, seed])
    assert trainer.calls == []
    with pytest.raises(ValueError, match=re.escape(f"seed={seed!r}")):
        store.path(SETTING, seed)


def test_runs_with_overridden_init_or_data_seed_are_not_stored(store: RunStore, trainer: FakeTrainer) -> None:
    with pytest.raises(ValueError, match=r"keys runs by seed and cannot store runs with data_seed, init_seed"):
        store.get_or_train(SETTING, [0], init_seed=1, data_seed=2)
    assert trainer.calls == [] and not store.path(SETTING, 0).exists()


# ----------------------------------------------------------------------------------------------
# Derived tensors: get_or_compute


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
    from harness import store as store_module

    def write_half_then_fail(tensors, path, metadata=None):
        Path(path).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module, "save_file", write_half_then_fail)
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


def test_two_processes_compute_a_derived_file_once(tmp_path: Path) -> None:
    root, markers = tmp_path / "runs", tmp_path / "markers"
    markers.mkdir()
    children = [start_child(f"child_get_or_compute({str(root)!r}, {str(markers)!r}, 2)") for _ in range(2)]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=CHILD_TIMEOUT_S)
        assert child.returncode == 0, err
        outputs.append(out.strip())

    assert len(list(markers.glob("computed-*"))) == 1
    assert outputs[0] == outputs[1] and len(outputs[0]) == 64


def test_storing_a_new_run_deletes_the_derived_files_of_the_old_one(store: RunStore, trainer) -> None:
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
