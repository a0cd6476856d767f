"""On-disk run cache: atomic writes, one lock per run, checksums verified on every load.

(About 500 lines, all about runs: the layout, writing, verifying, loading and training each
run once; derived tensors are in :mod:`harness.derived`, shared file helpers in
:mod:`harness.cachefiles`, sizes and free space in :mod:`harness.diskspace`.)

Layout
------
Runs are keyed by :meth:`Setting.cache_key` (a hash of dataset, model, recipe and
:data:`harness.settings.STORE_VERSION`); the seed is a folder inside the key::

    <root>/<key>/seed=<s>/weights.safetensors   "<epoch>/<param name>" -> tensor, from Run.weights
    <root>/<key>/seed=<s>/arrays.safetensors    eval_probs, eval_labels, final_logits, window, train_loss, train_acc
    <root>/<key>/seed=<s>/meta.json             provenance, the weights index, sha256 + size per file
    <root>/<key>/seed=<s>.lock                  the run's lock file
    <root>/<key>/.tmp-seed=<s>-<pid>-<random>/  an entry being written (or abandoned by a crash)
    <root>/<key>/.corrupt/seed=<s>-<utc time>/  entries that failed verification, kept for inspection
    <root>/<key>/derived/                       tensors computed from the runs (:mod:`harness.derived`)

Tensors are stored with safetensors only (no pickle), so loading a cache from elsewhere cannot run
code, and dtypes come back exactly. ``meta.json`` records the order of epochs and of each state
dict's names, so a loaded :class:`~harness.training.Run` equals the stored one bit for bit.

Atomicity
---------
An entry is written in full into a temporary sibling folder (files fsynced, ``meta.json`` last),
which is then renamed to ``seed=<s>``. ``rename`` is atomic, so a reader sees either no entry or a
complete one, and a crash at any point leaves at most a ``.tmp-*`` folder, which the next writer of
that seed removes.

Cohorts
-------
A setting whose recipe trains seeds in cohorts (:attr:`harness.settings.Recipe.cohort` > 1) trains a
missing seed together with the rest of its cohort (:func:`harness.cohort.train_cohort`), under the
cohort's lock (``<root>/<key>/cohort=<first>-<last>.lock``), and stores every member that is
missing, so a later request for a member is a hit.

Disk space
----------
Before a run or a cohort trains, the store checks that the disk has room for it
(:func:`harness.diskspace.run_size` per run to store), and a disk that fills up while an entry is
written removes the temporary folder; both raise one :class:`harness.diskspace.DiskFullError` that
names the folder, the free space, the need and the fix (free space, or ``--runs-dir`` elsewhere).

Memory
------
A store keeps the runs it has loaded or trained in memory (up to :data:`MEMO_BYTES`), so a session
verifies each entry's checksums once; a later request for the run reads no file, only checks that
its ``meta.json`` is still the one loaded (inode, size, modification time): an entry replaced or
removed since is loaded again.

Locking
-------
Every write happens under the run's :class:`filelock.FileLock` (:class:`harness.cachefiles.Locks`).
:meth:`RunStore.get_or_train` first loads without the lock (the common, warm-cache path), and on a
miss takes the lock and looks again before training, so concurrent processes (pytest-xdist workers)
train each run once. The kernel releases the lock of a killed process, so a crash never blocks the
others.

Verification
------------
:meth:`RunStore.load` checks that ``meta.json`` parses and has the expected fields, that key and
seed match the request, and that both tensor files have the recorded size and sha256 and parse.
An entry that fails is moved to ``.corrupt/`` with a :class:`CorruptRunWarning` and treated as
absent, so it is retrained; it is never returned.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import secrets
import shutil
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from harness import derived
from harness.cachefiles import (
    CorruptRunWarning,
    InvalidEntry,
    Locks,
    file_digest,
    fsync_path,
    load_tensor_file,
    seed_folder,
    storable,
    write_tensor_file,
)
from harness.diskspace import check_free, disk_full_as_error, run_size, seed_span
from harness.provenance import harness_git_info, versions
from harness.settings import STORE_VERSION, Setting
from harness.validation import check_int
from harness.cohort import cohort_seeds, train_cohort
from harness.training import Run, train

WEIGHTS_FILE = "weights.safetensors"
ARRAYS_FILE = "arrays.safetensors"
META_FILE = "meta.json"
# Runs a store keeps in memory after loading or training them (oldest out first). 2 GiB holds a
# smoke session's runs many times over and ten gpu-tier ResNet20 runs (53 MB each).
MEMO_BYTES = 2 * 2**30
ARRAY_FIELDS = ("eval_probs", "eval_labels", "final_logits", "window", "train_loss", "train_acc")

# Top-level fields of meta.json and their JSON types; load rejects an entry missing any of them.
META_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format_version": int,
    "setting": dict,
    "seed": int,
    "init_seed": int,
    "data_seed": int,
    "run_meta": dict,
    "weights_index": list,
    "files": dict,
    "versions": dict,
    "git_commit": (str, type(None)),
    "created_utc": str,
}

# ----------------------------------------------------------------------------------------------
# Small pure helpers


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _canonical_meta(meta: object) -> dict:
    """``meta`` after a JSON round trip: what :meth:`RunStore.load` will give back.

    Raises
    ------
    ValueError
        If ``meta`` is not a dict that JSON can encode.
    """
    if not isinstance(meta, dict):
        raise ValueError(f"run.meta must be a dict, got {type(meta).__name__}")
    try:
        return json.loads(json.dumps(meta))
    except (TypeError, ValueError) as err:
        expected = "str keys; numbers, strings, lists and dicts as values"
        raise ValueError(f"run.meta must be JSON-serialisable ({expected}): {err}") from None


def _flatten_weights(weights: dict[int, dict[str, torch.Tensor]]) -> tuple[dict[str, torch.Tensor], list]:
    """Weights as safetensors-ready tensors named ``"<epoch>/<name>"``, and the index that restores them.

    The index is ``[[epoch, [name, ...]], ...]`` in the run's order, so epochs and state-dict
    names come back in their original order (and an epoch with an empty state dict survives).
    """
    tensors: dict[str, torch.Tensor] = {}
    index = []
    for epoch, state in weights.items():
        epoch = check_int("weights epoch", epoch, 0)
        for name, tensor in state.items():
            tensors[f"{epoch}/{name}"] = storable(tensor)
        index.append([epoch, list(state)])
    return tensors, index


def _unflatten_weights(tensors: dict[str, torch.Tensor], index: list) -> dict[int, dict[str, torch.Tensor]]:
    """Inverse of :func:`_flatten_weights`; raises :class:`InvalidEntry` if file and index disagree."""
    remaining = dict(tensors)
    weights: dict[int, dict[str, torch.Tensor]] = {}
    for item in index:
        if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is int
                and isinstance(item[1], list) and all(isinstance(name, str) for name in item[1])):
            raise InvalidEntry(f"meta.json has a malformed weights_index entry {item!r}")
        epoch, names = item
        if epoch in weights:
            raise InvalidEntry(f"meta.json lists epoch {epoch} twice in weights_index")
        state = {}
        for name in names:
            tensor_name = f"{epoch}/{name}"
            if tensor_name not in remaining:
                raise InvalidEntry(f"{WEIGHTS_FILE} lacks the tensor {tensor_name} that meta.json lists")
            state[name] = remaining.pop(tensor_name)
        weights[epoch] = state
    if remaining:
        extra = sorted(remaining)[:5]
        raise InvalidEntry(f"{WEIGHTS_FILE} has tensors that meta.json does not list, e.g. {extra}")
    return weights


def _check_meta(meta: object, key: str, seed: int) -> None:
    """Raise :class:`InvalidEntry` unless ``meta`` has the expected fields, version, key and seed."""
    if not isinstance(meta, dict):
        raise InvalidEntry(f"meta.json holds a {type(meta).__name__}, expected an object")
    for field, types in META_FIELDS.items():
        if field not in meta:
            raise InvalidEntry(f"meta.json lacks the field {field!r}")
        value = meta[field]
        if isinstance(value, bool) or not isinstance(value, types):
            raise InvalidEntry(f"meta.json field {field!r} is a {type(value).__name__}, expected {types}")
    if meta["format_version"] != STORE_VERSION:
        raise InvalidEntry(f"meta.json format_version is {meta['format_version']}, expected {STORE_VERSION}")
    if meta["setting"].get("key") != key:
        raise InvalidEntry(f"meta.json is for setting key {meta['setting'].get('key')!r}, expected {key!r}")
    if meta["seed"] != seed:
        raise InvalidEntry(f"meta.json is for seed {meta['seed']}, expected {seed}")
    for name in (WEIGHTS_FILE, ARRAYS_FILE):
        record = meta["files"].get(name)
        if not (isinstance(record, dict) and isinstance(record.get("sha256"), str)
                and type(record.get("bytes")) is int):
            raise InvalidEntry(f"meta.json lacks the sha256 and size of {name}")


def _run_bytes(run: Run) -> int:
    """Bytes of a run's tensors (what keeping it in memory costs)."""
    tensors = [t for state in run.weights.values() for t in state.values()]
    tensors += [getattr(run, name) for name in ARRAY_FIELDS]
    return sum(t.numel() * t.element_size() for t in tensors)


