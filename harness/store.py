"""On-disk run cache: atomic writes, one lock per run, checksums verified on every load.

Layout
------
Runs are keyed by :meth:`Setting.cache_key` (a hash of dataset, model, recipe and
:data:`harness.settings.STORE_VERSION`); the seed is a folder inside the key::

    <root>/<key>/seed=<s>/weights.safetensors   "<epoch>/<param name>" -> tensor, from Run.weights
    <root>/<key>/seed=<s>/arrays.safetensors    eval_probs, eval_labels, window, train_loss, train_acc
    <root>/<key>/seed=<s>/meta.json             provenance, the weights index, sha256 + size per file
    <root>/<key>/seed=<s>.lock                  the run's lock file
    <root>/<key>/.tmp-seed=<s>-<pid>-<random>/  an entry being written (or abandoned by a crash)
    <root>/<key>/.corrupt/seed=<s>-<utc time>/  entries that failed verification, kept for inspection
    <root>/<key>/derived/seed=<s>/<name>-<hash>.safetensors   tensors computed from a run
                                                (:meth:`RunStore.get_or_compute`, e.g. predictions of
                                                sampled weights), keyed by a hash of their parameters

Tensors are stored with safetensors only (no pickle), so loading a cache from elsewhere cannot run
code, and dtypes come back exactly. ``meta.json`` records the order of epochs and of each state
dict's names, so a loaded :class:`~harness.training.Run` equals the stored one bit for bit.

Atomicity
---------
An entry is written in full into a temporary sibling folder (files fsynced, ``meta.json`` last),
which is then renamed to ``seed=<s>``. ``rename`` is atomic, so a reader sees either no entry or a
complete one, and a crash at any point leaves at most a ``.tmp-*`` folder, which the next writer of
that seed removes.

Locking
-------
Every write happens under the run's :class:`filelock.FileLock`. :meth:`RunStore.get_or_train`
first loads without the lock (the common, warm-cache path), and on a miss takes the lock and looks
again before training, so concurrent processes (pytest-xdist workers) train each run once. The
kernel releases the lock of a killed process, so a crash never blocks the others.

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
import functools
import hashlib
import json
import numbers
import os
import platform
import secrets
import shutil
import subprocess
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy
import safetensors
import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file

from harness.settings import STORE_VERSION, Setting
from harness.training import Run, train

WEIGHTS_FILE = "weights.safetensors"
ARRAYS_FILE = "arrays.safetensors"
META_FILE = "meta.json"
DERIVED_DIR = "derived"
ARRAY_FIELDS = ("eval_probs", "eval_labels", "window", "train_loss", "train_acc")

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

_HASH_CHUNK = 1 << 20  # 1 MiB: large enough that hashing runs at sha256 speed, not syscall speed
_GIT_TIMEOUT_S = 5.0


class CorruptRunWarning(UserWarning):
    """A corrupt or partial cache entry was moved to ``.corrupt/`` and will be retrained."""


class _InvalidEntry(Exception):
    """An entry failed verification; the message is the reason shown in the warning."""


# ----------------------------------------------------------------------------------------------
# Small pure helpers


def _non_negative_int(value: object, name: str = "seed") -> int:
    """``value`` as an int if it is a non-negative integer (numpy ones too); else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name}={value!r} is invalid: expected a non-negative int")
    return int(value)


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
        epoch = _non_negative_int(epoch, "weights epoch")
        for name, tensor in state.items():
            tensors[f"{epoch}/{name}"] = _storable(tensor)
        index.append([epoch, list(state)])
    return tensors, index


def _storable(tensor: torch.Tensor) -> torch.Tensor:
    # safetensors refuses non-contiguous tensors and tensors that share storage (views, tied
    # weights, a state dict saved without cloning); a contiguous CPU copy is always accepted.
    return tensor.detach().to("cpu").clone(memory_format=torch.contiguous_format)


def _unflatten_weights(tensors: dict[str, torch.Tensor], index: list) -> dict[int, dict[str, torch.Tensor]]:
    """Inverse of :func:`_flatten_weights`; raises :class:`_InvalidEntry` if file and index disagree."""
    remaining = dict(tensors)
    weights: dict[int, dict[str, torch.Tensor]] = {}
    for item in index:
        if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is int
                and isinstance(item[1], list) and all(isinstance(name, str) for name in item[1])):
            raise _InvalidEntry(f"meta.json has a malformed weights_index entry {item!r}")
        epoch, names = item
        if epoch in weights:
            raise _InvalidEntry(f"meta.json lists epoch {epoch} twice in weights_index")
        state = {}
        for name in names:
            tensor_name = f"{epoch}/{name}"
            if tensor_name not in remaining:
                raise _InvalidEntry(f"{WEIGHTS_FILE} lacks the tensor {tensor_name} that meta.json lists")
            state[name] = remaining.pop(tensor_name)
        weights[epoch] = state
    if remaining:
        extra = sorted(remaining)[:5]
        raise _InvalidEntry(f"{WEIGHTS_FILE} has tensors that meta.json does not list, e.g. {extra}")
    return weights


