"""Tensors derived from a run (e.g. predictions of its sampled weights), cached beside it in the run store.

Reached through :meth:`harness.store.RunStore.get_or_compute`; for results that cost more to
compute than they weigh.

Layout
------
Under the run store's root, next to the runs of a setting (see :mod:`harness.store`)::

    <root>/<key>/derived/seed=<s>/<name>-<hash>.safetensors        tensors computed from the run of seed s
    <root>/<key>/derived/seed=<s>/<name>-<hash>.safetensors.lock   the file's lock
    <root>/<key>/derived/seed=<s>/.tmp-<name>-<hash>.safetensors-<pid>-<random>   a file being written

``<hash>`` is a hash of the computation's parameters, which the file also holds as safetensors
metadata. Storing a new run of a seed deletes that seed's folder (:func:`discard`): the tensors
were computed from other weights wherever training is not bitwise reproducible (GPUs).

Atomicity
---------
A file is written in full (and fsynced) under a temporary name in its folder, then renamed into
place, so a reader sees no file or a complete one; a crash leaves at most a ``.tmp-*`` file, which
the next writer of that file removes. A full disk (too little room for the computed tensors, or
``No space left on device`` while writing) raises :class:`harness.diskspace.DiskFullError`, the
temporary file removed.

Locking
-------
:func:`get_or_compute` first reads without the lock (the warm path); on a miss it takes the file's
lock and looks again before computing, so concurrent processes compute each file once.

Verification
------------
Like a run's files, a derived file carries the sha256 of its tensors (names, dtypes, shapes and
bytes) in its metadata. A file that does not parse, whose stored parameters differ from the
request (a hash collision or an edited file), or whose tensors no longer match their sha256 (a
flipped byte) is moved to ``.corrupt/`` beside it and recomputed with a
:class:`~harness.cachefiles.CorruptRunWarning`. A file written before derived files carried a
digest is recomputed without a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import safetensors
import torch

from harness.cachefiles import (
    CorruptRunWarning,
    InvalidEntry,
    Locks,
    fsync_path,
    load_tensor_file,
    seed_folder,
    storable,
    write_tensor_file,
)
from harness.diskspace import check_free, disk_full_as_error, on_disk
from harness.settings import Setting

DERIVED_DIR = "derived"


def _params_json(params: dict) -> str:
    """Canonical JSON of derived-tensor parameters (sorted keys), the text their hash is taken of."""
    try:
        return json.dumps(params, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"params must be JSON-able with finite numbers: {err}") from None


def _seed_dir(root: Path, key: str, seed: object) -> Path:
    return root / key / DERIVED_DIR / seed_folder(seed)


def path(root: Path, setting: Setting, seed: int, name: str, params: dict) -> Path:
    """File of the tensors ``name`` derived from a run with ``params`` (see :func:`get_or_compute`).

    Raises
    ------
    ValueError
        If ``name`` is no file name, ``seed`` is not a non-negative int, or ``params`` is not JSON-able.
    """
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"name={name!r} is invalid: use letters, digits, '-' and '_' (it names a file)")
    digest = hashlib.sha256(_params_json(params).encode()).hexdigest()[:16]
    return _seed_dir(root, setting.cache_key(), seed) / f"{name}-{digest}.safetensors"


def discard(root: Path, key: str, seed: int) -> None:
    """Delete every file derived from the run of setting key ``key`` and ``seed``."""
    shutil.rmtree(_seed_dir(root, key, seed), ignore_errors=True)


class _Unverified(InvalidEntry):
    """A file written before derived files carried a digest: recomputed, not corrupt."""


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors in name order: each name, dtype, shape and raw bytes."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _read(file: Path, expected_params: str) -> dict[str, torch.Tensor]:
    """The tensors of a derived file; :class:`InvalidEntry` if it is absent, does not parse, holds
    other parameters, or its tensors do not match their stored sha256."""
    try:
        with safetensors.safe_open(file, "pt") as f:
            metadata = f.metadata() or {}
    except FileNotFoundError:
        raise InvalidEntry("absent") from None
    except (safetensors.SafetensorError, OSError) as err:
        raise InvalidEntry(f"does not parse as safetensors: {err}") from None
    if metadata.get("params") != expected_params:
        raise InvalidEntry("its stored parameters differ from the request (hash collision or edited file)")
    if "sha256" not in metadata:
        raise _Unverified("written without a digest")
    tensors = load_tensor_file(file)
    if tensors_digest(tensors) != metadata["sha256"]:
        raise InvalidEntry("its tensors do not match their stored sha256 (a changed byte)")
    return tensors


def get_or_compute(root: Path, locks: Locks, setting: Setting, seed: int, name: str, params: dict,
                   compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Tensors computed deterministically from the run of ``setting`` and ``seed``, cached.

    The file is keyed by a hash of ``params``, which must name everything the result depends on
    besides the run (sampler, scales, counts, seeds, code version); it is written atomically under
    its lock (concurrent processes compute it once). A file that does not parse, or whose stored
    parameters differ, is recomputed with a :class:`CorruptRunWarning`.

    Parameters
    ----------
    root : Path
        The run store's root.
    locks : Locks
        The run store's locks.
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

    Raises
    ------
    harness.diskspace.DiskFullError
        If the disk has no room for the computed tensors, or fills up while they are written (the
        temporary file is removed).
    """
    file = path(root, setting, seed, name, params)
    expected = _params_json(params)
    try:
        return _read(file, expected)  # the warm path, without the lock
    except InvalidEntry:
        pass
    with locks(file):
        try:
            return _read(file, expected)  # computed by another process while we waited
        except _Unverified:
            pass
        except InvalidEntry as err:
            if file.exists():  # judged under the lock: a good file a writer just put there stays
                aside = file.parent / ".corrupt" / f"{file.name}-{secrets.token_hex(4)}"
                aside.parent.mkdir(exist_ok=True)
                os.replace(file, aside)
                warnings.warn(f"derived file {file}: {err}; moved to {aside}, recomputing it", CorruptRunWarning,
                              stacklevel=3)
        for stale in file.parent.glob(f".tmp-{file.name}-*"):  # left by a crash (we hold the lock)
            stale.unlink(missing_ok=True)
        tensors = {k: storable(v) for k, v in compute().items()}
        tmp = file.with_name(f".tmp-{file.name}-{os.getpid()}-{secrets.token_hex(4)}")
        what = f"writing the derived file {name} of {setting.name} seed {seed}"
        needed = on_disk(sum(t.numel() * t.element_size() for t in tensors.values()), len(tensors))
        # Checked before writing, as the size is known now: a full disk then leaves nothing to remove.
        check_free(root, needed, what)
        with disk_full_as_error(root, what, needed):
            try:
                write_tensor_file(tensors, tmp, metadata={"params": expected, "sha256": tensors_digest(tensors)})
                os.replace(tmp, file)
            finally:
                tmp.unlink(missing_ok=True)
            fsync_path(file.parent)
    return tensors