# ----------------------------------------------------------------------------------------------
# Entries


def _write_entry(folder: Path, setting: Setting, run: Run) -> None:
    """Write a complete entry for ``run`` into the empty ``folder``; meta.json last."""
    tensors, index = _flatten_weights(run.weights)
    files = {WEIGHTS_FILE: write_tensor_file(tensors, folder / WEIGHTS_FILE)}
    arrays = {name: storable(getattr(run, name)) for name in ARRAY_FIELDS}
    files[ARRAYS_FILE] = write_tensor_file(arrays, folder / ARRAYS_FILE)
    meta = {
        "format_version": STORE_VERSION,
        "setting": {"name": setting.name, "key": setting.cache_key(), "spec": setting.spec()},
        "seed": check_int("seed", run.seed, 0),
        "init_seed": check_int("init_seed", run.init_seed, 0),
        "data_seed": check_int("data_seed", run.data_seed, 0),
        "run_meta": _canonical_meta(run.meta),
        "weights_index": index,
        "files": files,
        "versions": versions(),
        "git_commit": harness_git_info()["commit"],
        "created_utc": _utc_now().isoformat(),
    }
    meta_path = folder / META_FILE
    # meta.json is the entry's table of contents: written last, it exists only if the files do.
    meta_path.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    fsync_path(meta_path)
    fsync_path(folder)