def _check_meta(meta: object, key: str, seed: int) -> None:
    """Raise :class:`_InvalidEntry` unless ``meta`` has the expected fields, version, key and seed."""
    if not isinstance(meta, dict):
        raise _InvalidEntry(f"meta.json holds a {type(meta).__name__}, expected an object")
    for field, types in META_FIELDS.items():
        if field not in meta:
            raise _InvalidEntry(f"meta.json lacks the field {field!r}")
        value = meta[field]
        if isinstance(value, bool) or not isinstance(value, types):
            raise _InvalidEntry(f"meta.json field {field!r} is a {type(value).__name__}, expected {types}")
    if meta["format_version"] != STORE_VERSION:
        raise _InvalidEntry(f"meta.json format_version is {meta['format_version']}, expected {STORE_VERSION}")
    if meta["setting"].get("key") != key:
        raise _InvalidEntry(f"meta.json is for setting key {meta['setting'].get('key')!r}, expected {key!r}")
    if meta["seed"] != seed:
        raise _InvalidEntry(f"meta.json is for seed {meta['seed']}, expected {seed}")
    for name in (WEIGHTS_FILE, ARRAYS_FILE):
        record = meta["files"].get(name)
        if not (isinstance(record, dict) and isinstance(record.get("sha256"), str)
                and type(record.get("bytes")) is int):
            raise _InvalidEntry(f"meta.json lacks the sha256 and size of {name}")


# ----------------------------------------------------------------------------------------------
# File I/O


def _file_digest(path: Path) -> tuple[str, int]:
    """sha256 hex digest and size in bytes of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


def _fsync_path(path: Path) -> None:
    """Flush a file's, or a folder's entries', data to disk (folders: POSIX only)."""
    if path.is_dir() and os.name != "posix":
        return  # Windows cannot open a folder for fsync; its renames are journaled metadata anyway
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_tensor_file(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> dict:
    """Write ``tensors`` (and text ``metadata``) to a safetensors file, fsync it, and return its
    ``{"sha256", "bytes"}``."""
    save_file(tensors, path, metadata=metadata)
    _fsync_path(path)
    sha256, size = _file_digest(path)
    return {"sha256": sha256, "bytes": size}


def _load_tensor_file(path: Path) -> dict[str, torch.Tensor]:
    """Parse a verified safetensors file; raises :class:`_InvalidEntry` if it does not parse."""
    try:
        mapped = load_file(path)
    except (safetensors.SafetensorError, OSError) as err:
        raise _InvalidEntry(f"{path.name} does not parse as safetensors: {err}") from None
    # load_file memory-maps the file: tensors left backed by it would change, or crash the process
    # with SIGBUS, if the file were altered later. Copies make the run independent of the file.
    return {name: tensor.clone() for name, tensor in mapped.items()}


@functools.cache
def _git_commit() -> str | None:
    """Commit of the repository holding this file, or None (no git, not a checkout, timeout)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and commit else None


def _params_json(params: dict) -> str:
    """Canonical JSON of derived-tensor parameters (sorted keys), the text their hash is taken of."""
    try:
        return json.dumps(params, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"params must be JSON-able with finite numbers: {err}") from None


def _read_derived(path: Path, expected_params: str) -> dict[str, torch.Tensor]:
    """The tensors of a derived file; :class:`_InvalidEntry` if it is absent, does not parse, or
    holds other parameters."""
    try:
        with safetensors.safe_open(path, "pt") as f:
            stored = (f.metadata() or {}).get("params")
    except FileNotFoundError:
        raise _InvalidEntry("absent") from None
    except (safetensors.SafetensorError, OSError) as err:
        raise _InvalidEntry(f"does not parse as safetensors: {err}") from None
    if stored != expected_params:
        raise _InvalidEntry("its stored parameters differ from the request (hash collision or edited file)")
    return _load_tensor_file(path)


def _versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "safetensors": safetensors.__version__,
    }


def _write_entry(folder: Path, setting: Setting, run: Run) -> None:
    """Write a complete entry for ``run`` into the empty ``folder``; meta.json last."""
    tensors, index = _flatten_weights(run.weights)
    files = {WEIGHTS_FILE: _write_tensor_file(tensors, folder / WEIGHTS_FILE)}
    arrays = {name: _storable(getattr(run, name)) for name in ARRAY_FIELDS}
    files[ARRAYS_FILE] = _write_tensor_file(arrays, folder / ARRAYS_FILE)
    meta = {
        "format_version": STORE_VERSION,
        "setting": {"name": setting.name, "key": setting.cache_key(), "spec": setting.spec()},
        "seed": _non_negative_int(run.seed),
        "init_seed": _non_negative_int(run.init_seed, "init_seed"),
        "data_seed": _non_negative_int(run.data_seed, "data_seed"),
        "run_meta": _canonical_meta(run.meta),
        "weights_index": index,
        "files": files,
        "versions": _versions(),
        "git_commit": _git_commit(),
        "created_utc": _utc_now().isoformat(),
    }
    meta_path = folder / META_FILE
    # meta.json is the entry's table of contents: written last, it exists only if the files do.
    meta_path.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    _fsync_path(meta_path)
    _fsync_path(folder)


def _read_entry(entry: Path, key: str, seed: int) -> Run | None:
    """The run stored in ``entry``; None if there is no entry; :class:`_InvalidEntry` if it fails checks."""
    if not os.path.lexists(entry):
        return None
    try:
        meta = json.loads((entry / META_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _InvalidEntry(f"{META_FILE} is missing") from None
    except (OSError, UnicodeDecodeError) as err:
        raise _InvalidEntry(f"{META_FILE} cannot be read: {err}") from None
    except json.JSONDecodeError as err:
        raise _InvalidEntry(f"{META_FILE} is not valid JSON: {err}") from None
    _check_meta(meta, key, seed)
    loaded = {}
    for name in (WEIGHTS_FILE, ARRAYS_FILE):
        path = entry / name
        record = meta["files"][name]
        try:
            sha256, size = _file_digest(path)
        except FileNotFoundError:
            raise _InvalidEntry(f"{name} is missing") from None
        except OSError as err:
            raise _InvalidEntry(f"{name} cannot be read: {err}") from None
        if size != record["bytes"]:
            raise _InvalidEntry(f"{name} has {size} bytes, meta.json records {record['bytes']} "
                                "(truncated or partial)")
        if sha256 != record["sha256"]:
            raise _InvalidEntry(f"{name} sha256 {sha256[:12]}... does not match "
                                f"meta.json's {record['sha256'][:12]}...")
        loaded[name] = _load_tensor_file(path)
    arrays = loaded[ARRAYS_FILE]
    if set(arrays) != set(ARRAY_FIELDS):
        raise _InvalidEntry(f"{ARRAYS_FILE} holds {sorted(arrays)}, expected {sorted(ARRAY_FIELDS)}")
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
    """A folder of trained runs, keyed by setting and seed; safe for concurrent processes.

    Parameters
    ----------
    root : str or os.PathLike
        The cache folder; created on the first write. It must not be an existing file.
    train_fn : callable, optional
        ``train_fn(setting, seed, **train_kwargs) -> Run``, called by :meth:`get_or_train` on a
        miss. Default: :func:`harness.training.train`.

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
        self._locks: dict[Path, FileLock] = {}

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def path(self, setting: Setting, seed: int) -> Path:
        """The entry folder of ``setting`` and ``seed``: ``<root>/<setting.cache_key()>/seed=<seed>``.

        Raises
        ------
        ValueError
            If ``seed`` is not a non-negative int.
        """
        return self.root / setting.cache_key() / f"seed={_non_negative_int(seed)}"

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
        except _InvalidEntry:
            pass
        # Look again under the lock before moving anything: another process may have set the
        # entry aside and stored a good one since our unlocked read, and that one must stay.
        with self._lock(entry):
            try:
                return _read_entry(entry, key, seed)
            except _InvalidEntry as err:
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
            tmp.mkdir()
            try:
                _write_entry(tmp, setting, run)
                os.rename(tmp, entry)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)  # no-op after a successful rename
            _fsync_path(entry.parent)  # make the rename itself durable
            # Tensors derived from an earlier run of this seed (set aside as corrupt, or deleted by
            # hand) belong to other weights wherever training is not bitwise reproducible (GPUs).
            shutil.rmtree(self.root / key / DERIVED_DIR / entry.name, ignore_errors=True)
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
        """
        seeds = [_non_negative_int(seed) for seed in seeds]
        overridden = sorted({"init_seed", "data_seed"} & set(train_kwargs))
        if overridden:
            # Entries are keyed by the run seed alone; a run with other init/data seeds stored
            # under it would later be served as the plain run of that seed.
            raise ValueError(f"get_or_train keys runs by seed and cannot store runs with {', '.join(overridden)} "
                             "overridden; call harness.training.train directly for such runs")
        runs = []
        for seed in seeds:
            run = self.load(setting, seed)
            if run is None:
                with self._lock(self.path(setting, seed)):
                    # Another process may have trained it while we waited for the lock.
                    run = self.load(setting, seed)
                    if run is None:
                        run = self._train_and_save(setting, seed, train_kwargs)
            runs.append(run)
        return runs

    def derived_path(self, setting: Setting, seed: int, name: str, params: dict) -> Path:
        """File of the tensors ``name`` derived from a run with ``params`` (see :meth:`get_or_compute`)."""
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"name={name!r} is invalid: use letters, digits, '-' and '_' (it names a file)")
        digest = hashlib.sha256(_params_json(params).encode()).hexdigest()[:16]
        folder = self.root / setting.cache_key() / DERIVED_DIR / f"seed={_non_negative_int(seed)}"
        return folder / f"{name}-{digest}.safetensors"

    def get_or_compute(self, setting: Setting, seed: int, name: str, params: dict,
                       compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Tensors computed deterministically from the run of ``setting`` and ``seed``, cached.

        For results that cost more than they weigh, such as the predictions of a run's sampled
        weights. The file is keyed by a hash of ``params``, which must name everything the result
        depends on besides the run (sampler, scales, counts, seeds, code version); it is written
        atomically under a lock (concurrent processes compute it once). A file that does not
        parse, or whose stored parameters differ, is recomputed with a :class:`CorruptRunWarning`.
        Storing a new run of the seed (:meth:`save`) deletes its derived files.

        Parameters
        ----------
        setting : Setting
        seed : int
            The run's seed.
        name : str
            A readable file-name prefix, e.g. "samples-random".
        params : dict
            JSON-able parameters of the computation.
        compute : callable
            ``compute() -> dict[str, torch.Tensor]``, called on a miss.

        Returns
        -------
        dict of str to torch.Tensor
        """
        path = self.derived_path(setting, seed, name, params)
        expected = _params_json(params)
        try:
            return _read_derived(path, expected)  # the warm path, without the lock
        except _InvalidEntry:
            pass
        with self._lock(path):
            try:
                return _read_derived(path, expected)  # computed by another process while we waited
            except _InvalidEntry as err:
                if path.exists():  # judged under the lock: a good file a writer just put there stays
                    warnings.warn(f"derived file {path}: {err}; recomputing it", CorruptRunWarning, stacklevel=2)
            for stale in path.parent.glob(f".tmp-{path.name}-*"):  # left by a crash (we hold the lock)
                stale.unlink(missing_ok=True)
            tensors = {k: _storable(v.detach().cpu()) for k, v in compute().items()}
            tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}-{secrets.token_hex(4)}")
            try:
                _write_tensor_file(tensors, tmp, metadata={"params": expected})
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_path(path.parent)
        return tensors

    # ------------------------------------------------------------------------------------------

    def _train_and_save(self, setting: Setting, seed: int, train_kwargs: dict) -> Run:
        run = self._train_fn(setting, seed, **train_kwargs)
        if not isinstance(run, Run) or run.seed != seed:
            raise ValueError(f"train_fn returned {type(run).__name__} with seed "
                             f"{getattr(run, 'seed', None)!r} for seed {seed}; expected a Run of that seed")
        # Return what a later load returns, so a fresh run and a cached one compare equal.
        run = dataclasses.replace(run, meta=_canonical_meta(run.meta))
        self.save(setting, run)
        return run

    def _lock(self, entry: Path) -> FileLock:
        """The lock of ``entry``'s run: ``<root>/<key>/seed=<s>.lock``."""
        path = entry.parent / f"{entry.name}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)  # also if the folder was removed since
        if path not in self._locks:
            # One lock object per path, reused: nested use (get_or_train -> save -> load) then
            # re-enters it, where a second object would deadlock on its own file handle.
            self._locks[path] = FileLock(path)
        return self._locks[path]

    @staticmethod
    def _set_aside(entry: Path) -> Path:
        """Move a failed entry to ``.corrupt/`` (kept for inspection, out of the lookup path)."""
        stamp = _utc_now().strftime("%Y%m%dT%H%M%S.%fZ")
        destination = entry.parent / ".corrupt" / f"{entry.name}-{stamp}"
        destination.parent.mkdir(exist_ok=True)
        os.rename(entry, destination)
        return destination