def _read_entry(entry: Path, key: str, seed: int) -> Run | None:
    """The run stored in ``entry``; None if there is no entry; :class:`InvalidEntry` if it fails checks."""
    if not os.path.lexists(entry):
        return None
    try:
        meta = json.loads((entry / META_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidEntry(f"{META_FILE} is missing") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidEntry(f"{META_FILE} cannot be read: {err}") from None
    except json.JSONDecodeError as err:
        raise InvalidEntry(f"{META_FILE} is not valid JSON: {err}") from None
    _check_meta(meta, key, seed)
    loaded = {}
    for name in (WEIGHTS_FILE, ARRAYS_FILE):
        path = entry / name
        record = meta["files"][name]
        try:
            sha256, size = file_digest(path)
        except FileNotFoundError:
            raise InvalidEntry(f"{name} is missing") from None
        except OSError as err:
            raise InvalidEntry(f"{name} cannot be read: {err}") from None
        if size != record["bytes"]:
            raise InvalidEntry(f"{name} has {size} bytes, meta.json records {record['bytes']} "
                               "(truncated or partial)")
        if sha256 != record["sha256"]:
            raise InvalidEntry(f"{name} sha256 {sha256[:12]}... does not match "
                               f"meta.json's {record['sha256'][:12]}...")
        loaded[name] = load_tensor_file(path)
    arrays = loaded[ARRAYS_FILE]
    if set(arrays) != set(ARRAY_FIELDS):
        raise InvalidEntry(f"{ARRAYS_FILE} holds {sorted(arrays)}, expected {sorted(ARRAY_FIELDS)}")
    return Run(
        setting_key=key,
        seed=meta["seed"],
        init_seed=meta["init_seed"],
        data_seed=meta["data_seed"],
        weights=_unflatten_weights(loaded[WEIGHTS_FILE], meta["weights_index"]),
        **{name: arrays[name] for name in ARRAY_FIELDS},
        meta=meta["run_meta"],
    )


# ----------------------------------------------------------------------------------------------
# The store


class RunStore:
    """A folder of trained runs, keyed by setting and seed, and of tensors derived from them
    (:meth:`get_or_compute`); safe for concurrent processes.

    Parameters
    ----------
    root : str or os.PathLike
        The cache folder; created on the first write. It must not be an existing file.
    train_fn : callable, optional
        ``train_fn(setting, seed, **train_kwargs) -> Run``, called by :meth:`get_or_train` on a
        miss. Default: :func:`harness.training.train`, or :func:`harness.cohort.train_cohort` for
        the cohort of a setting whose ``recipe.cohort`` > 1. A ``train_fn`` given (a test's fake)
        trains every miss, one seed at a time.

    Attributes
    ----------
    trained : list of tuple of (str, int)
        (setting name, seed) of every run this store trained, in order: a sweep reports them.

    Raises
    ------
    ValueError
        If ``root`` exists and is not a folder.
    """

    def __init__(self, root: str | os.PathLike, *, train_fn: Callable[..., Run] | None = None) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"run store root {str(self.root)!r} exists and is not a folder; "
                             "pass a folder path (it is created if absent)")
        self._train_fn = train if train_fn is None else train_fn
        self._by_cohort = train_fn is None
        self._lock = Locks()  # of runs (<root>/<key>/seed=<s>.lock), cohorts and derived files
        self._memo: dict[tuple[str, int], tuple[Run, int, tuple]] = {}  # (key, seed) -> (run, bytes, stamp)
        self.trained: list[tuple[str, int]] = []

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def path(self, setting: Setting, seed: int) -> Path:
        """The entry folder of ``setting`` and ``seed``: ``<root>/<setting.cache_key()>/seed=<seed>``.

        Raises
        ------
        ValueError
            If ``seed`` is not a non-negative int.
        """
        return self.root / setting.cache_key() / seed_folder(seed)

    def load(self, setting: Setting, seed: int) -> Run | None:
        """The stored run of ``setting`` and ``seed``, or None if there is none.

        An entry that fails verification is moved to ``<root>/<key>/.corrupt/`` with a
        :class:`CorruptRunWarning` naming it and the reason, and None is returned: a run that
        failed verification is never returned.
        """
        entry = self.path(setting, seed)
        key = setting.cache_key()
        try:
            return _read_entry(entry, key, seed)
        except InvalidEntry:
            pass
        # Look again under the lock before moving anything: another process may have set the
        # entry aside and stored a good one since our unlocked read, and that one must stay.
        with self._lock(entry):
            try:
                return _read_entry(entry, key, seed)
            except InvalidEntry as err:
                reason = str(err)
            destination = self._set_aside(entry)
        message = f"corrupt run entry {entry}: {reason}; moved to {destination} (get_or_train retrains it)"
        warnings.warn(message, CorruptRunWarning, stacklevel=2)
        return None

    def save(self, setting: Setting, run: Run) -> Path:
        """Store ``run`` atomically and return its entry folder.

        Runs are identified by setting and seed: if a valid entry for ``run.seed`` already exists
        it is kept and ``run`` is discarded (an invalid one is set aside with a warning first).

        Raises
        ------
        ValueError
            If ``run`` belongs to another setting, its seeds are not non-negative ints, or its
            meta is not JSON-serialisable.
        harness.diskspace.DiskFullError
            If the disk fills up while the entry is written (the temporary folder is removed).
        """
        key = setting.cache_key()
        if run.setting_key != key:
            raise ValueError(f"run.setting_key={run.setting_key!r} does not match setting "
                             f"{setting.name!r} (cache key {key!r})")
        entry = self.path(setting, run.seed)
        with self._lock(entry):
            if self.load(setting, run.seed) is not None:
                return entry
            # Under the lock no live process is writing this seed, so any temporary folder for it
            # was left by a crash.
            for stale in entry.parent.glob(f".tmp-{entry.name}-*"):
                shutil.rmtree(stale, ignore_errors=True)
            tmp = entry.parent / f".tmp-{entry.name}-{os.getpid()}-{secrets.token_hex(4)}"
            what = f"writing the run of {setting.name} seed {run.seed}"
            with disk_full_as_error(self.root, what, _run_bytes(run)):
                try:
                    tmp.mkdir()
                    _write_entry(tmp, setting, run)
                    os.rename(tmp, entry)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)  # no-op after a successful rename
                fsync_path(entry.parent)  # make the rename itself durable
            # Tensors derived from an earlier run of this seed (set aside as corrupt, or deleted by
            # hand) belong to other weights wherever training is not bitwise reproducible (GPUs).
            derived.discard(self.root, key, run.seed)
        return entry

    def get_or_train(self, setting: Setting, seeds: Iterable[int], **train_kwargs) -> list[Run]:
        """The runs of ``setting`` for ``seeds``, in that order, training and storing missing ones.

        Each run is trained at most once across concurrent processes sharing ``root``. A
        training error (e.g. :class:`harness.training.DivergedError`) propagates and stores
        nothing for that seed; runs of earlier seeds stay stored.

        Parameters
        ----------
        setting : Setting
        seeds : iterable of int
            Non-negative ints; all are checked before anything is trained.
        **train_kwargs
            Passed to ``train_fn`` on a miss (e.g. ``device``).

        Raises
        ------
        ValueError
            If a seed is not a non-negative int, or ``train_fn`` returns a run of another
            setting or seed.
        harness.diskspace.DiskFullError
            Before a run (or a cohort) trains, if the disk has less room than its estimated size
            (:func:`harness.diskspace.run_size`); or if the disk fills up while a run is written.
        """
        seeds = [check_int("seed", seed, 0) for seed in seeds]
        overridden = sorted({"init_seed", "data_seed"} & set(train_kwargs))
        if overridden:
            # Entries are keyed by the run seed alone; a run with other init/data seeds stored
            # under it would later be served as the plain run of that seed.
            raise ValueError(f"get_or_train keys runs by seed and cannot store runs with {', '.join(overridden)} "
                             "overridden; call harness.training.train directly for such runs")
        key, runs = setting.cache_key(), []
        for seed in seeds:
            run = self._recall(setting, seed) or self.load(setting, seed)
            if run is None and self._by_cohort and setting.recipe.cohort > 1:
                run = self._train_cohort(setting, seed, train_kwargs)
            elif run is None:
                with self._lock(self.path(setting, seed)):
                    # Another process may have trained it while we waited for the lock.
                    run = self.load(setting, seed)
                    if run is None:
                        check_free(self.root, run_size(setting).total, f"training {setting.name} seed {seed}")
                        run = self._train_and_save(setting, seed, train_kwargs)
            self._remember(setting, run)
            runs.append(run)
        return runs

    def derived_path(self, setting: Setting, seed: int, name: str, params: dict) -> Path:
        """File of the tensors ``name`` derived from a run with ``params``: :func:`harness.derived.path`."""
        return derived.path(self.root, setting, seed, name, params)

    def get_or_compute(self, setting: Setting, seed: int, name: str, params: dict,
                       compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Tensors computed from the run of ``setting`` and ``seed``, cached beside it (``compute()`` on a
        miss): :func:`harness.derived.get_or_compute`."""
        return derived.get_or_compute(self.root, self._lock, setting, seed, name, params, compute)

    # ------------------------------------------------------------------------------------------

    def _train_and_save(self, setting: Setting, seed: int, train_kwargs: dict) -> Run:
        run = self._train_fn(setting, seed, **train_kwargs)
        if not isinstance(run, Run) or run.seed != seed:
            raise ValueError(f"train_fn returned {type(run).__name__} with seed "
                             f"{getattr(run, 'seed', None)!r} for seed {seed}; expected a Run of that seed")
        return self._keep(setting, run)

    def _keep(self, setting: Setting, run: Run) -> Run:
        """Store a freshly trained ``run`` and return what a later load returns (its meta after JSON)."""
        run = dataclasses.replace(run, meta=_canonical_meta(run.meta))
        self.save(setting, run)
        self.trained.append((setting.name, run.seed))
        return run

    def _train_cohort(self, setting: Setting, seed: int, train_kwargs: dict) -> Run:
        """The run of ``seed``, training its whole cohort under the cohort's lock and storing the missing members."""
        members = cohort_seeds(seed, setting.recipe.cohort)
        key = setting.cache_key()
        with self._lock(self.root / key / f"cohort={members[0]}-{members[-1]}"):
            # Under the lock: another process may have trained the cohort while we waited.
            stored = {s: self.load(setting, s) for s in members}
            missing = [s for s, run in stored.items() if run is None]
            if missing:
                check_free(self.root, len(missing) * run_size(setting).total,
                           f"training {setting.name} {seed_span(missing)} (a cohort of {len(members)} seeds)")
                for run in train_cohort(setting, members, **train_kwargs):
                    if stored[run.seed] is None:
                        stored[run.seed] = self._keep(setting, run)
        for run in stored.values():
            self._remember(setting, run)
        return stored[seed]

    def _stamp(self, setting: Setting, seed: int) -> tuple | None:
        """(inode, size, mtime) of the entry's meta.json, None without one: what identifies the stored entry."""
        try:
            st = os.stat(self.path(setting, seed) / META_FILE)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def _recall(self, setting: Setting, seed: int) -> Run | None:
        """The run kept in memory, if the entry on disk is still the one it was loaded from."""
        hit = self._memo.get((setting.cache_key(), seed))
        if hit is None or hit[2] != self._stamp(setting, seed):
            return None
        return hit[0]

    def _remember(self, setting: Setting, run: Run) -> None:
        """Keep ``run`` in memory, dropping the oldest runs past :data:`MEMO_BYTES`."""
        stamp = self._stamp(setting, run.seed)
        if stamp is None:  # not stored (a fake train_fn's store that failed to write): nothing to check it by
            return
        self._memo[(setting.cache_key(), run.seed)] = (run, _run_bytes(run), stamp)
        total = sum(n for _, n, _ in self._memo.values())
        for old in list(self._memo):
            if total <= MEMO_BYTES:
                break
            total -= self._memo.pop(old)[1]

    @staticmethod
    def _set_aside(entry: Path) -> Path:
        """Move a failed entry to ``.corrupt/`` (kept for inspection, out of the lookup path)."""
        stamp = _utc_now().strftime("%Y%m%dT%H%M%S.%fZ")
        destination = entry.parent / ".corrupt" / f"{entry.name}-{stamp}"
        destination.parent.mkdir(exist_ok=True)
        os.rename(entry, destination)
        return destination
